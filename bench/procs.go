// Package bench is camwarden's benchmark suite (make bench): fan-out to
// many readers, policy decisions, revocation, start-up, discovery and time
// to first frame, measured on the real binaries over 127.0.0.1 (discovery
// inside a private network namespace). Run drives it; Results.Table
// prints it.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
	"github.com/camwarden/camwarden/store"
)

// syncBuffer collects a child's output for error reports.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// secret returns a random password.
func secret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "pw-" + hex.EncodeToString(b)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// notifySocket stands in for systemd's NOTIFY_SOCKET and records when each
// message arrived.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func listenNotify(dir string) (*notifySocket, error) {
	path := filepath.Join(dir, "notify.sock")
	_ = os.Remove(path) // a previous start's socket
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	n := &notifySocket{path: path, conn: conn, msgs: make(chan notifyMsg, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			select {
			case n.msgs <- notifyMsg{time.Now(), string(buf[:k])}:
			default: // nobody listens for more than 64 messages
			}
		}
	}()
	return n, nil
}

func (n *notifySocket) close() {
	n.conn.Close()
	_ = os.Remove(n.path)
}

// waitFor returns when a message containing want arrived.
func (n *notifySocket) waitFor(ctx context.Context, want string) (time.Time, error) {
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %s on NOTIFY_SOCKET: %w", want, ctx.Err())
		case m, ok := <-n.msgs:
			if !ok {
				return time.Time{}, errors.New("notify socket closed")
			}
			for _, line := range strings.Split(m.text, "\n") {
				if line == want {
					return m.at, nil
				}
			}
		}
	}
}

// daemonProc is one camwardend on 127.0.0.1 with discovery off.
type daemonProc struct {
	cmd     *exec.Cmd
	dir     string
	rtsp    string
	metrics string // HOST:PORT of /metrics, for the Go runtime's own figures
	client  *client.Client
	logs    *syncBuffer
	exited  chan struct{}
	waitErr error
	readyIn time.Duration // exec to READY=1
}

// startDaemon runs camwardend with its state in dir and waits for READY=1.
func startDaemon(ctx context.Context, bin, dir string, extra ...string) (*daemonProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ns, err := listenNotify(dir)
	if err != nil {
		return nil, err
	}
	defer ns.close()
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &daemonProc{dir: dir, rtsp: fmt.Sprintf("127.0.0.1:%d", port), metrics: fmt.Sprintf("127.0.0.1:%d", mport), logs: &syncBuffer{}, exited: make(chan struct{})}
	sock := filepath.Join(dir, "admin.sock")
	args := append([]string{"--config", "/dev/null", "--state-dir", filepath.Join(dir, "state"), "--socket", sock,
		"--rtsp-addr", d.rtsp, "--rtsps-addr", "127.0.0.1:0", "--rtsp-udp", "false", "--discovery-interfaces", "none", "--log-level", "warn",
		"--metrics-addr", d.metrics}, extra...)
	d.cmd = exec.Command(filepath.Join(bin, "camwardend"), args...)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	start := time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start camwardend: %w", err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-d.exited:
			cancel()
		case <-rctx.Done():
		}
	}()
	at, err := ns.waitFor(rctx, "READY=1")
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("camwardend did not become ready: %v\n%s", err, tail(d.logs.String(), 2000))
	}
	d.readyIn = at.Sub(start)
	d.client = client.New(sock)
	return d, nil
}

func (d *daemonProc) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM to this daemon's PID and waits; SIGKILL after 10 s.
func (d *daemonProc) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return d.waitErr
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return errors.New("camwardend did not stop within 10 s of SIGTERM; killed")
	}
}

// addCamera configures camera name (stream main) and waits until it is live.
func (d *daemonProc) addCamera(ctx context.Context, name, url, user, password string) error {
	_, err := d.client.CameraAdd(ctx, apitype.CameraAddRequest{Name: name, URL: url, User: user, Password: password, Transport: "tcp"})
	if err != nil {
		return fmt.Errorf("camera add %s: %w", name, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sl, err := d.client.StreamList(ctx)
		if err == nil {
			for _, s := range sl.Streams {
				if s.Path == name+"/main" && s.State == "live" {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream %s/main not live after 20 s (last: %+v, %v)\n%s", name, sl, err, tail(d.logs.String(), 2000))
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// camsimProc is a running camsim.
type camsimProc struct {
	cmd    *exec.Cmd
	main   []string // rtsp.main URL of each camera
	urns   []string
	logs   *syncBuffer
	exited chan struct{}
}

// startCamsim runs camsim with n cameras on 127.0.0.1 and waits for READY.
// The password goes through a 0600 file.
func startCamsim(ctx context.Context, bin, dir string, n int, user, password string, extra ...string) (*camsimProc, error) {
	pwFile := filepath.Join(dir, "camsim.pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"--cameras", fmt.Sprint(n), "--addr", "127.0.0.1", "--user", user,
		"--password-file", pwFile, "--log-level", "warn"}, extra...)
	c := &camsimProc{logs: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(filepath.Join(bin, "camsim"), args...)
	c.cmd.Stderr = c.logs
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start camsim: %w", err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-c.exited:
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(lines)
	}()
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case <-rctx.Done():
			c.stop()
			return nil, fmt.Errorf("camsim not READY: %v\n%s", rctx.Err(), tail(c.logs.String(), 2000))
		case line, ok := <-lines:
			if !ok {
				c.stop()
				return nil, fmt.Errorf("camsim exited before READY\n%s", tail(c.logs.String(), 2000))
			}
			if line == "READY" {
				go func() {
					for range lines {
					}
				}()
				return c, nil
			}
			if rest, ok := strings.CutPrefix(line, "camera "); ok {
				for _, f := range strings.Fields(rest) {
					if v, ok := strings.CutPrefix(f, "rtsp.main="); ok {
						c.main = append(c.main, v)
					}
					if v, ok := strings.CutPrefix(f, "urn="); ok {
						c.urns = append(c.urns, v)
					}
				}
			}
		}
	}
}

func (c *camsimProc) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM to camsim's PID and waits; SIGKILL after 10 s.
func (c *camsimProc) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// readerUser is a user created before the daemon starts, with read access
// to Pattern.
// startScenario prepares a state directory (named after the scenario) with
// users, starts a daemon on it and adds the camsim camera as cam1, the set-up
// every reader scenario shares. The caller stops the daemon.
func startScenario(ctx context.Context, o *Options, cam *camsimProc, name string, users []readerUser) (dir string, d *daemonProc, err error) {
	dir, err = os.MkdirTemp(o.WorkDir, name+"-")
	if err != nil {
		return "", nil, err
	}
	keyFile, err := prepareState(ctx, dir, users)
	if err != nil {
		return "", nil, err
	}
	d, err = startDaemon(ctx, o.BinDir, dir, "--key-file", keyFile)
	if err != nil {
		return "", nil, err
	}
	if err := d.addCamera(ctx, "cam1", cam.main[0], "admin", o.cameraPassword); err != nil {
		d.stop()
		return "", nil, err
	}
	return dir, d, nil
}

type readerUser struct {
	Name, Password, Pattern string
}

// prepareState creates dir/state/camwarden.db with users (and their grants)
// and a master key file, returning the key file for --key-file. Users are
// made here, not through the admin API, so the daemon under test never runs
// argon2id: each hash allocates 19 MiB that the daemon would keep as RSS
// and that would blur the per-reader memory figure.
func prepareState(ctx context.Context, dir string, users []readerUser) (string, error) {
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", err
	}
	keyFile := filepath.Join(dir, "master.key")
	key, err := store.WriteNewKeyFile(keyFile)
	if err != nil {
		return "", err
	}
	st, err := store.Open(filepath.Join(stateDir, "camwarden.db"), key, store.Options{})
	if err != nil {
		return "", err
	}
	defer st.Close()
	hashes := map[string]string{} // password -> hash, for ImportUser
	err = st.Update(ctx, nil, func(tx *store.Tx) error {
		for _, u := range users {
			if imp, ok := any(tx).(importer); ok {
				h, ok := hashes[u.Password]
				if !ok {
					var err error
					if h, err = store.HashPassword(u.Password); err != nil {
						return err
					}
					hashes[u.Password] = h
				}
				if err := imp.ImportUser(u.Name, h, u.Password); err != nil {
					return err
				}
			} else if err := tx.CreateUser(u.Name, u.Password); err != nil {
				return err
			}
			if err := tx.AddGrant(store.Grant{Subject: u.Name, Action: "read", Pattern: u.Pattern}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("prepare users: %w", err)
	}
	return keyFile, nil
}
