package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCheckSealedFindsAFlippedByte: one flipped ciphertext byte in one
// camera's sealed password, and one user digest copied from another user,
// are both listed by kind and name; intact records are not.
func TestCheckSealedFindsAFlippedByte(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	update(t, s, func(tx *Tx) error {
		for _, c := range []string{"cam1", "cam2"} {
			if err := tx.CreateCamera(Camera{Name: c}, "Sealed-Cam-Secret"); err != nil {
				return err
			}
		}
		for _, u := range []string{"alice", "bob"} {
			if err := tx.CreateUser(u, "Sealed-User-Pw1"); err != nil {
				return err
			}
		}
		return nil
	})
	if d, err := s.CheckSealed(context.Background()); err != nil || len(d) != 0 {
		t.Fatalf("intact database: %+v %v", d, err)
	}
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		cams := btx.Bucket(bucketCameras)
		r, err := decodeCamera([]byte("cam2"), cams.Get([]byte("cam2")))
		if err != nil {
			return err
		}
		r.Password[len(r.Password)-20] ^= 0x01
		v, _ := encode(r)
		if err := cams.Put([]byte("cam2"), v); err != nil {
			return err
		}
		users := btx.Bucket(bucketUsers)
		a, _ := decodeUser([]byte("alice"), users.Get([]byte("alice")))
		b, _ := decodeUser([]byte("bob"), users.Get([]byte("bob")))
		b.Digest = a.Digest
		v, _ = encode(b)
		return users.Put([]byte("bob"), v)
	})
	s = openStore(t, path, k, Options{}) // still opens: damage is reported, not fatal
	defer s.Close()
	d, err := s.CheckSealed(context.Background())
	if err != nil || len(d) != 2 {
		t.Fatalf("CheckSealed = %+v %v", d, err)
	}
	if d[0].Kind != "camera" || d[0].Name != "cam2" || d[0].Field != "password" || !strings.Contains(d[0].Reason, "authentication failed") ||
		d[1].Kind != "user" || d[1].Name != "bob" || d[1].Field != "digest" {
		t.Errorf("damaged = %+v", d)
	}
	for _, x := range d {
		if strings.Contains(x.Reason, "Sealed-") {
			t.Errorf("reason leaks a secret: %q", x.Reason)
		}
	}
}

// TestDiskFull fills a real tmpfs (size-limited, in a private mount
// namespace) until a write fails: the error names the directory whose
// device is full, every acknowledged write is still there, the chain still
// verifies, and once space is freed writes succeed again.
func TestDiskFull(t *testing.T) {
	if dir := os.Getenv("CAMWARDEN_DISKFULL_DIR"); dir != "" {
		diskFullChild(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to mount a tmpfs in a private mount namespace (CI runs as root)")
	}
	dir := t.TempDir()
	script := `mount -t tmpfs -o size=1m camwarden-test "$CAMWARDEN_DISKFULL_DIR" && exec "$0" -test.run '^TestDiskFull$' -test.count=1 -test.v`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), "CAMWARDEN_DISKFULL_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDiskFull") {
		t.Fatalf("disk-full child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func diskFullChild(t *testing.T, dir string) {
	ctx := context.Background()
	path := filepath.Join(dir, "camwarden.db")
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	// Leave little room, so the database hits the wall quickly.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 32<<10)); err != nil {
			break
		}
	}
	f.Close()
	os.Truncate(filler, mustSize(t, filler)-160<<10)
	acked := 0
	var werr error
	for i := range 100_000 {
		name := fmt.Sprintf("cam%05d", i)
		werr = s.Update(ctx, &AuditEntry{Action: "camera.add", Target: name, Outcome: "ok", Args: map[string]string{"pad": strings.Repeat("x", 400)}},
			func(tx *Tx) error { return tx.CreateCamera(Camera{Name: name}, "Disk-Full-Secret") })
		if werr != nil {
			break
		}
		acked++
	}
	if !errors.Is(werr, ErrNoSpace) || !strings.Contains(werr.Error(), "no space left on the device holding "+dir) {
		t.Fatalf("after %d writes: %v; want ErrNoSpace naming %s", acked, werr, dir)
	}
	if acked == 0 {
		t.Fatal("no write succeeded before the disk filled")
	}
	t.Logf("%d writes acknowledged, then: %v", acked, werr)
	count := func() int {
		var n int
		view(t, s, func(tx *Tx) error {
			cams, err := tx.Cameras()
			n = len(cams)
			return err
		})
		return n
	}
	if n := count(); n != acked {
		t.Errorf("%d cameras readable, %d writes acknowledged", n, acked)
	}
	s.Close()
	s = openStore(t, path, k, Options{})
	defer s.Close()
	if n := count(); n != acked {
		t.Errorf("after reopening: %d cameras, %d acknowledged", n, acked)
	}
	if v, err := s.VerifyAudit(ctx); err != nil || !v.OK || v.Entries != uint64(acked) {
		t.Errorf("audit after disk full: %+v %v (acked %d)", v, err, acked)
	}
	os.Remove(filler)
	if err := s.Update(ctx, &AuditEntry{Action: "camera.add", Target: "after", Outcome: "ok"},
		func(tx *Tx) error { return tx.CreateCamera(Camera{Name: "after"}, "Disk-Full-Secret") }); err != nil {
		t.Errorf("write after freeing space: %v", err)
	}
}

func mustSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
