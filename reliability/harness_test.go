package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
	"github.com/camwarden/camwarden/internal/camsim/media"
	"github.com/camwarden/camwarden/internal/testutil"
)

// Secrets this package uses; all are listed in testdata/test-secrets.txt.
const (
	userPassword   = "rel-user-pw-Qx81z"
	cameraPassword = "rel-cam-pw-Zt55%x@"
	viewerPassword = "rel-viewer-pw-Hk27"
	wrongPassword  = "rel-wrong-pw-Yy03"
)

// daemon is one run of camwardend on loopback with discovery off.
type daemon struct {
	t      testing.TB
	dir    string // holds state/ and admin.sock; reused across restarts
	sock   string
	rtsp   string
	cmd    *exec.Cmd
	logs   *testutil.SyncBuffer
	output *testutil.SyncBuffer // every CLI output
	exited chan error
	cl     *client.Client
}

// startDaemon starts camwardend on the state in dir (a new one when dir is
// "") and waits for READY=1.
func startDaemon(t testing.TB, dir string) *daemon {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	port := testutil.FreePort(t)
	d := &daemon{t: t, dir: dir, sock: filepath.Join(dir, "admin.sock"), rtsp: fmt.Sprintf("127.0.0.1:%d", port),
		logs: &testutil.SyncBuffer{}, output: &testutil.SyncBuffer{}, exited: make(chan error, 1)}
	notify := testutil.ListenNotify(t, t.TempDir())
	d.cmd = exec.Command(testutil.Binary(t, "camwardend"),
		"--config", "/dev/null", "--state-dir", filepath.Join(dir, "state"), "--socket", d.sock,
		"--rtsp-addr", d.rtsp, "--rtsps-addr", "127.0.0.1:0", "--rtsp-udp", "false", "--discovery-interfaces", "none", "--log-level", "debug",
		// the Basic flood tests send Basic over plain RTSP on purpose
		"--basic-auth", "always")
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.Path)
	w := testutil.TeeLog(t, "camwardend", d.logs)
	d.cmd.Stdout, d.cmd.Stderr = w, w
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
		d.scanSecrets()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if notifyHas(notify, "READY=1") {
			break
		}
		select {
		case err := <-d.exited:
			t.Fatalf("camwardend exited before READY: %v\n%s", err, tail(d.logs.String(), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("camwardend not ready after 20s\n%s", tail(d.logs.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.cl = client.New(d.sock)
	return d
}

func notifyHas(n *testutil.Notify, want string) bool {
	for _, m := range n.Messages() {
		if strings.Contains(m, want) {
			return true
		}
	}
	return false
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// kill sends SIGKILL to this daemon (by its PID) and waits until it is gone.
func (d *daemon) kill() {
	d.t.Helper()
	select {
	case err := <-d.exited:
		d.t.Fatalf("camwardend had already exited (%v)\n%s", err, tail(d.logs.String(), 3000))
	default:
	}
	if err := syscall.Kill(d.pid(), syscall.SIGKILL); err != nil {
		d.t.Fatalf("kill %d: %v", d.pid(), err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.t.Fatal("camwardend did not die after SIGKILL")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	syscall.Kill(d.pid(), syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Errorf("camwardend exit: %v\n%s", err, tail(d.logs.String(), 2000))
		}
	case <-time.After(15 * time.Second):
		d.t.Fatal("camwardend did not stop after SIGTERM")
	}
}

// cli runs the real CLI against this daemon; secrets go through stdin.
func (d *daemon) cli(stdin string, args ...string) (string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(d.t, "camwarden"), append([]string{"--socket", d.sock}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	d.output.Write(out)
	return string(out), cmd.ProcessState.ExitCode()
}

func (d *daemon) must(stdin string, args ...string) string {
	d.t.Helper()
	out, code := d.cli(stdin, args...)
	if code != 0 {
		d.t.Fatalf("camwarden %s: exit %d\n%s\ndaemon log:\n%s", strings.Join(args, " "), code, out, tail(d.logs.String(), 3000))
	}
	return out
}

// streams is `camwarden --json stream list`, by path.
func (d *daemon) streams() map[string]apitype.StreamStatus {
	d.t.Helper()
	out := d.must("", "--json", "stream", "list")
	var sl apitype.StreamList
	if err := json.Unmarshal([]byte(out), &sl); err != nil {
		d.t.Fatalf("stream list: %v\n%s", err, out)
	}
	m := map[string]apitype.StreamStatus{}
	for _, s := range sl.Streams {
		m[s.Path] = s
	}
	return m
}

// stream is one stream's status from the typed client (cheap to poll).
func (d *daemon) stream(path string) (apitype.StreamStatus, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl, err := d.cl.StreamList(ctx)
	if err != nil {
		return apitype.StreamStatus{}, false
	}
	for _, s := range sl.Streams {
		if s.Path == path {
			return s, true
		}
	}
	return apitype.StreamStatus{}, false
}

// waitState waits until path is in state and returns when it got there.
func (d *daemon) waitState(path, state string, within time.Duration) apitype.StreamStatus {
	d.t.Helper()
	var st apitype.StreamStatus
	testutil.WaitFor(d.t, within, path+" "+state, func() bool {
		s, ok := d.stream(path)
		st = s
		return ok && s.State == state
	})
	return st
}

// addViewer creates a user allowed to read every path.
func (d *daemon) addViewer(name string) {
	d.t.Helper()
	d.must(viewerPassword+"\n", "user", "add", name, "--password-stdin")
	d.must("", "grant", name, "read", "*")
}

// addCamera configures cam as NAME/main and waits until it is live.
func (d *daemon) addCamera(name string, cam *media.Server) {
	d.t.Helper()
	d.must(cameraPassword+"\n", "camera", "add", name, "--url", cam.URL("main"), "--user", "admin", "--password-stdin", "--transport", "tcp")
	d.waitState(name+"/main", "live", 15*time.Second)
}

// reader plays path as a viewer and waits until packets flow.
func (d *daemon) reader(path, user string) *testutil.Reader {
	d.t.Helper()
	r, err := testutil.StartReader(d.rtsp, path, user, viewerPassword)
	if err != nil {
		d.t.Fatalf("reader on %s: %v\ndaemon log:\n%s", path, err, tail(d.logs.String(), 2000))
	}
	d.t.Cleanup(r.Close)
	testutil.WaitFor(d.t, 10*time.Second, "packets on "+path, func() bool { return r.Packets() > 20 })
	return r
}

// scanSecrets checks the daemon log and the CLI output for every listed
// test secret and for the daemon's own development master key.
func (d *daemon) scanSecrets() {
	secrets := testutil.TestSecrets(d.t)
	if key, err := os.ReadFile(filepath.Join(d.dir, "state", "master.key")); err == nil && len(key) > 0 {
		secrets = append(secrets, strings.TrimSpace(string(key)))
	}
	testutil.CheckNoSecrets(d.t, "camwardend log", d.logs.String(), secrets)
	testutil.CheckNoSecrets(d.t, "camwarden output", d.output.String(), secrets)
}

// startCamera runs one simulated camera (RTSP with Digest, password
// cameraPassword) on loopback: 320x180, 25 fps, kbps kbit/s.
func startCamera(t testing.TB, kbps int) *media.Server {
	t.Helper()
	return startCameraWith(t, kbps, cameraPassword)
}

func startCameraWith(t testing.TB, kbps int, password string) *media.Server {
	t.Helper()
	cam, err := media.NewServer(media.Config{Addr: "127.0.0.1:0", Username: "admin", Password: password, DisableUDP: true,
		Profiles: []media.Profile{{Name: "main", Width: 320, Height: 180, FPS: 25, BitrateKbps: kbps, GOP: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })
	return cam
}

// procStats is what /proc says about a process.
type procStats struct {
	Threads int
	FDs     int
	RSSKB   int64
}

func (p procStats) String() string {
	return fmt.Sprintf("threads=%d fds=%d rss=%.1fMB", p.Threads, p.FDs, float64(p.RSSKB)/1024)
}

func readProc(pid int) (procStats, error) {
	var ps procStats
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "Threads":
			ps.Threads, _ = strconv.Atoi(fields[0])
		case "VmRSS":
			ps.RSSKB, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ps, err
	}
	ps.FDs = len(ents)
	return ps, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
