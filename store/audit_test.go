package store

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// auditFixture writes 5 audit entries (via Update and AppendAudit) and
// returns the closed database's path and key.
func auditFixture(t *testing.T) (string, Key, *clock) {
	path := dbPath(t)
	k := mustKey(t)
	clk := newClock()
	s := openStore(t, path, k, Options{Now: clk.Now})
	defer s.Close()
	ctx := context.Background()
	for i, name := range []string{"cam1", "cam2", "cam3"} {
		clk.Advance(time.Minute)
		e := &AuditEntry{UID: 1000 + i, GID: 100, PID: 4242, Exe: "/usr/bin/camwarden", Action: "camera.add",
			Target: name, Outcome: "ok", Args: map[string]string{"url": "rtsp://127.0.0.1/" + name, "password": "Audit-Plaintext"}}
		if err := s.Update(ctx, e, func(tx *Tx) error { return tx.CreateCamera(Camera{Name: name}, "Audit-Plaintext") }); err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) || len(e.Hash) != 64 || !e.Time.Equal(clk.Now()) {
			t.Fatalf("filled entry %+v", e)
		}
	}
	for _, o := range []string{"denied", "error"} {
		clk.Advance(time.Minute)
		if _, err := s.AppendAudit(ctx, AuditEntry{UID: 1001, Action: "user.add", Target: "eve", Outcome: o}); err != nil {
			t.Fatal(err)
		}
	}
	return path, k, clk
}

func TestAuditChainAndList(t *testing.T) {
	path, k, clk := auditFixture(t)
	s := openStore(t, path, k, Options{Now: clk.Now})
	defer s.Close()
	ctx := context.Background()
	v, err := s.VerifyAudit(ctx)
	if err != nil || !reflect.DeepEqual(v, AuditVerify{OK: true, Entries: 5}) {
		t.Fatalf("VerifyAudit = %+v %v", v, err)
	}
	all, err := s.AuditList(ctx, time.Time{}, 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("AuditList = %d %v", len(all), err)
	}
	prev := ""
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.PrevHash != prev || e.Hash != auditHash(auditRec(e)) {
			t.Errorf("entry %d: %+v", i, e)
		}
		prev = e.Hash
	}
	first := all[0]
	if first.UID != 1000 || first.GID != 100 || first.PID != 4242 || first.Exe != "/usr/bin/camwarden" ||
		first.Action != "camera.add" || first.Target != "cam1" || first.Outcome != "ok" ||
		first.Args["url"] != "rtsp://127.0.0.1/cam1" || first.Args["password"] != "[redacted]" {
		t.Errorf("first entry round trip: %+v", first)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "Audit-Plaintext") {
		t.Error("secret passed as an audit arg reached the file")
	}
	last2, _ := s.AuditList(ctx, time.Time{}, 2)
	if len(last2) != 2 || last2[0].Seq != 4 || last2[1].Seq != 5 {
		t.Errorf("limit 2: %+v", last2)
	}
	since, _ := s.AuditList(ctx, all[2].Time, 0)
	if len(since) != 3 || since[0].Seq != 3 {
		t.Errorf("since entry 3: %+v", since)
	}
}

func TestAuditTamperingDetected(t *testing.T) {
	path, k, _ := auditFixture(t)
	tmpl, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	getRec := func(b *bolt.Bucket, seq uint64) auditRec {
		r, err := decodeAudit(seqKey(seq), b.Get(seqKey(seq)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	putRec := func(b *bolt.Bucket, key uint64, r auditRec) error {
		v, _ := encode(r)
		return b.Put(seqKey(key), v)
	}
	cases := []struct {
		name     string
		edit     func(btx *bolt.Tx) error
		firstBad uint64
		reason   string
	}{
		{"edited action", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 3)
			r.Outcome = "denied"
			return putRec(b, 3, r)
		}, 3, "modified"},
		{"edited and re-hashed", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 3)
			r.Target = "innocent"
			r.Hash = auditHash(r)
			return putRec(b, 3, r)
		}, 4, "does not link"},
		{"edited raw bytes", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			v := []byte(strings.Replace(string(b.Get(seqKey(2))), "cam2", "camX", 1))
			return b.Put(seqKey(2), v)
		}, 2, "modified"},
		{"deleted middle", func(btx *bolt.Tx) error { return btx.Bucket(bucketAudit).Delete(seqKey(3)) }, 3, "missing"},
		{"deleted first", func(btx *bolt.Tx) error { return btx.Bucket(bucketAudit).Delete(seqKey(1)) }, 1, "missing"},
		{"deleted last", func(btx *bolt.Tx) error { return btx.Bucket(bucketAudit).Delete(seqKey(5)) }, 5, "missing"},
		{"swapped 2 and 3", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r2, r3 := getRec(b, 2), getRec(b, 3)
			if err := putRec(b, 2, r3); err != nil {
				return err
			}
			return putRec(b, 3, r2)
		}, 2, "reordered"},
		{"swapped and renumbered", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r2, r3 := getRec(b, 2), getRec(b, 3)
			r2.Seq, r3.Seq = 3, 2
			if err := putRec(b, 2, r3); err != nil {
				return err
			}
			return putRec(b, 3, r2)
		}, 2, "link"},
		{"entry appended outside camwarden", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 5)
			n := auditRec{Seq: 6, Time: r.Time, Action: "forged", Outcome: "ok", PrevHash: r.Hash}
			n.Hash = auditHash(n)
			return putRec(b, 6, n)
		}, 6, "outside"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "camwarden.db")
			if err := os.WriteFile(p, tmpl, 0o600); err != nil {
				t.Fatal(err)
			}
			rawUpdate(t, p, tc.edit)
			s := openStore(t, p, k, Options{})
			defer s.Close()
			v, err := s.VerifyAudit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if v.OK || v.FirstBad != tc.firstBad || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("VerifyAudit = %+v; want FirstBad %d, reason containing %q", v, tc.firstBad, tc.reason)
			}
		})
	}
}

func TestAuditCanonicalEncodingIsUnambiguous(t *testing.T) {
	base := auditRec{Seq: 1, Time: time.Unix(1, 2), Action: "a", Target: "bc", Args: map[string]string{"k": "v"}}
	other := base
	other.Action, other.Target = "ab", "c"
	if auditHash(base) == auditHash(other) {
		t.Error("field boundary not part of the hash")
	}
	other = base
	other.Args = map[string]string{"k": "v", "": ""}
	if auditHash(base) == auditHash(other) {
		t.Error("empty arg not part of the hash")
	}
	// Map iteration order does not matter.
	m := map[string]string{}
	for i := range 50 {
		m[string(rune('a'+i))] = "x"
	}
	a := auditRec{Args: m}
	for range 20 {
		if auditHash(a) != auditHash(auditRec{Args: m}) {
			t.Fatal("hash depends on map order")
		}
	}
}
