package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// daemonArgs runs the daemon on loopback only, with discovery off.
func daemonArgs(dir string, extra ...string) []string {
	return append([]string{
		"--config", "/dev/null",
		"--state-dir", filepath.Join(dir, "state"),
		"--socket", filepath.Join(dir, "admin.sock"),
		"--rtsp-addr", "127.0.0.1:0",
		"--rtsps-addr", "127.0.0.1:0",
		"--discovery-interfaces", "none",
	}, extra...)
}

// TestLifecycleNotify drives the real binary with a NOTIFY_SOCKET and sees
// READY, WATCHDOG, RELOADING/READY on SIGHUP (also for a bad config, which
// is rejected without exiting), STOPPING on SIGTERM and exit 0.
func TestLifecycleNotify(t *testing.T) {
	bin := testutil.Binary(t, "camwardend")
	dir := t.TempDir()
	conf := filepath.Join(dir, "camwardend.conf")
	if err := os.WriteFile(conf, []byte("# test\nlog_level = debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := testutil.ListenNotify(t, dir)
	var logs testutil.SyncBuffer
	cmd := exec.Command(bin, daemonArgs(dir, "--config", conf)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.Path, "WATCHDOG_USEC=300000")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	ready := n.WaitIndex(t, 0, "READY=1", 10*time.Second)
	n.WaitIndex(t, ready, "WATCHDOG=1", 5*time.Second)

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rel := n.WaitIndex(t, ready+1, "RELOADING=1", 5*time.Second)
	if !strings.Contains(n.Messages()[rel], "MONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", n.Messages()[rel])
	}
	ready2 := n.WaitIndex(t, rel+1, "READY=1", 5*time.Second)

	// A broken config on reload is rejected; the daemon keeps running.
	if err := os.WriteFile(conf, []byte("no_such_key = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	rel2 := n.WaitIndex(t, ready2+1, "RELOADING=1", 5*time.Second)
	n.WaitIndex(t, rel2+1, "READY=1", 5*time.Second)
	testutil.WaitFor(t, 5*time.Second, "reload rejection logged", func() bool {
		return strings.Contains(logs.String(), "reload rejected")
	})
	// Still alive and still pinging the watchdog after the bad reload.
	n.WaitIndex(t, rel2+1, "WATCHDOG=1", 5*time.Second)

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	n.WaitIndex(t, 0, "STOPPING=1", 5*time.Second)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit within 10 s of SIGTERM")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stop took %s", d)
	}
}

// runDaemon runs the binary to completion (for start-up failures).
func runDaemon(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testutil.Binary(t, "camwardend"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("daemon did not exit; output:\n%s", out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// treeDigest fingerprints every file under dir (names, modes, bytes).
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		h.Write([]byte(p + fi.Mode().String()))
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return string(h.Sum(nil))
}

// TestBadInputRefusesToStart checks each bad start-up input gets one clear
// line, a non-zero exit, and leaves the disk as it was.
func TestBadInputRefusesToStart(t *testing.T) {
	// A real database sealed under a key, to try wrong and missing keys on.
	base := t.TempDir()
	keyFile := filepath.Join(base, "master.key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	seedDaemon(t, base, keyFile)
	wrongKey := filepath.Join(base, "wrong.key")
	os.WriteFile(wrongKey, bytes.Repeat([]byte{9}, 32), 0o600)
	shortKey := filepath.Join(base, "short.key")
	os.WriteFile(shortKey, []byte("too short"), 0o600)
	openKeys := map[os.FileMode]string{}
	for _, mode := range []os.FileMode{0o644, 0o666} {
		p := filepath.Join(base, fmt.Sprintf("open-%o.key", mode))
		os.WriteFile(p, bytes.Repeat([]byte{7}, 32), 0o600)
		os.Chmod(p, mode) // WriteFile's mode is masked by the umask
		openKeys[mode] = p
	}
	foreign := t.TempDir()
	os.MkdirAll(filepath.Join(foreign, "state"), 0o700)
	os.WriteFile(filepath.Join(foreign, "state", "camwarden.db"), bytes.Repeat([]byte("not a database "), 400), 0o600)
	badConf := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(badConf, []byte("rtsp_addr = nonsense\n"), 0o600)

	cases := []struct {
		name, want string
		args       []string
		exit       int
	}{
		{"unknown flag", "flag provided but not defined", []string{"--bogus"}, 2},
		{"missing key file", "does not exist", daemonArgs(base, "--key-file", filepath.Join(base, "absent.key")), 1},
		{"wrong-length key", "master key", daemonArgs(base, "--key-file", shortKey), 1},
		{"wrong key", "key", daemonArgs(base, "--key-file", wrongKey), 1},
		{"key file mode 0644", openKeys[0o644] + " has mode 0644", daemonArgs(base, "--key-file", openKeys[0o644]), 1},
		{"key file mode 0666", openKeys[0o666] + " has mode 0666", daemonArgs(base, "--key-file", openKeys[0o666]), 1},
		{"no key configured for a sealed database", "--key-file", daemonArgs(base), 1},
		{"foreign database", "camwarden", daemonArgs(foreign, "--key-file", keyFile), 1},
		{"invalid config", "rtsp_addr", []string{"--config", badConf, "--state-dir", t.TempDir()}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := treeDigest(t, base) + treeDigest(t, foreign)
			out, code := runDaemon(t, nil, c.args...)
			if code != c.exit {
				t.Fatalf("exit %d, want %d; output:\n%s", code, c.exit, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
			if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines > 2 {
				t.Errorf("want one clear error line, got %d:\n%s", lines, out)
			}
			if after := treeDigest(t, base) + treeDigest(t, foreign); after != before {
				t.Error("files on disk changed")
			}
		})
	}
}

// seedDaemon starts the daemon once on dir with keyFile so the database
// exists and holds sealed data (a user), then stops it.
func seedDaemon(t *testing.T, dir, keyFile string) {
	t.Helper()
	bin := testutil.Binary(t, "camwardend")
	n := testutil.ListenNotify(t, dir)
	cmd := exec.Command(bin, daemonArgs(dir, "--key-file", keyFile)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.Path)
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.WaitIndex(t, 0, "READY=1", 10*time.Second)
	cli := exec.Command(testutil.Binary(t, "camwarden"), "--socket", filepath.Join(dir, "admin.sock"), "user", "add", "seeded", "--password-stdin")
	cli.Stdin = strings.NewReader("seed-password-1\n")
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("seeding a user: %v\n%s\n%s", err, out, logs.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("seed daemon exit: %v\n%s", err, logs.String())
	}
	os.Remove(n.Path)
}

// TestManPageListsEveryFlag keeps camwardend(8) in step with the flags.
func TestManPageListsEveryFlag(t *testing.T) {
	man, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "packaging", "man", "camwardend.8"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(man), `\-`, "-")
	for _, f := range append([]string{"config", "version"}, flagNames()...) {
		if !strings.Contains(text, "--"+f) {
			t.Errorf("camwardend.8 does not document --%s", f)
		}
	}
}

func flagNames() []string {
	var out []string
	for _, f := range flagKeys {
		out = append(out, f.flag)
	}
	return out
}

// TestSecondDaemonOnSameStateDir: the database is locked by the first
// daemon; the second gets one clear line naming the file, not a hang.
func TestSecondDaemonOnSameStateDir(t *testing.T) {
	dir := t.TempDir()
	n := testutil.ListenNotify(t, dir)
	first := exec.Command(testutil.Binary(t, "camwardend"), daemonArgs(dir)...)
	first.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.Path)
	var logs testutil.SyncBuffer
	first.Stdout, first.Stderr = &logs, &logs
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	n.WaitIndex(t, 0, "READY=1", 10*time.Second)

	start := time.Now()
	args := daemonArgs(dir, "--socket", filepath.Join(dir, "second.sock"))
	out, code := runDaemon(t, nil, args...)
	if code != 1 || !strings.Contains(out, "locked") || !strings.Contains(out, filepath.Join(dir, "state", "camwarden.db")) {
		t.Fatalf("second daemon: exit %d, output:\n%s", code, out)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("second daemon took %s to give up", d)
	}
	if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines > 2 {
		t.Errorf("want one clear error line, got %d:\n%s", lines, out)
	}
}
