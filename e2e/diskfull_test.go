package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDiskFullSaysWhichDevice runs the daemon with its state directory on
// a 2 MiB tmpfs (in a private mount namespace), fills it, and checks that a
// change is refused with "no space left on the device holding STATE_DIR"
// (not "internal error"), that nothing acknowledged before is lost, and
// that the daemon takes changes again once space is freed.
func TestDiskFullSaysWhichDevice(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root (CI runs as root) to mount a tmpfs in a private mount namespace")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	wrapper := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=2m,mode=0700 camwarden-e2e "$1" && shift && exec "$@"`, "sh", state}
	d := startDaemonIn(t, dir, wrapper)
	for i := range 3 {
		d.must(alicePassword+"\n", "user", "add", "user"+strconv.Itoa(i), "--password-stdin")
	}
	ns := func(script string) (string, error) {
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(d.cmd.Process.Pid), "-m", "--", "sh", "-c", script, "sh", state).CombinedOutput()
		return string(out), err
	}
	// Fill the device (dd stops at ENOSPC), then leave no room at all.
	ns(`dd if=/dev/zero of="$1/filler" bs=64k 2>/dev/null; sync`)
	if out, err := ns(`df -k "$1" | tail -1`); err != nil || !strings.Contains(out, "100%") {
		t.Logf("df: %s %v", out, err)
	}
	var out string
	var code, tries int
	for i := range 50 {
		tries = i // the free pages bbolt still holds may take a few writes
		out, code = d.cli(alicePassword+"\n", "user", "add", "full"+strconv.Itoa(i), "--password-stdin")
		if code != 0 {
			break
		}
	}
	if code == 0 {
		t.Fatal("every write succeeded on a full device")
	}
	t.Logf("refused after %d writes on the full device: %s", tries, strings.TrimSpace(out))
	want := "no space left on the device holding " + state
	if !strings.Contains(out, want) || strings.Contains(out, "internal error") {
		t.Fatalf("on a full disk: exit %d\n%s\nwant %q", code, out, want)
	}
	list := d.must("", "user", "list")
	for i := range 3 {
		if !strings.Contains(list, "user"+strconv.Itoa(i)) {
			t.Errorf("user%d lost after disk full:\n%s", i, list)
		}
	}
	if v := d.must("", "audit", "verify"); !strings.Contains(v, "intact") {
		t.Errorf("audit after disk full: %s", v)
	}
	if _, err := ns(`rm -f "$1/filler"`); err != nil {
		t.Fatal(err)
	}
	d.must(alicePassword+"\n", "user", "add", "after", "--password-stdin")
	if v := d.must("", "audit", "verify"); !strings.Contains(v, "intact") {
		t.Errorf("audit after freeing space: %s", v)
	}
	d.stop()
}
