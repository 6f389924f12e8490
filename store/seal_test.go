package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
)

func TestLoadKeyFormats(t *testing.T) {
	dir := t.TempDir()
	k := mustKey(t)
	hexKey := hex.EncodeToString(k.b[:])
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, data := range map[string][]byte{
		"raw":   k.b[:],
		"hex":   []byte(hexKey),
		"hexnl": []byte(hexKey + "\n"),
		"hexcr": []byte(hexKey + "\r\n"),
		"HEX":   []byte(strings.ToUpper(hexKey) + "\n"),
	} {
		got, err := LoadKey(write(name, data))
		if err != nil || got.ID() != k.ID() {
			t.Errorf("%s: %v id %q want %q", name, err, got.ID(), k.ID())
		}
	}
	for name, data := range map[string][]byte{
		"short":   k.b[:31],
		"rawnl":   append(append([]byte{}, k.b[:]...), '\n'),
		"hex2nl":  []byte(hexKey + "\n\n"),
		"nothex":  []byte(strings.Repeat("zz", 32)),
		"hex63":   []byte(hexKey[:63]),
		"zero":    make([]byte, 32),
		"empty":   nil,
		"spaced":  []byte(" " + hexKey),
		"tooLong": bytes.Repeat([]byte("a"), 4096),
	} {
		_, err := LoadKey(write(name, data))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
		if strings.Contains(err.Error(), hexKey[:16]) || strings.Contains(err.Error(), "zzzz") {
			t.Errorf("%s: error echoes key material: %v", name, err)
		}
	}
	if _, err := LoadKey(filepath.Join(dir, "short")); !strings.Contains(err.Error(), "32 raw bytes or 64 hex characters") {
		t.Errorf("wrong-length message: %v", err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key file: %v", err)
	}
	// Printing a key shows its id only.
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(f, k)
		if strings.Contains(out, hexKey[:16]) || bytes.Contains([]byte(out), k.b[:8]) {
			t.Errorf("%s prints key material: %s", f, out)
		}
	}
}

func TestWriteNewKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "master.key")
	k, err := WriteNewKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 || KeyFileWorldReadable(p) {
		t.Errorf("mode %v", fi.Mode())
	}
	got, err := LoadKey(p)
	if err != nil || got.ID() != k.ID() || len(k.ID()) != 16 {
		t.Fatalf("LoadKey: %v %q %q", err, got.ID(), k.ID())
	}
	before := snapshot(t, p)
	if _, err := WriteNewKeyFile(p); !errors.Is(err, os.ErrExist) {
		t.Errorf("second WriteNewKeyFile: %v", err)
	}
	assertUnchanged(t, p, before)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if !KeyFileWorldReadable(p) {
		t.Error("0644 not reported world-readable")
	}
	if KeyFileWorldReadable(p + ".missing") {
		t.Error("missing file reported world-readable")
	}
}

// secrets returns every sealed blob in the file, keyed by "kind/name/field".
func blobs(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(btx *bolt.Tx) error {
		_ = btx.Bucket(bucketCameras).ForEach(func(k, v []byte) error {
			r, _ := decodeCamera(k, v)
			if len(r.Password) > 0 {
				out["camera/"+r.Name+"/password"] = r.Password
			}
			return nil
		})
		return btx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			r, _ := decodeUser(k, v)
			out["user/"+r.Name+"/digest"] = r.Digest
			return nil
		})
	})
	return out
}

func populate(t *testing.T, s *Store) {
	update(t, s, func(tx *Tx) error {
		if err := tx.CreateCamera(Camera{Name: "cam1", Username: "admin"}, "Cam1-Plaintext-Secret"); err != nil {
			return err
		}
		if err := tx.CreateCamera(Camera{Name: "cam2", Username: "admin"}, "Cam2-Plaintext-Secret"); err != nil {
			return err
		}
		if err := tx.CreateCamera(Camera{Name: "cam3"}, ""); err != nil {
			return err
		}
		if err := tx.CreateUser("alice", "Alice-Plaintext-Secret"); err != nil {
			return err
		}
		return tx.CreateUser("bob", "Bob-Plaintext-Secret")
	})
}

var plaintexts = []string{"Cam1-Plaintext-Secret", "Cam2-Plaintext-Secret", "Alice-Plaintext-Secret", "Bob-Plaintext-Secret"}

func TestSecretsNeverInFileOrLogs(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	var logBuf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Trace})
	s := openStore(t, path, k, Options{Logger: log})
	populate(t, s)
	var dk Key
	view(t, s, func(tx *Tx) error { var err error; dk, err = tx.dataKey(); return err })
	if _, _, err := s.RotateKey(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	var dk2 Key
	view(t, s, func(tx *Tx) error { var err error; dk2, err = tx.dataKey(); return err })
	update(t, s, func(tx *Tx) error { return tx.SetCameraPassword("cam1", "Cam1-Plaintext-Secret") })
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string][]byte{
		"master key":     k.b[:],
		"master key hex": []byte(hex.EncodeToString(k.b[:])),
		"data key":       dk.b[:],
		"new data key":   dk2.b[:],
	}
	for _, p := range plaintexts {
		forbidden[p] = []byte(p)
	}
	for what, b := range forbidden {
		if bytes.Contains(data, b) {
			t.Errorf("%s appears in the database file", what)
		}
		if bytes.Contains(logBuf.Bytes(), b) {
			t.Errorf("%s appears in the log", what)
		}
	}
	if !strings.Contains(logBuf.String(), "rotated data key") {
		t.Errorf("log did not capture anything useful: %q", logBuf.String())
	}
}

func TestBlobMovedToAnotherRecordFails(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	populate(t, s)
	s.Close()
	b := blobs(t, path)
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		cams := btx.Bucket(bucketCameras)
		// cam1's blob into cam2 (same kind and field, other record)...
		r, _ := decodeCamera([]byte("cam2"), cams.Get([]byte("cam2")))
		r.Password = b["camera/cam1/password"]
		v, _ := encode(r)
		if err := cams.Put([]byte("cam2"), v); err != nil {
			return err
		}
		// ...and alice's digest blob into cam3's password (other kind and field).
		r, _ = decodeCamera([]byte("cam3"), cams.Get([]byte("cam3")))
		r.Password = b["user/alice/digest"]
		v, _ = encode(r)
		return cams.Put([]byte("cam3"), v)
	})
	s = openStore(t, path, k, Options{})
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		for _, name := range []string{"cam2", "cam3"} {
			pw, err := tx.CameraPassword(name)
			if !errors.Is(err, ErrSealed) || pw != "" {
				t.Errorf("%s: moved blob opened: %q %v", name, pw, err)
			}
			for _, p := range plaintexts {
				if err != nil && strings.Contains(err.Error(), p) {
					t.Errorf("error leaks secret: %v", err)
				}
			}
		}
		if pw, err := tx.CameraPassword("cam1"); pw != "Cam1-Plaintext-Secret" || err != nil {
			t.Errorf("cam1 %q %v", pw, err)
		}
		return nil
	})
}

func TestWrongAndMissingKeyRefused(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	populate(t, s)
	s.Close()
	before := snapshot(t, path)

	other := mustKey(t)
	_, err := Open(path, other, Options{})
	var km *KeyMismatchError
	if !errors.As(err, &km) || km.Expected != k.ID() || km.Got != other.ID() {
		t.Fatalf("wrong key: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, k.ID()) || !strings.Contains(msg, other.ID()) || !strings.Contains(msg, path) {
		t.Errorf("wrong-key message: %s", msg)
	}
	_, err = Open(path, Key{}, Options{})
	if !errors.As(err, &km) || km.Expected != k.ID() || km.Got != "" || !errors.Is(err, ErrNoKey) {
		t.Fatalf("missing key: %v", err)
	}
	if !strings.Contains(err.Error(), "no master key was loaded") {
		t.Errorf("missing-key message: %v", err)
	}
	assertUnchanged(t, path, before)

	// No key for a database that does not exist yet: nothing is created.
	fresh := filepath.Join(t.TempDir(), "new.db")
	if _, err := Open(fresh, Key{}, Options{}); !errors.Is(err, ErrNoKey) {
		t.Errorf("create without key: %v", err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file created without key: %v", err)
	}
}

func TestRotateKeyResealsEverything(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	populate(t, s)
	oldID := s.KeyID()
	s.Close()
	before := blobs(t, path)
	s = openStore(t, path, k, Options{})
	if s.KeyID() != oldID {
		t.Errorf("KeyID after reopen %q want %q", s.KeyID(), oldID)
	}
	audit := &AuditEntry{Action: "key.rotate", Outcome: "ok"}
	newID, n, err := s.RotateKey(context.Background(), audit)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || newID == oldID || s.KeyID() != newID || s.MasterKeyID() != k.ID() || audit.Seq != 1 {
		t.Errorf("RotateKey: id %q (old %q) n %d store %q audit %+v", newID, oldID, n, s.KeyID(), audit)
	}
	s.Close()
	after := blobs(t, path)
	if len(after) != len(before) {
		t.Fatalf("blob count %d -> %d", len(before), len(after))
	}
	for name, b := range after {
		if bytes.Equal(b, before[name]) {
			t.Errorf("%s: blob unchanged by rotation", name)
		}
		if id, _ := blobKeyID(b); id != newID {
			t.Errorf("%s: sealed with %s, want %s", name, id, newID)
		}
	}
	s = openStore(t, path, k, Options{})
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		for name, want := range map[string]string{"cam1": "Cam1-Plaintext-Secret", "cam2": "Cam2-Plaintext-Secret", "cam3": ""} {
			if pw, err := tx.CameraPassword(name); pw != want || err != nil {
				t.Errorf("%s after rotation: %q %v", name, pw, err)
			}
		}
		for name, want := range map[string]string{"alice": "Alice-Plaintext-Secret", "bob": "Bob-Plaintext-Secret"} {
			if d, err := tx.UserDigestSecret(name); d != want || err != nil {
				t.Errorf("%s after rotation: %q %v", name, d, err)
			}
		}
		return nil
	})
	// A blob left over from the old data key is named as such.
	update(t, s, func(tx *Tx) error {
		b, _ := tx.bucket(bucketCameras)
		r, _ := decodeCamera([]byte("cam1"), b.Get([]byte("cam1")))
		r.Password = before["camera/cam1/password"]
		return tx.put(b, kindCamera, "cam1", []byte("cam1"), r)
	})
	view(t, s, func(tx *Tx) error {
		_, err := tx.CameraPassword("cam1")
		want := fmt.Sprintf("sealed with key %s, the loaded key is %s", oldID, newID)
		if !errors.Is(err, ErrSealed) || !strings.Contains(err.Error(), want) {
			t.Errorf("stale blob: %v (want %q)", err, want)
		}
		return nil
	})
}

func TestRewrapMasterKey(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	populate(t, s)
	dataID := s.KeyID()
	nk := mustKey(t)
	if err := s.RewrapMasterKey(context.Background(), nk); err != nil {
		t.Fatal(err)
	}
	if s.MasterKeyID() != nk.ID() || s.KeyID() != dataID {
		t.Errorf("after rewrap: master %q data %q", s.MasterKeyID(), s.KeyID())
	}
	view(t, s, func(tx *Tx) error {
		if pw, err := tx.CameraPassword("cam1"); pw != "Cam1-Plaintext-Secret" || err != nil {
			t.Errorf("cam1 %q %v", pw, err)
		}
		return nil
	})
	s.Close()
	var km *KeyMismatchError
	if _, err := Open(path, k, Options{}); !errors.As(err, &km) || km.Expected != nk.ID() {
		t.Fatalf("old master after rewrap: %v", err)
	}
	if has, id, err := ProbeSealed(path); !has || id != nk.ID() || err != nil {
		t.Errorf("ProbeSealed after rewrap: %v %q %v", has, id, err)
	}
	s = openStore(t, path, nk, Options{})
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		if d, err := tx.UserDigestSecret("bob"); d != "Bob-Plaintext-Secret" || err != nil {
			t.Errorf("bob %q %v", d, err)
		}
		return nil
	})
	if s.KeyID() != dataID {
		t.Errorf("data key changed by rewrap")
	}
}

func TestSealFormat(t *testing.T) {
	k := mustKey(t)
	a, _ := seal(k, "camera", "cam1", "password", []byte("x"))
	b, _ := seal(k, "camera", "cam1", "password", []byte("x"))
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are identical (nonce reuse?)")
	}
	if pt, err := openSealed(k, "camera", "cam1", "password", a); err != nil || string(pt) != "x" {
		t.Fatalf("open: %q %v", pt, err)
	}
	for _, ad := range [][3]string{{"user", "cam1", "password"}, {"camera", "cam2", "password"}, {"camera", "cam1", "digest"}, {"camera", "cam", "1password"}} {
		if _, err := openSealed(k, ad[0], ad[1], ad[2], a); !errors.Is(err, ErrSealed) {
			t.Errorf("opened under %v: %v", ad, err)
		}
	}
	// Relabelling the key id is caught (it is authenticated).
	c := append([]byte{}, a...)
	c[3] ^= 1
	if _, err := openSealed(k, "camera", "cam1", "password", c); !errors.Is(err, ErrSealed) {
		t.Errorf("relabelled blob: %v", err)
	}
	for i := range a {
		d := append([]byte{}, a...)
		d[i] ^= 0x80
		if _, err := openSealed(k, "camera", "cam1", "password", d); err == nil {
			t.Fatalf("bit flip at %d not detected", i)
		}
	}
}

func TestCheckKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "master.key")
	if _, err := WriteNewKeyFile(p); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, true}, {0o440, true}, {0o644, false}, {0o666, false}, {0o660, false}, {0o604, false}} {
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckKeyFileMode(p)
		if (err == nil) != tc.ok {
			t.Errorf("mode %04o: %v", tc.mode, err)
		}
		if err != nil && (!strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", tc.mode))) {
			t.Errorf("mode %04o: error does not name the file and the mode: %v", tc.mode, err)
		}
	}
}
