package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/camwarden/camwarden/internal/testutil"
)

// TestAuditVerifyNamesFirstBrokenEntry edits the audit log offline, the way
// someone covering their tracks would, and checks the real daemon's
// `audit verify` names the first entry where the chain breaks.
func TestAuditVerifyNamesFirstBrokenEntry(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	for i := 0; i < 5; i++ {
		d.must(alicePassword+"\n", "user", "add", fmt.Sprintf("user%d", i), "--password-stdin")
	}
	if out := d.must("", "audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("honest log: %s", out)
	}
	d.stop()

	db, err := bolt.Open(filepath.Join(dir, "state", "camwarden.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var editedSeq int
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		if b == nil {
			return fmt.Errorf("no audit bucket")
		}
		c := b.Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			n++
			if n == 3 {
				edited := bytes.Replace(v, []byte("user2"), []byte("userX"), 1)
				if bytes.Equal(edited, v) {
					return fmt.Errorf("entry 3 does not name user2: %s", v)
				}
				editedSeq = n
				return b.Put(append([]byte(nil), k...), edited)
			}
		}
		return fmt.Errorf("only %d audit entries", n)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	d2 := startDaemon(t, dir)
	out, code := d2.cli("", "audit", "verify")
	if code != 1 {
		t.Fatalf("audit verify on an edited log: exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, fmt.Sprint(editedSeq)) {
		t.Fatalf("audit verify does not name entry %d:\n%s", editedSeq, out)
	}
}

// TestSocketActivation starts the daemon the way camwardend-rtsp.socket
// does: listeners named rtsp and admin passed by systemd's protocol.
func TestSocketActivation(t *testing.T) {
	dir := t.TempDir()
	port, tlsPort := testutil.FreePort(t), testutil.FreePort(t)
	sock := filepath.Join(dir, "admin.sock")
	notify := testutil.ListenNotify(t, t.TempDir())
	var logs testutil.SyncBuffer
	cmd := exec.Command("systemd-socket-activate",
		"-l", fmt.Sprintf("127.0.0.1:%d", port), "-l", fmt.Sprintf("127.0.0.1:%d", tlsPort), "-l", sock, "--fdname=rtsp:rtsps:admin",
		"-E", "NOTIFY_SOCKET="+notify.Path,
		testutil.Binary(t, "camwardend"), "--config", "/dev/null", "--state-dir", filepath.Join(dir, "state"),
		"--socket", filepath.Join(dir, "unused.sock"), "--rtsp-addr", "127.0.0.1:1", "--rtsps-addr", "127.0.0.1:0", "--rtsp-udp", "false",
		"--discovery-interfaces", "none")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &daemonProc{t: t, dir: dir, sock: sock, rtsp: fmt.Sprintf("127.0.0.1:%d", port), logs: &logs, output: &testutil.SyncBuffer{}}
	// The first connection makes systemd-socket-activate exec the daemon.
	testutil.WaitFor(t, 15*time.Second, "daemon answering on the activated admin socket", func() bool {
		_, code := d.cli("", "status")
		return code == 0
	})
	notify.WaitIndex(t, 0, "READY=1", 5*time.Second)
	status := d.must("", "--json", "status")
	if !strings.Contains(status, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Fatalf("daemon does not serve RTSP on the activated socket:\n%s", status)
	}
	if !strings.Contains(status, fmt.Sprintf(`"rtsps_addr": "127.0.0.1:%d"`, tlsPort)) {
		t.Fatalf("daemon does not serve RTSPS on the activated socket named rtsps:\n%s", status)
	}
	if _, err := os.Stat(filepath.Join(dir, "unused.sock")); err == nil {
		t.Error("daemon created its own admin socket although one was passed")
	}
	d.addCamera("lobby", startCamera(t))
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must("", "grant", "alice", "read", "*")
	r := d.reader("lobby/main", "alice", alicePassword)
	if r.Lost() != 0 {
		t.Errorf("lost %d packets", r.Lost())
	}
	r.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, logs.String())
	}
	d.scanSecrets()
}
