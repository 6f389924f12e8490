package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const bindSecret = "Dir-Bind-Plaintext-Secret"

func TestIssuersAndGroupMappings(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	defer s.Close()
	portal := Issuer{Name: "portal", Issuer: "https://portal.test/", Audience: "box-1", JWKSURL: "https://portal.test/jwks"}
	update(t, s, func(tx *Tx) error {
		if err := tx.CreateGroup("guards"); err != nil {
			return err
		}
		return tx.CreateIssuer(portal)
	})
	err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.CreateIssuer(portal) })
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate issuer name: %v", err)
	}
	other := portal
	other.Name = "other"
	err = s.Update(context.Background(), nil, func(tx *Tx) error { return tx.CreateIssuer(other) })
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate iss: %v", err)
	}
	bad := portal
	bad.Name, bad.Issuer, bad.JWKSFile = "bad", "x", "/etc/jwks.json" // URL and file
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.CreateIssuer(bad) }); err == nil {
		t.Fatal("issuer with a JWKS URL and a file accepted")
	}

	m := GroupMapping{Group: "guards", Issuer: "portal", Value: "site-7-guards"}
	for _, tc := range []struct {
		m    GroupMapping
		want error
	}{
		{GroupMapping{Group: "nope", Issuer: "portal", Value: "v"}, ErrNotFound},
		{GroupMapping{Group: "guards", Issuer: "nope", Value: "v"}, ErrNotFound},
		{GroupMapping{Group: "guards", DirectoryGroup: "cn=g,dc=test"}, ErrNotFound}, // no directory yet
	} {
		if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.AddGroupMapping(tc.m) }); !errors.Is(err, tc.want) {
			t.Fatalf("mapping %v: %v, want %v", tc.m, err, tc.want)
		}
	}
	if err := s.Update(context.Background(), nil, func(tx *Tx) error {
		return tx.AddGroupMapping(GroupMapping{Group: "guards", Issuer: "portal"})
	}); err == nil {
		t.Fatal("issuer mapping without a claim value accepted")
	}
	update(t, s, func(tx *Tx) error { return tx.AddGroupMapping(m) })
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.AddGroupMapping(m) }); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate mapping: %v", err)
	}
	view(t, s, func(tx *Tx) error {
		ms, err := tx.GroupMappings()
		if len(ms) != 1 || ms[0] != m {
			t.Fatalf("mappings %v", ms)
		}
		is, err2 := tx.Issuers()
		if len(is) != 1 || is[0].Name != "portal" || is[0].Created.IsZero() {
			t.Fatalf("issuers %+v", is)
		}
		return errors.Join(err, err2)
	})
	// removing the issuer drops its mappings
	update(t, s, func(tx *Tx) error { return tx.DeleteIssuer("portal") })
	view(t, s, func(tx *Tx) error {
		ms, err := tx.GroupMappings()
		if len(ms) != 0 {
			t.Fatalf("mappings left after the issuer went: %v", ms)
		}
		return err
	})
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.DeleteIssuer("portal") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestDirectoryBindPasswordIsSealed(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	dir := Directory{URL: "ldaps://dc1.test", BindDN: "cn=svc,dc=test", BaseDN: "ou=people,dc=test",
		UserFilter: "(sAMAccountName=%s)", Timeout: 3 * time.Second, SyncInterval: time.Minute}
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.SetDirectory(dir, "") }); err == nil {
		t.Fatal("a directory without a bind password was accepted")
	}
	update(t, s, func(tx *Tx) error {
		if err := tx.SetDirectory(dir, bindSecret); err != nil {
			return err
		}
		if err := tx.CreateGroup("guards"); err != nil {
			return err
		}
		return tx.AddGroupMapping(GroupMapping{Group: "guards", DirectoryGroup: "CN=Guards,OU=Groups,DC=test"})
	})
	// a change without a new password keeps the sealed one
	dir.BaseDN = "ou=staff,dc=test"
	update(t, s, func(tx *Tx) error { return tx.SetDirectory(dir, "") })
	view(t, s, func(tx *Tx) error {
		got, ok, err := tx.Directory()
		if err != nil || !ok || !got.HasBindPassword || got.BaseDN != "ou=staff,dc=test" || got.Timeout != 3*time.Second || got.SyncInterval != time.Minute {
			t.Fatalf("directory %+v ok %v err %v", got, ok, err)
		}
		pw, err := tx.DirectoryBindPassword()
		if pw != bindSecret {
			t.Fatalf("bind password did not round-trip: %v", err)
		}
		return err
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(bindSecret)) {
		t.Fatal("the bind password is in the database file in clear")
	}
	// key rotation re-seals it; CheckSealed opens it
	s = openStore(t, path, k, Options{})
	defer s.Close()
	if _, n, err := s.RotateKey(context.Background(), nil); err != nil || n != 1 {
		t.Fatalf("RotateKey resealed %d (want the bind password): %v", n, err)
	}
	view(t, s, func(tx *Tx) error {
		pw, err := tx.DirectoryBindPassword()
		if pw != bindSecret {
			t.Fatalf("bind password after rotation: %v", err)
		}
		return err
	})
	if bad, err := s.CheckSealed(context.Background()); err != nil || len(bad) != 0 {
		t.Fatalf("CheckSealed: %v %v", bad, err)
	}
	// a damaged blob is reported as the directory's
	update(t, s, func(tx *Tx) error {
		b, _ := tx.bucket(bucketDirectory)
		r, _, err := tx.directoryRec()
		if err != nil {
			return err
		}
		r.BindPassword[len(r.BindPassword)-1] ^= 1
		return tx.put(b, kindDirectory, directoryKey, []byte(directoryKey), r)
	})
	bad, err := s.CheckSealed(context.Background())
	if err != nil || len(bad) != 1 || bad[0].Kind != "directory" || bad[0].Field != "bind_password" {
		t.Fatalf("CheckSealed of a damaged bind password: %+v %v", bad, err)
	}
	// clearing the directory drops its mappings
	update(t, s, func(tx *Tx) error { return tx.ClearDirectory() })
	view(t, s, func(tx *Tx) error {
		ms, err := tx.GroupMappings()
		if len(ms) != 0 {
			t.Fatalf("directory mappings left: %v", ms)
		}
		return err
	})
}

func TestRevokedTokensLapse(t *testing.T) {
	clk := newClock()
	s := openStore(t, dbPath(t), mustKey(t), Options{Now: clk.Now})
	defer s.Close()
	now := clk.Now()
	update(t, s, func(tx *Tx) error {
		if err := tx.RevokeToken("jti-1", now.Add(time.Hour)); err != nil {
			return err
		}
		if err := tx.RevokeToken("jti-1", now.Add(time.Minute)); err != nil { // earlier: the later stays
			return err
		}
		return tx.RevokeToken("jti-2", now.Add(10*time.Minute))
	})
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.RevokeToken("", now) }); err == nil {
		t.Fatal("empty jti accepted")
	}
	clk.Advance(30 * time.Minute)
	update(t, s, func(tx *Tx) error { return tx.RevokeToken("jti-3", clk.Now().Add(time.Hour)) }) // prunes jti-2
	view(t, s, func(tx *Tx) error {
		rs, err := tx.RevokedTokens()
		if len(rs) != 2 || rs[0].JTI != "jti-1" || !rs[0].Until.Equal(now.Add(time.Hour)) || rs[1].JTI != "jti-3" {
			t.Fatalf("revocations %+v", rs)
		}
		b, _ := tx.bucket(bucketRevokedTokens)
		if b.Get([]byte("jti-2")) != nil {
			t.Fatal("a lapsed revocation was kept")
		}
		return err
	})
}

func TestDeleteGroupDropsItsMappings(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	defer s.Close()
	update(t, s, func(tx *Tx) error {
		for _, g := range []string{"a", "b"} {
			if err := tx.CreateGroup(g); err != nil {
				return err
			}
		}
		if err := tx.CreateIssuer(Issuer{Name: "p", Issuer: "i", Audience: "a", JWKSFile: "/f"}); err != nil {
			return err
		}
		for _, g := range []string{"a", "b"} {
			if err := tx.AddGroupMapping(GroupMapping{Group: g, Issuer: "p", Value: "v"}); err != nil {
				return err
			}
		}
		return tx.DeleteGroup("a")
	})
	view(t, s, func(tx *Tx) error {
		ms, err := tx.GroupMappings()
		if len(ms) != 1 || ms[0].Group != "b" {
			t.Fatalf("mappings %v", ms)
		}
		return err
	})
}

// A schema-3 database (no identity buckets) opens migrated, its data intact.
func TestMigrateFromSchemaV3(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	update(t, s, func(tx *Tx) error { return tx.CreateUser("alice", "Alice-Plaintext-Secret") })
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		for _, b := range identityBuckets {
			if err := btx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, 3))
	})
	s = openStore(t, path, k, Options{})
	defer s.Close()
	if got := schemaOf(t, path+".schema-v3.bak"); got != 3 {
		t.Errorf("backup schema %d", got)
	}
	update(t, s, func(tx *Tx) error {
		if _, err := tx.User("alice"); err != nil {
			return err
		}
		return tx.CreateIssuer(Issuer{Name: "p", Issuer: "i", Audience: "a", JWKSFile: "/f"})
	})
	s.Close()
	if got := schemaOf(t, path); got != schemaVersion {
		t.Fatalf("schema after migration %d", got)
	}
}
