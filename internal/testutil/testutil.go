// Package testutil holds helpers shared by tests that drive the real
// binaries: building them once, waiting on conditions with deadlines,
// listening as systemd's notify socket, and free ports on 127.0.0.1.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary returns the path of a freshly built command from cmd/NAME. All
// commands are built once per test process into one temporary directory.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		// A re-executed child (e.g. in a network namespace, where the module
		// proxy is unreachable) reuses its parent's build.
		if dir := os.Getenv("CAMWARDEN_TEST_BIN_DIR"); dir != "" {
			buildDir = dir
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "camwarden-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/...")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// InNetNS re-runs the calling test in a private network namespace
// (unshare -n; CI runs as root) with loopback up and multicast routed on
// it, and reports whether the caller is that child. The parent returns
// false after the child finished; the child's output is logged and its
// failure fails the parent. Binaries are built before the re-exec.
func InNetNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv("CAMWARDEN_IN_NETNS") == "1" {
		for _, args := range [][]string{{"link", "set", "lo", "up", "multicast", "on"}, {"route", "add", "224.0.0.0/4", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
		return true
	}
	binDir := filepath.Dir(Binary(t, "camwardend"))
	cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "CAMWARDEN_IN_NETNS=1", "CAMWARDEN_TEST_BIN_DIR="+binDir)
	out, err := cmd.CombinedOutput()
	t.Logf("namespace child output:\n%s", out)
	if err != nil {
		t.Fatalf("test in a private network namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatal("the namespace child did not run the test")
	}
	return false
}

// WaitFor polls cond until it is true or fails the test when within passes.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(within, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}

// Poll checks cond every 10 ms until it is true or within passes, and
// reports whether it became true (for callers with their own failure text).
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Notify is a datagram socket standing in for systemd's NOTIFY_SOCKET.
type Notify struct {
	Path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	cond chan struct{}
}

// ListenNotify starts a notify socket in dir and collects what arrives.
func ListenNotify(t testing.TB, dir string) *Notify {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &Notify{Path: path, conn: conn, cond: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// Messages returns what has arrived so far.
func (n *Notify) Messages() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// WaitIndex waits for a message after index from that contains want and
// returns its index.
func (n *Notify) WaitIndex(t testing.TB, from int, want string, within time.Duration) int {
	t.Helper()
	idx := -1
	WaitFor(t, within, "notify "+strings.ReplaceAll(want, "\n", " "), func() bool {
		for i, m := range n.Messages() {
			if i >= from && strings.Contains(m, want) {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// SyncBuffer is a bytes.Buffer safe for a process writer and a test reader.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
