package store

import (
	"errors"
	"testing"
)

func TestImportUser(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	hash, err := HashPassword("shared-password")
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx *Tx) error {
		for _, n := range []string{"u1", "u2"} {
			if err := tx.ImportUser(n, hash, "shared-password"); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx *Tx) error {
		u, err := tx.User("u2")
		if err != nil {
			return err
		}
		if ok, err := VerifyPassword(u.PasswordHash, "shared-password"); !ok || err != nil {
			t.Errorf("imported hash does not verify: %v %v", ok, err)
		}
		if sec, err := tx.UserDigestSecret("u2"); err != nil || sec != "shared-password" {
			t.Errorf("digest secret: %v", err)
		}
		return nil
	})
	err = s.Update(t.Context(), nil, func(tx *Tx) error { return tx.ImportUser("u1", hash, "x") })
	if !errors.Is(err, ErrExists) {
		t.Errorf("duplicate import: %v", err)
	}
	err = s.Update(t.Context(), nil, func(tx *Tx) error { return tx.ImportUser("u3", "not-a-hash", "x") })
	if err == nil {
		t.Error("malformed hash accepted")
	}
}
