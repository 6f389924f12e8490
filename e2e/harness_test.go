// Package e2e drives the real binaries: camwardend on a real socket with a
// real bbolt file, camsim cameras, real RTSP readers, the real CLI.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim/media"
	"github.com/camwarden/camwarden/internal/testutil"
)

// Secrets used across the suite; every captured output is scanned for them.
const (
	cameraPassword = "cam-S3cret:@/%# pw"
	alicePassword  = "alice-pw-7f3k2"
	bobPassword    = "bob-pw-9q8w1"
	carolPassword  = "carol-pw-4z6x0"
)

var allSecrets = []string{cameraPassword, alicePassword, bobPassword, carolPassword}

type daemonProc struct {
	t      *testing.T
	dir    string
	sock   string
	rtsp   string
	cmd    *exec.Cmd
	logs   *testutil.SyncBuffer
	notify *testutil.Notify
	output *testutil.SyncBuffer // every CLI output, for the secret scan
	cliLog io.Writer            // the same, for the suite-wide scan
	exited chan error
}

// startDaemon runs camwardend on loopback with discovery off; extra flags
// come last and so win (e.g. --discovery-interfaces lo in a namespace).
func startDaemon(t *testing.T, dir string, extra ...string) *daemonProc {
	t.Helper()
	return startDaemonIn(t, dir, nil, extra...)
}

// startDaemonIn is startDaemon with the daemon run by a wrapper command
// (wrapper... camwardend args...), e.g. one that mounts its state directory
// in a private mount namespace first.
func startDaemonIn(t *testing.T, dir string, wrapper []string, extra ...string) *daemonProc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	port := testutil.FreePort(t)
	d := &daemonProc{t: t, dir: dir, sock: filepath.Join(dir, "admin.sock"), rtsp: fmt.Sprintf("127.0.0.1:%d", port),
		logs: &testutil.SyncBuffer{}, output: &testutil.SyncBuffer{}, exited: make(chan error, 1)}
	d.notify = testutil.ListenNotify(t, t.TempDir())
	args := []string{"--config", "/dev/null", "--state-dir", filepath.Join(dir, "state"), "--socket", d.sock,
		"--rtsp-addr", d.rtsp, "--rtsps-addr", "127.0.0.1:0", "--rtsp-udp", "false", "--discovery-interfaces", "none", "--log-level", "debug"}
	argv := append(append(append([]string(nil), wrapper...), testutil.Binary(t, "camwardend")), append(args, extra...)...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+d.notify.Path)
	daemonLog := testutil.TeeLog(t, "camwardend", d.logs)
	d.cmd.Stdout, d.cmd.Stderr = daemonLog, daemonLog
	d.cliLog = testutil.LogFile(t, "cli")
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		d.scanSecrets()
	})
	d.notify.WaitIndex(t, 0, "READY=1", 15*time.Second)
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Fatalf("daemon exit: %v\n%s", err, d.logs.String())
		}
	case <-time.After(10 * time.Second):
		d.t.Fatal("daemon did not stop")
	}
}

// cli runs the real CLI against this daemon.
func (d *daemonProc) cli(stdin string, args ...string) (string, int) {
	d.t.Helper()
	cmd := exec.Command(testutil.Binary(d.t, "camwarden"), append([]string{"--socket", d.sock}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	d.output.Write(out)
	if d.cliLog != nil {
		d.cliLog.Write(out)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// must runs a CLI command that has to succeed.
func (d *daemonProc) must(stdin string, args ...string) string {
	d.t.Helper()
	out, code := d.cli(stdin, args...)
	if code != 0 {
		d.t.Fatalf("camwarden %s: exit %d\n%s\ndaemon log:\n%s", strings.Join(args, " "), code, out, tail(d.logs.String(), 3000))
	}
	return out
}

// closedBy runs a mutation with --json and returns closed_sessions.
func (d *daemonProc) closedBy(stdin string, args ...string) int {
	d.t.Helper()
	out := d.must(stdin, append([]string{"--json"}, args...)...)
	var res struct {
		ClosedSessions int `json:"closed_sessions"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		d.t.Fatalf("camwarden %v: not JSON: %v\n%s", args, err, out)
	}
	return res.ClosedSessions
}

func (d *daemonProc) scanSecrets() {
	for _, s := range allSecrets {
		if strings.Contains(d.logs.String(), s) {
			d.t.Errorf("daemon log contains a secret (%q...)", s[:4])
		}
		if strings.Contains(d.output.String(), s) {
			d.t.Errorf("CLI output contains a secret (%q...)", s[:4])
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startCamera runs one simulated camera (RTSP with Digest) on loopback.
func startCamera(t *testing.T) *media.Server {
	t.Helper()
	cam, err := media.NewServer(media.Config{Addr: "127.0.0.1:0", Username: "admin", Password: cameraPassword,
		Profiles: []media.Profile{{Name: "main", Width: 640, Height: 360, FPS: 25, BitrateKbps: 800, GOP: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })
	return cam
}

// addCamera configures a camera and waits until its stream is live.
func (d *daemonProc) addCamera(name string, cam *media.Server) {
	d.t.Helper()
	d.must(cameraPassword+"\n", "camera", "add", name, "--url", cam.URL("main"), "--user", "admin", "--password-stdin")
	testutil.WaitFor(d.t, 15*time.Second, "stream "+name+" live", func() bool {
		out, _ := d.cli("", "--json", "stream", "list")
		return strings.Contains(out, `"path": "`+name+`/main"`) && strings.Contains(out, `"state": "live"`)
	})
	// Its tracks are listed through the API with their codec and parameters.
	if out := d.must("", "--json", "stream", "list"); !strings.Contains(out, `"media": "video"`) || !strings.Contains(out, `"codec": "H264"`) {
		d.t.Errorf("stream list --json lacks the camera's video track:\n%s", out)
	}
}

// reader starts a Go RTSP reader and waits until packets flow.
func (d *daemonProc) reader(path, user, pw string) *testutil.Reader {
	d.t.Helper()
	r, err := testutil.StartReader(d.rtsp, path, user, pw)
	if err != nil {
		d.t.Fatalf("reader %s on %s: %v\ndaemon log:\n%s", user, path, err, tail(d.logs.String(), 2000))
	}
	d.t.Cleanup(r.Close)
	testutil.WaitFor(d.t, 10*time.Second, user+" receiving", func() bool { return r.Packets() > 20 })
	return r
}

// sessionsOf counts live sessions of user, from the admin API.
func (d *daemonProc) sessionsOf(user string) int {
	d.t.Helper()
	out := d.must("", "--json", "session", "list")
	var res struct {
		Sessions []struct{ User string } `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		d.t.Fatalf("session list: %v\n%s", err, out)
	}
	n := 0
	for _, s := range res.Sessions {
		if s.User == user {
			n++
		}
	}
	return n
}
