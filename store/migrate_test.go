package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	v1Fixture    = "../testdata/store/schema-v1.db"
	v1FixtureKey = "../testdata/store/schema-v1.key" // a test key, not a secret
)

// TestGenerateSchemaV1Fixture (re)writes the schema-v1 fixture the way a v1
// build laid out its records. Run once with CAMWARDEN_GEN_TESTDATA=1; the
// result is kept under testdata/store/.
func TestGenerateSchemaV1Fixture(t *testing.T) {
	if os.Getenv("CAMWARDEN_GEN_TESTDATA") != "1" {
		return // generator, not a test; see the comment above
	}
	os.Remove(v1Fixture)
	os.Remove(v1FixtureKey)
	master, err := WriteNewKeyFile(v1FixtureKey)
	if err != nil {
		t.Fatal(err)
	}
	dk := mustKey(t)
	created := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	db, err := bolt.Open(v1Fixture, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(btx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
		}
		put := func(bucket []byte, k string, v any) {
			b, err := encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if err := btx.Bucket(bucket).Put([]byte(k), b); err != nil {
				t.Fatal(err)
			}
		}
		must := func(b []byte, err error) []byte {
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		meta := btx.Bucket(bucketMeta)
		meta.Put(metaFormat, []byte(formatMagic))
		meta.Put(metaSchema, binary.BigEndian.AppendUint64(nil, 1))
		meta.Put(metaCreated, []byte(created.Format(time.RFC3339)))
		meta.Put(metaDataKey, must(seal(master, kindMeta, fieldDataKey, fieldDataKey, dk.b[:])))
		meta.Put(metaMasterKeyID, []byte(master.ID()))
		put(bucketCameras, "cam1", cameraRecV1{Name: "cam1", URL: "rtsp://127.0.0.1:8554/main", Transport: "tcp",
			Username: "admin", Password: must(seal(dk, kindCamera, "cam1", fieldPass, []byte("v1-cam-secret"))),
			Created: created, Changed: created})
		put(bucketCameras, "cam2", cameraRecV1{Name: "cam2", URL: "rtsp://127.0.0.1:8555/live", Created: created, Changed: created})
		hash, err := HashPassword("v1-alice")
		if err != nil {
			t.Fatal(err)
		}
		// v1 users had no credential_version.
		put(bucketUsers, "alice", map[string]any{"name": "alice", "created": created, "changed": created,
			"password_hash": hash, "digest": must(seal(dk, kindUser, "alice", fieldDigest, []byte("v1-alice")))})
		put(bucketGroups, "viewers", groupRec{Name: "viewers", Members: []string{"alice"}})
		g := Grant{"@viewers", "read", "*"}
		if err := btx.Bucket(bucketGrants).Put(grantKey(g), must(encode(grantRec(g)))); err != nil {
			return err
		}
		prev := ""
		for i, target := range []string{"cam1", "cam2"} {
			r := auditRec{Seq: uint64(i + 1), Time: created, UID: 0, Action: "camera.add", Target: target, Outcome: "ok", PrevHash: prev}
			r.Hash = legacyAuditHash(r)
			prev = r.Hash
			if err := btx.Bucket(bucketAudit).Put(seqKey(r.Seq), must(encode(r))); err != nil {
				return err
			}
		}
		return meta.Put(metaAuditHead, must(encode(auditHead{Seq: 2, Hash: prev})))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFixture(t *testing.T) (string, Key) {
	t.Helper()
	data, err := os.ReadFile(v1Fixture)
	if err != nil {
		t.Fatal(err)
	}
	path := dbPath(t)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(v1FixtureKey)
	if err != nil {
		t.Fatal(err)
	}
	return path, k
}

func schemaOf(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	db.View(func(btx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(btx.Bucket(bucketMeta).Get(metaSchema))
		return nil
	})
	return v
}

func TestMigrateFromSchemaV1(t *testing.T) {
	path, k := copyFixture(t)
	if got := schemaOf(t, path); got != 1 {
		t.Fatalf("fixture schema %d", got)
	}
	if has, id, err := ProbeSealed(path); !has || id != k.ID() || err != nil {
		t.Errorf("ProbeSealed(v1) = %v %q %v", has, id, err)
	}
	s := openStore(t, path, k, Options{})
	created := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	view(t, s, func(tx *Tx) error {
		cams, err := tx.Cameras()
		if err != nil {
			return err
		}
		want := []Camera{
			{Name: "cam1", Username: "admin", HasPassword: true, Created: created, Changed: created, Revision: 1,
				Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1:8554/main", Transport: "tcp"}}},
			{Name: "cam2", Created: created, Changed: created, Revision: 1,
				Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1:8555/live"}}},
		}
		if !reflect.DeepEqual(cams, want) {
			t.Errorf("migrated cameras:\n got %+v\nwant %+v", cams, want)
		}
		if pw, err := tx.CameraPassword("cam1"); pw != "v1-cam-secret" || err != nil {
			t.Errorf("cam1 password %q %v", pw, err)
		}
		u, err := tx.User("alice")
		if err != nil || u.CredentialVersion != 1 {
			t.Errorf("migrated user %+v %v", u, err)
		}
		if ok, _ := VerifyPassword(u.PasswordHash, "v1-alice"); !ok {
			t.Error("v1 password hash no longer verifies")
		}
		if d, err := tx.UserDigestSecret("alice"); d != "v1-alice" || err != nil {
			t.Errorf("digest %q %v", d, err)
		}
		p, err := tx.PolicyData()
		if err != nil || len(p.Groups) != 1 || len(p.Grants) != 1 {
			t.Errorf("policy %+v %v", p, err)
		}
		return nil
	})
	// The unkeyed chain was checked, re-keyed under the master key and the
	// re-keying recorded in the chain itself.
	if v, err := s.VerifyAudit(context.Background()); err != nil || !v.OK || v.Entries != 3 {
		t.Errorf("audit after migration: %+v %v", v, err)
	} else if len(v.Rekeys) != 1 || v.Rekeys[0].Seq != 3 || v.Rekeys[0].From != "unkeyed" || v.Rekeys[0].Entries != 2 ||
		v.Rekeys[0].Schema != 1 || v.Rekeys[0].UnverifiedFrom != 0 {
		t.Errorf("verify does not report the migration's re-keying of 2 unkeyed entries: %+v", v.Rekeys)
	}
	if all, err := s.AuditList(context.Background(), time.Time{}, 0); err != nil || len(all) != 3 ||
		all[2].Action != "audit.rekey" || all[2].Args["entries"] != "2" || all[2].Args[rekeyUnverifiedFrom] != "" ||
		all[0].Target != "cam1" || all[1].Hash != all[2].PrevHash || all[0].Hash == legacyAuditHash(auditRec(all[0])) {
		t.Errorf("audit entries after migration: %+v %v", all, err)
	}
	s.Close()
	if got := schemaOf(t, path); got != schemaVersion {
		t.Errorf("schema after migration %d", got)
	}
	// The pre-migration backup is the untouched v1 file.
	bak := path + ".schema-v1.bak"
	if got := schemaOf(t, bak); got != 1 {
		t.Errorf("backup schema %d", got)
	}
	if fi, err := os.Stat(bak); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup %v %v", fi, err)
	}
	// A second open does not migrate (or back up) again.
	s = openStore(t, path, k, Options{})
	s.Close()
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("files after reopen: %d", len(entries))
	}
}

func TestMigrationNeedsTheRightKeyFirst(t *testing.T) {
	path, _ := copyFixture(t)
	before := snapshot(t, path)
	if _, err := Open(path, mustKey(t), Options{}); err == nil {
		t.Fatal("v1 database opened with the wrong key")
	}
	assertUnchanged(t, path, before)
}

func TestFailedMigrationLeavesFileUnchanged(t *testing.T) {
	path, k := copyFixture(t)
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		return btx.Bucket(bucketCameras).Put([]byte("cam2"), []byte(`{"name":"cam2","url":`))
	})
	before := snapshot(t, path)
	_, err := Open(path, k, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "backup at") {
		t.Fatalf("Open: %v", err)
	}
	after := snapshot(t, path)
	if !bytes.Equal(before.data, after.data) || schemaOf(t, path) != 1 {
		t.Error("failed migration changed the database")
	}
}

// TestMigrateFromSchemaV2 writes a database the way a schema-2 build left it
// (camera records without allow_basic, cert pin or pending move) and opens
// it: it is migrated to the current schema with every camera intact, Basic
// refused and nothing pending; the new fields then round-trip.
func TestMigrateFromSchemaV2(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	update(t, s, func(tx *Tx) error {
		return tx.CreateCamera(Camera{Name: "cam1", Username: "admin",
			ONVIF:   &ONVIFIdentity{URN: "urn:uuid:1", XAddr: "http://127.0.0.1:80/onvif/device_service"},
			Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1:554/main"}}}, "v2-cam-secret")
	})
	s.Close()
	created := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	v2cam := `{"name":"cam2","username":"u","onvif":{"urn":"urn:uuid:2","xaddr":"http://127.0.0.1:81/onvif/device_service"},` +
		`"streams":[{"name":"main","url":"rtsp://127.0.0.1:555/main"}],"created":"` + created.Format(time.RFC3339) +
		`","changed":"` + created.Format(time.RFC3339) + `","revision":4}`
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		if err := btx.Bucket(bucketCameras).Put([]byte("cam2"), []byte(v2cam)); err != nil {
			return err
		}
		return btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, 2))
	})
	s = openStore(t, path, k, Options{})
	defer s.Close()
	if got := schemaOf(t, path+".schema-v2.bak"); got != 2 {
		t.Errorf("backup schema %d", got)
	}
	view(t, s, func(tx *Tx) error {
		c, err := tx.Camera("cam2")
		if err != nil {
			return err
		}
		if c.AllowBasic || c.PendingMove != nil || c.ONVIF == nil || c.ONVIF.CertSHA256 != "" || c.Revision != 4 ||
			c.ONVIF.XAddr != "http://127.0.0.1:81/onvif/device_service" || len(c.Streams) != 1 {
			t.Errorf("migrated v2 camera %+v", c)
		}
		if pw, err := tx.CameraPassword("cam1"); pw != "v2-cam-secret" || err != nil {
			t.Errorf("cam1 password %q %v", pw, err)
		}
		return nil
	})
	seen := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	update(t, s, func(tx *Tx) error {
		return tx.UpdateCamera("cam2", func(c *Camera) error {
			c.AllowBasic = true
			c.ONVIF.CertSHA256 = "ab12"
			c.PendingMove = &PendingMove{XAddr: "http://127.0.0.1:99/onvif/device_service", SeenAt: seen, Source: "hello", Reason: "plain HTTP"}
			return nil
		})
	})
	view(t, s, func(tx *Tx) error {
		c, err := tx.Camera("cam2")
		want := &PendingMove{XAddr: "http://127.0.0.1:99/onvif/device_service", SeenAt: seen, Source: "hello", Reason: "plain HTTP"}
		if err != nil || !c.AllowBasic || c.ONVIF.CertSHA256 != "ab12" || !reflect.DeepEqual(c.PendingMove, want) {
			t.Errorf("round trip %+v %v", c, err)
		}
		return err
	})
}

func TestPendingMoveIsNotARevision(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	defer s.Close()
	update(t, s, func(tx *Tx) error {
		return tx.CreateCamera(Camera{Name: "cam", Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1/x"}}}, "")
	})
	var before Camera
	view(t, s, func(tx *Tx) (err error) { before, err = tx.Camera("cam"); return })
	update(t, s, func(tx *Tx) error {
		return tx.SetCameraPendingMove("cam", &PendingMove{XAddr: "http://127.0.0.2/onvif/device_service", Source: "hello"})
	})
	view(t, s, func(tx *Tx) error {
		c, err := tx.Camera("cam")
		if err != nil || c.Revision != before.Revision || !c.Changed.Equal(before.Changed) || c.PendingMove == nil || c.PendingMove.Source != "hello" {
			t.Errorf("after SetCameraPendingMove: %+v %v", c, err)
		}
		return err
	})
	// A flood of addresses keeps the first ones and says it was cut.
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("http://10.0.0.%d/onvif/device_service", i))
	}
	update(t, s, func(tx *Tx) error {
		return tx.SetCameraPendingMove("cam", &PendingMove{XAddr: "http://127.0.0.2/onvif/device_service", Others: many})
	})
	view(t, s, func(tx *Tx) error {
		c, err := tx.Camera("cam")
		if err != nil || len(c.PendingMove.Others) != MaxPendingOthers || c.PendingMove.Others[0] != many[0] || !c.PendingMove.Truncated {
			t.Errorf("after a flood: %+v %v", c.PendingMove, err)
		}
		return err
	})
	update(t, s, func(tx *Tx) error { return tx.SetCameraPendingMove("cam", nil) })
	view(t, s, func(tx *Tx) error {
		c, err := tx.Camera("cam")
		if c.PendingMove != nil {
			t.Errorf("not cleared: %+v", c.PendingMove)
		}
		return err
	})
	if err := s.Update(context.Background(), nil, func(tx *Tx) error { return tx.SetCameraPendingMove("nope", nil) }); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown camera: %v", err)
	}
}
