package store

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCameraRoundTrip(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	clk := newClock()
	s := openStore(t, path, k, Options{Now: clk.Now})

	full := Camera{
		Name: "cam1", Username: "admin",
		ONVIF: &ONVIFIdentity{URN: "urn:uuid:1", XAddr: "http://127.0.0.1:8080/onvif/device_service",
			Manufacturer: "Acme", Model: "X1", Firmware: "1.2", Serial: "S1", HardwareID: "HW"},
		Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1:554/main", Transport: "tcp"},
			{Name: "sub", URL: "rtsp://127.0.0.1:554/sub", Transport: "udp", OnDemand: true}},
	}
	update(t, s, func(tx *Tx) error {
		if err := tx.CreateCamera(full, "cam-secret-1"); err != nil {
			return err
		}
		return tx.CreateCamera(Camera{Name: "a-first", Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1/x"}}}, "")
	})
	err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.CreateCamera(Camera{Name: "cam1"}, "") })
	if !errors.Is(err, ErrExists) || err.Error() != `camera "cam1" already exists` {
		t.Fatalf("duplicate create: %v", err)
	}
	s.Close()

	s = openStore(t, path, k, Options{Now: clk.Now})
	defer s.Close()
	created := clk.Now()
	view(t, s, func(tx *Tx) error {
		c, err := tx.Camera("cam1")
		if err != nil {
			return err
		}
		want := full
		want.HasPassword, want.Created, want.Changed, want.Revision = true, created, created, 1
		if !reflect.DeepEqual(c, want) {
			t.Errorf("camera round trip:\n got %+v\nwant %+v", c, want)
		}
		pw, err := tx.CameraPassword("cam1")
		if err != nil || pw != "cam-secret-1" {
			t.Errorf("CameraPassword = %q, %v", pw, err)
		}
		pw, err = tx.CameraPassword("a-first")
		if err != nil || pw != "" {
			t.Errorf("CameraPassword(no password) = %q, %v", pw, err)
		}
		cams, err := tx.Cameras()
		if err != nil || len(cams) != 2 || cams[0].Name != "a-first" || cams[1].Name != "cam1" || cams[0].HasPassword {
			t.Errorf("Cameras = %+v, %v", cams, err)
		}
		_, err = tx.Camera("nope")
		if !errors.Is(err, ErrNotFound) || err.Error() != `camera "nope" not found` {
			t.Errorf("missing camera: %v", err)
		}
		return nil
	})

	clk.Advance(time.Minute)
	update(t, s, func(tx *Tx) error {
		return tx.UpdateCamera("cam1", func(c *Camera) error {
			c.Username = "viewer"
			c.Streams = c.Streams[:1]
			c.ONVIF = nil
			c.Revision = 99 // ignored
			return nil
		})
	})
	view(t, s, func(tx *Tx) error {
		c, _ := tx.Camera("cam1")
		if c.Username != "viewer" || len(c.Streams) != 1 || c.ONVIF != nil || c.Revision != 2 ||
			!c.Changed.Equal(clk.Now()) || !c.Created.Equal(created) || !c.HasPassword {
			t.Errorf("after UpdateCamera: %+v", c)
		}
		return nil
	})
	err = s.Update(context.Background(), nil, func(tx *Tx) error {
		return tx.UpdateCamera("cam1", func(c *Camera) error { c.Name = "cam2"; return nil })
	})
	if err == nil || !strings.Contains(err.Error(), "renaming") {
		t.Errorf("rename: %v", err)
	}
	err = s.Update(context.Background(), nil, func(tx *Tx) error {
		return tx.UpdateCamera("ghost", func(c *Camera) error { return nil })
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateCamera(ghost): %v", err)
	}

	update(t, s, func(tx *Tx) error { return tx.SetCameraPassword("cam1", "cam-secret-2") })
	view(t, s, func(tx *Tx) error {
		c, _ := tx.Camera("cam1")
		pw, err := tx.CameraPassword("cam1")
		if c.Revision != 3 || pw != "cam-secret-2" || err != nil {
			t.Errorf("after SetCameraPassword: rev %d pw %q err %v", c.Revision, pw, err)
		}
		return nil
	})
	update(t, s, func(tx *Tx) error { return tx.SetCameraPassword("cam1", "") })
	update(t, s, func(tx *Tx) error { return tx.DeleteCamera("a-first") })
	view(t, s, func(tx *Tx) error {
		c, _ := tx.Camera("cam1")
		if c.HasPassword || c.Revision != 4 {
			t.Errorf("after clearing password: %+v", c)
		}
		if _, err := tx.Camera("a-first"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted camera still there: %v", err)
		}
		return nil
	})
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.DeleteCamera("a-first") }); !errors.Is(err, ErrNotFound) {
		t.Errorf("double delete: %v", err)
	}
}

func TestUsersGroupsGrantsRoundTrip(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	clk := newClock()
	s := openStore(t, path, k, Options{Now: clk.Now})
	if !s.IsEmpty() {
		t.Fatal("new store not empty")
	}
	update(t, s, func(tx *Tx) error {
		for _, u := range []string{"carol", "alice", "bob"} {
			if err := tx.CreateUser(u, "pw-"+u); err != nil {
				return err
			}
		}
		for _, g := range []string{"ops", "viewers"} {
			if err := tx.CreateGroup(g); err != nil {
				return err
			}
		}
		for _, m := range [][2]string{{"viewers", "carol"}, {"viewers", "alice"}, {"ops", "bob"}, {"viewers", "bob"}} {
			if err := tx.AddMember(m[0], m[1]); err != nil {
				return err
			}
		}
		for _, g := range []Grant{{"alice", "read", "cam1/*"}, {"@viewers", "read", "*"}, {"bob", "publish", "cam2/main"}, {"@ops", "publish", "*"}, {"bob", "read", "*"}} {
			if err := tx.AddGrant(g); err != nil {
				return err
			}
		}
		return nil
	})
	if s.IsEmpty() {
		t.Error("IsEmpty with users")
	}
	for name, fn := range map[string]func(tx *Tx) error{
		"user exists":    func(tx *Tx) error { return tx.CreateUser("alice", "x") },
		"group exists":   func(tx *Tx) error { return tx.CreateGroup("ops") },
		"member exists":  func(tx *Tx) error { return tx.AddMember("ops", "bob") },
		"grant exists":   func(tx *Tx) error { return tx.AddGrant(Grant{"alice", "read", "cam1/*"}) },
		"no group":       func(tx *Tx) error { return tx.AddMember("nogroup", "bob") },
		"no user":        func(tx *Tx) error { return tx.AddMember("ops", "nobody") },
		"not member":     func(tx *Tx) error { return tx.RemoveMember("ops", "alice") },
		"no grant":       func(tx *Tx) error { return tx.RevokeGrant(Grant{"alice", "publish", "*"}) },
		"no user pw":     func(tx *Tx) error { return tx.SetUserPassword("nobody", "x") },
		"no user delete": func(tx *Tx) error { return tx.DeleteUser("nobody") },
		"no group del":   func(tx *Tx) error { return tx.DeleteGroup("nogroup") },
	} {
		err := s.Update(context.Background(), nil, fn)
		want := ErrNotFound
		if strings.Contains(name, "exists") {
			want = ErrExists
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.CreateUser("dave", "") }); err == nil {
		t.Error("empty password accepted")
	}
	s.Close()

	s = openStore(t, path, k, Options{Now: clk.Now})
	defer s.Close()
	var alice User
	view(t, s, func(tx *Tx) error {
		p, err := tx.PolicyData()
		if err != nil {
			return err
		}
		var names []string
		for _, u := range p.Users {
			names = append(names, u.Name)
			if u.CredentialVersion != 1 || !u.Created.Equal(clk.Now()) || u.Disabled {
				t.Errorf("user %+v", u)
			}
			ok, err := VerifyPassword(u.PasswordHash, "pw-"+u.Name)
			if !ok || err != nil {
				t.Errorf("VerifyPassword(%s) = %v %v", u.Name, ok, err)
			}
			if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
				t.Errorf("hash %q", u.PasswordHash)
			}
		}
		if strings.Join(names, ",") != "alice,bob,carol" {
			t.Errorf("users %v", names)
		}
		wantGroups := []Group{{"ops", []string{"bob"}}, {"viewers", []string{"alice", "bob", "carol"}}}
		if !reflect.DeepEqual(p.Groups, wantGroups) {
			t.Errorf("groups %+v", p.Groups)
		}
		wantGrants := []Grant{{"@ops", "publish", "*"}, {"@viewers", "read", "*"}, {"alice", "read", "cam1/*"}, {"bob", "publish", "cam2/main"}, {"bob", "read", "*"}}
		if !reflect.DeepEqual(p.Grants, wantGrants) {
			t.Errorf("grants %+v", p.Grants)
		}
		d, err := tx.UserDigestSecret("alice")
		if d != "pw-alice" || err != nil {
			t.Errorf("digest secret %q %v", d, err)
		}
		alice, _ = tx.User("alice")
		return nil
	})

	clk.Advance(time.Hour)
	update(t, s, func(tx *Tx) error {
		if err := tx.SetUserPassword("alice", "new-alice"); err != nil {
			return err
		}
		if err := tx.SetUserDisabled("carol", true); err != nil {
			return err
		}
		if err := tx.RemoveMember("viewers", "alice"); err != nil {
			return err
		}
		if err := tx.RevokeGrant(Grant{"alice", "read", "cam1/*"}); err != nil {
			return err
		}
		if err := tx.DeleteUser("bob"); err != nil {
			return err
		}
		return tx.DeleteGroup("ops")
	})
	view(t, s, func(tx *Tx) error {
		a, _ := tx.User("alice")
		if a.CredentialVersion != 2 || a.PasswordHash == alice.PasswordHash || !a.Changed.Equal(clk.Now()) {
			t.Errorf("after SetUserPassword: %+v", a)
		}
		if ok, _ := VerifyPassword(a.PasswordHash, "new-alice"); !ok {
			t.Error("new password does not verify")
		}
		if ok, _ := VerifyPassword(a.PasswordHash, "pw-alice"); ok {
			t.Error("old password still verifies")
		}
		if d, _ := tx.UserDigestSecret("alice"); d != "new-alice" {
			t.Errorf("digest after change %q", d)
		}
		c, _ := tx.User("carol")
		if !c.Disabled {
			t.Error("carol not disabled")
		}
		p, _ := tx.PolicyData()
		if len(p.Users) != 2 {
			t.Errorf("users after delete: %+v", p.Users)
		}
		// bob's memberships and grants went with him; @ops grants with ops.
		if !reflect.DeepEqual(p.Groups, []Group{{"viewers", []string{"carol"}}}) {
			t.Errorf("groups after deletes: %+v", p.Groups)
		}
		if !reflect.DeepEqual(p.Grants, []Grant{{"@viewers", "read", "*"}}) {
			t.Errorf("grants after deletes: %+v", p.Grants)
		}
		return nil
	})
}

func TestUpdateRollsBackWithAudit(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	defer s.Close()
	boom := errors.New("boom")
	audit := &AuditEntry{Action: "camera.add", Target: "cam1", Outcome: "ok"}
	err := s.Update(context.Background(), audit, func(tx *Tx) error {
		if err := tx.CreateCamera(Camera{Name: "cam1"}, "pw"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	if audit.Seq != 0 || audit.Hash != "" {
		t.Errorf("audit filled on failure: %+v", audit)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = s.Update(ctx, audit, func(tx *Tx) error {
		cancel() // cancelled before commit: rolled back
		return tx.CreateCamera(Camera{Name: "cam1"}, "pw")
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Update: %v", err)
	}
	if !s.IsEmpty() {
		t.Error("rolled-back camera is present")
	}
	list, err := s.AuditList(context.Background(), time.Time{}, 0)
	if err != nil || len(list) != 0 {
		t.Errorf("audit after rollback: %v %v", list, err)
	}
	if s.KeyID() != "" {
		t.Errorf("rolled-back data key visible: %q", s.KeyID())
	}
	// A Tx kept past its function refuses to work instead of touching bbolt.
	var kept *Tx
	update(t, s, func(tx *Tx) error { kept = tx; return nil })
	if _, err := kept.Cameras(); !errors.Is(err, ErrTxClosed) {
		t.Errorf("closed tx: %v", err)
	}
	// Writes in a read transaction fail cleanly.
	err = s.View(context.Background(), func(tx *Tx) error { return tx.CreateGroup("g") })
	if err == nil {
		t.Error("write in View succeeded")
	}
}

func TestOddInputsDoNotPanic(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	defer s.Close()
	names := []string{"", "\x00", "a\x00b", strings.Repeat("x", 40000), "ü/../*", "@", " "}
	for _, n := range names {
		_ = s.Update(context.Background(), nil, func(tx *Tx) error {
			_ = tx.CreateCamera(Camera{Name: n, Streams: []Stream{{Name: n, URL: n}}}, n)
			_ = tx.CreateUser(n, n+"pw")
			_ = tx.CreateGroup(n)
			_ = tx.AddMember(n, n)
			_ = tx.AddGrant(Grant{n, n, n})
			_, _ = tx.CameraPassword(n)
			_, _ = tx.UserDigestSecret(n)
			return nil
		})
	}
	// Grant keys are unambiguous: these differ only in where the split is.
	update(t, s, func(tx *Tx) error {
		if err := tx.AddGrant(Grant{"a", "bc", "d"}); err != nil {
			return err
		}
		return tx.AddGrant(Grant{"ab", "c", "d"})
	})
	view(t, s, func(tx *Tx) error {
		p, err := tx.PolicyData()
		if err != nil {
			t.Errorf("PolicyData after odd inputs: %v", err)
		}
		_ = p
		return nil
	})
	s.Close()
	// Whatever got stored, the database still opens.
	s2, err := Open(s.Path(), s.master(), Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s2.Close()
}

func TestNewFileModeAndProbe(t *testing.T) {
	path := dbPath(t)
	if has, id, err := ProbeSealed(path); has || id != "" || err != nil {
		t.Fatalf("ProbeSealed(missing) = %v %q %v", has, id, err)
	}
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	if s.Path() != path || s.MasterKeyID() != k.ID() || s.KeyID() != "" {
		t.Errorf("Path/MasterKeyID/KeyID: %q %q %q", s.Path(), s.MasterKeyID(), s.KeyID())
	}
	update(t, s, func(tx *Tx) error { return tx.CreateGroup("g") })
	s.Close()
	// No secret sealed yet: no wrapped data key, any master key opens it.
	if has, id, err := ProbeSealed(path); has || id != "" || err != nil {
		t.Fatalf("ProbeSealed(no secrets) = %v %q %v", has, id, err)
	}
	other := mustKey(t)
	s = openStore(t, path, other, Options{})
	update(t, s, func(tx *Tx) error { return tx.CreateUser("u", "pw") })
	if s.KeyID() == "" || s.KeyID() == other.ID() {
		t.Errorf("data key id after first secret: %q", s.KeyID())
	}
	s.Close()
	before := snapshot(t, path)
	has, id, err := ProbeSealed(path)
	if !has || id != other.ID() || err != nil {
		t.Fatalf("ProbeSealed = %v %q %v, want true %q", has, id, err, other.ID())
	}
	assertUnchanged(t, path, before)
}
