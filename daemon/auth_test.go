package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/store"
)

// newAuthFixture opens a real store with users alice (enabled) and dave
// (disabled) and returns an authenticator over its snapshot.
func newAuthFixture(t *testing.T) (*authenticator, *store.Store, func()) {
	t.Helper()
	k, err := store.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "camwarden.db"), k, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var cur *snapshot
	reload := func() {
		st.View(context.Background(), func(tx *store.Tx) error {
			pd, err := tx.PolicyData()
			if err != nil {
				t.Fatal(err)
			}
			if cur, err = buildSnapshot(pd); err != nil {
				t.Fatal(err)
			}
			return nil
		})
	}
	err = st.Update(context.Background(), nil, func(tx *store.Tx) error {
		if err := tx.CreateUser("alice", "alice-password"); err != nil {
			return err
		}
		if err := tx.CreateUser("dave", "dave-password"); err != nil {
			return err
		}
		return tx.SetUserDisabled("dave", true)
	})
	if err != nil {
		t.Fatal(err)
	}
	reload()
	return newAuthenticator(func() *snapshot { return cur }, st), st, reload
}

func TestAuthenticatorBasicAndCache(t *testing.T) {
	a, st, reload := newAuthFixture(t)
	if _, ok := a.VerifyBasic("alice", "alice-password"); !ok {
		t.Fatal("correct password refused")
	}
	if _, ok := a.VerifyBasic("alice", "wrong"); ok {
		t.Fatal("wrong password accepted")
	}
	if _, ok := a.VerifyBasic("dave", "dave-password"); ok {
		t.Fatal("disabled user accepted")
	}
	if _, ok := a.VerifyBasic("nobody", "x"); ok {
		t.Fatal("unknown user accepted")
	}
	// The cache holds the successful check; a password change must not
	// let the old password in through it.
	if a.cache.Len() != 1 {
		t.Fatalf("cache has %d entries, want 1", a.cache.Len())
	}
	if v, hit := a.CachedBasic("alice", "alice-password"); !hit || v != 1 {
		t.Fatalf("repeated correct login not answered from the cache: hit=%v version=%d", hit, v)
	}
	if _, hit := a.CachedBasic("alice", "wrong"); hit {
		t.Fatal("wrong password answered from the cache")
	}
	if err := st.Update(context.Background(), nil, func(tx *store.Tx) error { return tx.SetUserPassword("alice", "new-password") }); err != nil {
		t.Fatal(err)
	}
	reload()
	if _, hit := a.CachedBasic("alice", "alice-password"); hit {
		t.Fatal("old password answered from the cache after a password change")
	}
	if _, ok := a.VerifyBasic("alice", "alice-password"); ok {
		t.Fatal("old password accepted from the cache after a password change")
	}
	v, ok := a.VerifyBasic("alice", "new-password")
	if !ok || v != 2 {
		t.Fatalf("new password: ok=%v version=%d", ok, v)
	}
	a.reset()
	if a.cache.Len() != 0 {
		t.Fatal("reset kept entries")
	}
}

func TestAuthenticatorDigestSecret(t *testing.T) {
	a, _, _ := newAuthFixture(t)
	sec, v, ok := a.DigestSecret("alice")
	if !ok || sec != "alice-password" || v != 1 {
		t.Fatalf("DigestSecret(alice) = %v %v", v, ok)
	}
	if _, _, ok := a.DigestSecret("dave"); ok {
		t.Fatal("disabled user has a digest secret")
	}
	if _, _, ok := a.DigestSecret("nobody"); ok {
		t.Fatal("unknown user has a digest secret")
	}
}

// BenchmarkVerifyBasicCached is the reconnect-storm path: the same correct
// credentials again, answered from the cache without argon2.
func BenchmarkVerifyBasicCached(b *testing.B) {
	k, _ := store.NewKey()
	st, err := store.Open(filepath.Join(b.TempDir(), "camwarden.db"), k, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	st.Update(context.Background(), nil, func(tx *store.Tx) error { return tx.CreateUser("alice", "alice-password") })
	var snap *snapshot
	st.View(context.Background(), func(tx *store.Tx) error {
		pd, _ := tx.PolicyData()
		snap, _ = buildSnapshot(pd)
		return nil
	})
	a := newAuthenticator(func() *snapshot { return snap }, st)
	a.VerifyBasic("alice", "alice-password")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.VerifyBasic("alice", "alice-password"); !ok {
			b.Fatal("refused")
		}
	}
}

// TestDummyHashIsValid: the constant must parse with the store's current
// parameters, or unknown users would be refused faster than known ones.
func TestDummyHashIsValid(t *testing.T) {
	ok, err := store.VerifyPassword(dummyHash, "camwarden-dummy-password-never-used")
	if err != nil || !ok {
		t.Fatalf("dummy hash: ok=%v err=%v", ok, err)
	}
	real, err := store.HashPassword("x")
	if err != nil {
		t.Fatal(err)
	}
	params := func(h string) string { return strings.Join(strings.Split(h, "$")[:4], "$") }
	if params(real) != params(dummyHash) {
		t.Fatalf("dummy hash parameters %s differ from the store's %s", params(dummyHash), params(real))
	}
}
