package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

const secret = "camsim-test-Secret-4242"

// lockedBuffer is a goroutine-safe sink for the child's output.
type lockedBuffer = testutil.SyncBuffer

var build struct {
	sync.Once
	dir, bin string
	out      []byte
	err      error
}

// buildCamsim builds the binary once per test run.
func buildCamsim(t *testing.T) string {
	t.Helper()
	build.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "camsim-test-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "camsim")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		build.out, build.err = exec.CommandContext(ctx, "go", "build", "-o", build.bin, ".").CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build: %v\n%s", build.err, build.out)
	}
	return build.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

func fields(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func soapDeviceInfo(t *testing.T, xaddr, user, pass string) int {
	t.Helper()
	nonce := []byte("0123456789abcdef")
	created := time.Now().UTC().Format(time.RFC3339)
	h := sha1.New()
	h.Write(nonce)
	io.WriteString(h, created)
	io.WriteString(h, pass)
	body := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>` +
		`<Security xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><UsernameToken>` +
		`<Username>` + user + `</Username><Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">` +
		base64.StdEncoding.EncodeToString(h.Sum(nil)) + `</Password><Nonce>` + base64.StdEncoding.EncodeToString(nonce) + `</Nonce>` +
		`<Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">` + created + `</Created>` +
		`</UsernameToken></Security></s:Header><s:Body><GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, xaddr, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/soap+xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBinaryReadyLinesAndGracefulStop runs the real binary: it reads the
// password from stdin, prints a line per camera and READY, serves ONVIF and
// RTSP, logs no secret, and exits 0 on SIGTERM.
func TestBinaryReadyLinesAndGracefulStop(t *testing.T) {
	bin := buildCamsim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--cameras", "2", "--user", "admin", "--password-stdin",
		"--discovery-port", "0", "--log-level", "trace", "--fault-stall")
	cmd.Stdin = strings.NewReader(secret + "\n")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := make(chan string)
	var stdout lockedBuffer
	go func() {
		sc := bufio.NewScanner(stdoutPipe)
		for sc.Scan() {
			stdout.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
	}()
	var cams []map[string]string
	var disc map[string]string
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("camsim exited before READY; stderr:\n%s", stderr.String())
			}
			switch {
			case l == "READY":
				break wait
			case strings.HasPrefix(l, "camera "):
				cams = append(cams, fields(l))
			case strings.HasPrefix(l, "discovery "):
				disc = fields(l)
			}
		case <-deadline:
			t.Fatalf("no READY within 30s; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	if len(cams) != 2 || disc == nil {
		t.Fatalf("ready output: %v %v", cams, disc)
	}
	for i, c := range cams {
		if c["name"] == "" || !strings.HasPrefix(c["urn"], "urn:uuid:") || !strings.HasSuffix(c["xaddr"], "/onvif/device_service") {
			t.Errorf("camera %d line: %v", i, c)
		}
		for _, p := range []string{"rtsp.main", "rtsp.sub"} {
			if !strings.HasPrefix(c[p], "rtsp://127.0.0.1:") || strings.Contains(c[p], "@") {
				t.Errorf("camera %d %s=%q", i, p, c[p])
			}
		}
		if code := soapDeviceInfo(t, c["xaddr"], "admin", secret); code != http.StatusOK {
			t.Errorf("camera %d GetDeviceInformation: HTTP %d", i, code)
		}
		if code := soapDeviceInfo(t, c["xaddr"], "admin", "wrong"); code != http.StatusBadRequest {
			t.Errorf("camera %d wrong password: HTTP %d", i, code)
		}
		host := strings.TrimPrefix(c["rtsp.main"], "rtsp://")
		host, _, _ = strings.Cut(host, "/")
		conn, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			t.Errorf("camera %d RTSP: %v", i, err)
		} else {
			conn.Close()
		}
	}
	if cams[0]["urn"] == cams[1]["urn"] {
		t.Error("cameras share a urn")
	}
	if !strings.HasPrefix(disc["unicast"], "127.0.0.1:") || disc["multicast"] != "none" {
		t.Errorf("discovery line %v (loopback has no MULTICAST flag here)", disc)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("camsim did not stop within 15s of SIGTERM")
	}
	all := stdout.String() + stderr.String()
	if strings.Contains(all, secret) {
		t.Fatal("the password appears in camsim's output")
	}
	if !strings.Contains(stderr.String(), "WS-Security rejected") || !strings.Contains(stderr.String(), "stall") {
		t.Errorf("expected log lines missing (rejection, fault flag):\n%s", stderr.String())
	}
}

func TestPasswordNeverFromArgv(t *testing.T) {
	for _, args := range [][]string{
		{"--user", "admin", "--password", secret},
		{"--user", "admin", secret},
		{"--user", "admin"},
		{"--user", "admin", "--password-stdin", "--password-file", "/nonexistent"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, strings.NewReader(""), &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--user", "admin", "--password-stdin"}, strings.NewReader("\n"), &out, &errb); code != 2 || !strings.Contains(errb.String(), "empty") {
		t.Errorf("empty password: exit %d %s", code, errb.String())
	}
}

func TestReadPasswordFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte(secret+"\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readPassword(false, f, nil)
	if err != nil || got != secret {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := readPassword(false, filepath.Join(t.TempDir(), "missing"), nil); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestBinaryRestartFault: --fault-restart-every moves each camera to new
// ports and prints the new camera line; with --https the camera keeps its
// certificate across the move (what pinning relies on).
func TestBinaryRestartFault(t *testing.T) {
	bin := buildCamsim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--user", "admin", "--password-stdin", "--discovery-port", "0",
		"--fault-restart-every", "300ms", "--https")
	cmd.Stdin = strings.NewReader(secret + "\n")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var first, restarted map[string]string
	for restarted == nil && sc.Scan() {
		switch l := sc.Text(); {
		case strings.HasPrefix(l, "camera "):
			first = fields(l)
		case strings.HasPrefix(l, "restarted camera "):
			restarted = fields(strings.TrimPrefix(l, "restarted "))
		}
	}
	if first == nil || restarted == nil {
		t.Fatalf("no restart line; stderr:\n%s", stderr.String())
	}
	if restarted["urn"] != first["urn"] || restarted["xaddr"] == first["xaddr"] || restarted["rtsp.main"] == first["rtsp.main"] {
		t.Fatalf("restart kept ports or changed identity:\n%v\n%v", first, restarted)
	}
	if !strings.HasPrefix(first["xaddr"], "https://127.0.0.1:") || len(first["cert_sha256"]) != 64 || restarted["cert_sha256"] != first["cert_sha256"] {
		t.Fatalf("--https: xaddr or certificate:\n%v\n%v", first, restarted)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	go io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
}

func TestRecorderFlags(t *testing.T) {
	for _, bad := range [][]string{{"--media", "media3"}, {"--recorder-channels", "300"}, {"--max-streams", "-1"}, {"--media", "media1", "--media2-h265"}} {
		var out, errb bytes.Buffer
		args := append([]string{"--user", "admin", "--password-stdin", "--discovery-port", "0"}, bad...)
		if code := run(args, strings.NewReader(secret+"\n"), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d (%s)", bad, code, errb.String())
		}
	}
	bin := buildCamsim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--recorder-channels", "4", "--max-streams", "2", "--media", "media2",
		"--user", "admin", "--password-stdin", "--discovery-port", "0", "--discovery-interfaces", "none")
	cmd.Stdin = strings.NewReader(secret + "\n")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var camLine string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "camera ") {
			camLine = sc.Text()
		}
		if sc.Text() == "READY" {
			break
		}
	}
	for _, want := range []string{" channels=4", " rtsp.ch01_main=rtsp://127.0.0.1:", " rtsp.ch04_sub=rtsp://127.0.0.1:"} {
		if !strings.Contains(camLine, want) {
			t.Errorf("camera line lacks %q: %s", want, camLine)
		}
	}
}
