package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// cutOff asserts that, by the time the CLI call returned, the daemon has no
// session for user any more and the reader's connection ends promptly.
func cutOff(t *testing.T, d *daemonProc, user string, r *testutil.Reader) {
	t.Helper()
	if n := d.sessionsOf(user); n != 0 {
		t.Fatalf("%s still has %d session(s) after the command returned", user, n)
	}
	select {
	case <-r.Done():
	case <-time.After(2 * time.Second):
		t.Fatalf("%s's reader still connected", user)
	}
}

// TestRevocationCutsOffExactlyTheAffected checks every way of taking a
// right away: the affected reader is closed before the CLI returns, and
// readers that are still allowed lose no packet.
func TestRevocationCutsOffExactlyTheAffected(t *testing.T) {
	d := startDaemon(t, "")
	d.addCamera("lobby", startCamera(t))
	d.addCamera("yard", startCamera(t))
	for _, u := range []struct{ name, pw string }{{"alice", alicePassword}, {"bob", bobPassword}, {"carol", carolPassword}, {"erin", alicePassword}, {"witness", bobPassword}} {
		d.must(u.pw+"\n", "user", "add", u.name, "--password-stdin")
	}
	d.must("", "group", "add", "guards")
	d.must("", "group", "member", "add", "guards", "carol")
	d.must("", "grant", "alice", "read", "lobby/*")
	d.must("", "grant", "bob", "read", "lobby/main")
	d.must("", "grant", "@guards", "read", "lobby/*")
	d.must("", "grant", "erin", "read", "*")
	d.must("", "grant", "witness", "read", "*")

	witnessLobby := d.reader("lobby/main", "witness", bobPassword)
	witnessYard := d.reader("yard/main", "witness", bobPassword)

	t.Run("revoke grant", func(t *testing.T) {
		r := d.reader("lobby/main", "alice", alicePassword)
		if n := d.closedBy("", "revoke", "alice", "read", "lobby/*"); n != 1 {
			t.Errorf("closed_sessions = %d, want 1", n)
		}
		cutOff(t, d, "alice", r)
	})
	t.Run("remove group membership", func(t *testing.T) {
		r := d.reader("lobby/main", "carol", carolPassword)
		if n := d.closedBy("", "group", "member", "remove", "guards", "carol"); n != 1 {
			t.Errorf("closed_sessions = %d, want 1", n)
		}
		cutOff(t, d, "carol", r)
	})
	t.Run("disable user", func(t *testing.T) {
		r := d.reader("lobby/main", "bob", bobPassword)
		if n := d.closedBy("", "user", "disable", "bob"); n != 1 {
			t.Errorf("closed_sessions = %d, want 1", n)
		}
		cutOff(t, d, "bob", r)
		if _, err := testutil.StartReader(d.rtsp, "lobby/main", "bob", bobPassword); err == nil {
			t.Error("a disabled user could connect")
		}
	})
	t.Run("change password", func(t *testing.T) {
		r := d.reader("yard/main", "erin", alicePassword)
		if n := d.closedBy(carolPassword+"\n", "user", "passwd", "erin", "--password-stdin"); n != 1 {
			t.Errorf("closed_sessions = %d, want 1", n)
		}
		cutOff(t, d, "erin", r)
		if _, err := testutil.StartReader(d.rtsp, "yard/main", "erin", alicePassword); err == nil {
			t.Error("the old password still works")
		}
		d.reader("yard/main", "erin", carolPassword).Close()
	})
	t.Run("remove camera", func(t *testing.T) {
		if n := d.closedBy("", "camera", "remove", "lobby"); n != 1 {
			t.Errorf("closed_sessions = %d, want 1 (the witness on lobby)", n)
		}
		cutOff(t, d, "", witnessLobby)
	})

	// The still-allowed witness on the other camera never noticed.
	before := witnessYard.Packets()
	testutil.WaitFor(t, 5*time.Second, "yard witness still receiving", func() bool { return witnessYard.Packets() > before+20 })
	if witnessYard.Closed() || witnessYard.Lost() != 0 {
		t.Errorf("yard witness: closed=%v lost=%d", witnessYard.Closed(), witnessYard.Lost())
	}
	if lost := witnessLobby.Lost(); lost != 0 {
		t.Errorf("lobby witness lost %d packets before its camera was removed", lost)
	}
}

// TestHundredMixedEdits applies a hundred edits of every kind while a
// reader streams: no restart, no loss, and the reader is never touched.
func TestHundredMixedEdits(t *testing.T) {
	d := startDaemon(t, "")
	d.addCamera("lobby", startCamera(t))
	spare := startCamera(t)
	d.must(alicePassword+"\n", "user", "add", "watcher", "--password-stdin")
	d.must("", "grant", "watcher", "read", "lobby/main")
	r := d.reader("lobby/main", "watcher", alicePassword)
	pid := d.cmd.Process.Pid

	edits := 0
	for i := 0; edits < 100; i++ {
		u := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		steps := [][]string{
			{"user", "add", u, "--password-stdin"},
			{"grant", u, "read", "lobby/*"},
			{"group", "add", "g" + u},
			{"group", "member", "add", "g" + u, u},
			{"grant", "@g" + u, "read", "*"},
			{"camera", "add", "x" + u, "--url", spare.URL("main"), "--on-demand"},
			{"revoke", u, "read", "lobby/*"},
			{"camera", "remove", "x" + u},
			{"group", "remove", "g" + u},
			{"user", "remove", u},
		}
		for _, s := range steps {
			stdin := ""
			if s[len(s)-1] == "--password-stdin" {
				stdin = bobPassword + "\n"
			}
			d.must(stdin, s...)
			edits++
		}
	}
	before := r.Packets()
	testutil.WaitFor(t, 5*time.Second, "reader still receiving", func() bool { return r.Packets() > before+20 })
	if r.Closed() || r.Lost() != 0 {
		t.Fatalf("still-allowed reader: closed=%v lost=%d", r.Closed(), r.Lost())
	}
	if d.cmd.Process.Pid != pid || d.cmd.ProcessState != nil {
		t.Fatal("daemon restarted")
	}
	out := d.must("", "audit", "verify")
	if !strings.Contains(out, "intact: 1") { // 100 edits + the setup
		t.Fatalf("audit verify after edits: %s", out)
	}
}

// TestNonAdminCallerIsRefusedAndAudited runs the CLI as another uid. The
// socket is made world-writable for the test so that the peer-credential
// check, not the file mode, is what refuses.
func TestNonAdminCallerIsRefusedAndAudited(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root (CI runs as root) to run the CLI as another uid")
	}
	// t.TempDir's parents are 0700; this directory must be reachable by uid 65534.
	dir, err := os.MkdirTemp("", "camwarden-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	d := startDaemon(t, dir)
	if err := os.Chmod(d.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	bin := testutil.Binary(t, "camwarden")
	os.Chmod(bin, 0o755)
	os.Chmod(strings.TrimSuffix(bin, "/camwarden"), 0o755)
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", bin, "--socket", d.sock, "user", "list")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("exit %d, want 3 (permission denied); output:\n%s", code, out)
	}
	audit := d.must("", "--json", "audit", "list")
	if !strings.Contains(audit, "api.refused") || !strings.Contains(audit, "uid=65534") {
		t.Fatalf("refusal not audited:\n%s", audit)
	}
}

// TestSecretsAreWriteOnly checks no response shows a camera password.
func TestSecretsAreWriteOnly(t *testing.T) {
	d := startDaemon(t, "")
	d.addCamera("lobby", startCamera(t))
	for _, args := range [][]string{{"camera", "show", "lobby"}, {"camera", "list"}, {"stream", "list"}, {"status"}, {"audit", "list"}} {
		for _, mode := range [][]string{nil, {"--json"}} {
			out := d.must("", append(mode, args...)...)
			if strings.Contains(out, cameraPassword) || strings.Contains(out, "admin:") {
				t.Errorf("camwarden %v shows a credential:\n%s", args, out)
			}
		}
	}
	// A URL with credentials is refused, and the error does not echo it.
	out, code := d.cli("", "camera", "add", "bad", "--url", "rtsp://admin:"+"hunter2hunter2@127.0.0.1/x")
	if code == 0 || strings.Contains(out, "hunter2hunter2") {
		t.Errorf("URL with credentials: exit %d, output %q", code, out)
	}
}
