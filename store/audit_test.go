package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		if e.Seq != uint64(i+1) || e.PrevHash != prev || e.Hash != auditMAC(deriveAuditKey(k), auditRec(e)) || e.Hash == legacyAuditHash(auditRec(e)) {
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
		{"edited and re-hashed without the key", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 3)
			r.Target = "innocent"
			r.Hash = legacyAuditHash(r)
			return putRec(b, 3, r)
		}, 3, "modified"},
		{"edited and re-MACed with the key", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 3)
			r.Target = "innocent"
			r.Hash = auditMAC(deriveAuditKey(k), r)
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
			n.Hash = legacyAuditHash(n)
			return putRec(b, 6, n)
		}, 6, "modified"},
		{"entry appended outside camwarden with the key", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 5)
			n := auditRec{Seq: 6, Time: r.Time, Action: "forged", Outcome: "ok", PrevHash: r.Hash}
			n.Hash = auditMAC(deriveAuditKey(k), n)
			return putRec(b, 6, n)
		}, 6, "outside"},
		{"last 2 deleted and the head pointed at entry 3", func(btx *bolt.Tx) error {
			return truncateTail(btx, 2, "")
		}, 3, "head (entry 3) was rewritten"},
		{"last 2 deleted, head rewritten keeping the old head's MAC", func(btx *bolt.Tx) error {
			return truncateTail(btx, 2, "keep")
		}, 3, "rewritten"},
		{"key mark removed and entry 3 edited, to pass for an unkeyed chain", func(btx *bolt.Tx) error {
			b := btx.Bucket(bucketAudit)
			r := getRec(b, 3)
			r.Target = "innocent"
			if err := putRec(b, 3, r); err != nil {
				return err
			}
			return btx.Bucket(bucketMeta).Delete(metaAuditKey)
		}, 1, "re-keyed at entry 6 without being verified"},
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
	if legacyAuditHash(base) == legacyAuditHash(other) {
		t.Error("field boundary not part of the hash")
	}
	other = base
	other.Args = map[string]string{"k": "v", "": ""}
	if legacyAuditHash(base) == legacyAuditHash(other) {
		t.Error("empty arg not part of the hash")
	}
	// Map iteration order does not matter.
	m := map[string]string{}
	for i := range 50 {
		m[string(rune('a'+i))] = "x"
	}
	a := auditRec{Args: m}
	for range 20 {
		if legacyAuditHash(a) != legacyAuditHash(auditRec{Args: m}) {
			t.Fatal("hash depends on map order")
		}
	}
}

// truncateTail deletes the last n entries and points the head at the new
// last one, as someone holding the file but not the key would: keep "keep"
// leaves the old head's MAC in place, "" drops it.
func truncateTail(btx *bolt.Tx, n int, keep string) error {
	b, meta := btx.Bucket(bucketAudit), btx.Bucket(bucketMeta)
	old, err := readHead(meta)
	if err != nil {
		return err
	}
	for range n {
		k, _ := b.Cursor().Last()
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	k, v := b.Cursor().Last()
	r, err := decodeAudit(k, v)
	if err != nil {
		return err
	}
	h := auditHead{Seq: r.Seq, Hash: r.Hash}
	if keep == "keep" {
		h.MAC = old.MAC
	}
	val, err := encode(h)
	if err != nil {
		return err
	}
	return meta.Put(metaAuditHead, val)
}

// TestAuditTailTruncationNeedsTheKey is the hostile test's finding: cut the
// last 5 entries off a 12-entry chain and rewrite the head to match. Before
// the chain was keyed this verified.
func TestAuditTailTruncationNeedsTheKey(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	for i := range 12 {
		if _, err := s.AppendAudit(context.Background(), AuditEntry{Action: "user.add", Target: fmt.Sprint("u", i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error { return truncateTail(btx, 5, "") })
	s = openStore(t, path, k, Options{})
	defer s.Close()
	v, err := s.VerifyAudit(context.Background())
	if err != nil || v.OK || v.FirstBad != 7 || !strings.Contains(v.Reason, "rewritten") {
		t.Fatalf("VerifyAudit after truncating 5 = %+v %v; want broken at 7 (head rewritten)", v, err)
	}
}

// TestAuditKeyMarkRestored: removing only the key mark (to make the
// chain look unkeyed and have it re-keyed) gains nothing: a chain that
// verifies under the key just gets its mark back, with no rekey entry.
func TestAuditKeyMarkRestored(t *testing.T) {
	path, k, _ := auditFixture(t)
	rawUpdate(t, path, func(btx *bolt.Tx) error { return btx.Bucket(bucketMeta).Delete(metaAuditKey) })
	s := openStore(t, path, k, Options{})
	defer s.Close()
	v, err := s.VerifyAudit(context.Background())
	if err != nil || !v.OK || v.Entries != 5 {
		t.Fatalf("VerifyAudit = %+v %v", v, err)
	}
}

// TestAuditOtherMasterKeyReanchored: a database without sealed secrets
// opens with any master key (nothing sealed to check the key against); its
// chain, keyed under the old key, is re-keyed under the new one, and
// verify says for good that the entries before could not be checked.
func TestAuditOtherMasterKeyReanchored(t *testing.T) {
	path, k, _ := auditFixture(t)
	rawUpdate(t, path, func(btx *bolt.Tx) error { // no sealed secrets any more
		meta := btx.Bucket(bucketMeta)
		meta.Delete(metaMasterKeyID)
		return meta.Delete(metaDataKey)
	})
	other := mustKey(t)
	s := openStore(t, path, other, Options{})
	defer s.Close()
	ctx := context.Background()
	if _, err := s.AppendAudit(ctx, AuditEntry{Action: "user.add", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	v, err := s.VerifyAudit(ctx)
	if err != nil || v.OK || v.FirstBad != 1 || v.Entries != 7 || !strings.Contains(v.Reason, k.ID()) || !strings.Contains(v.Reason, "1..5") {
		t.Fatalf("VerifyAudit = %+v %v; want entries 1..5 reported as unverified under %s", v, err, k.ID())
	}
}

func TestAuditEntriesAreCapped(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, mustKey(t), Options{})
	defer s.Close()
	huge := strings.Repeat("é", 100_000)
	args := map[string]string{}
	for i := range 1000 {
		args[fmt.Sprintf("%04d%s", i, huge[:300])] = huge
	}
	before, _ := os.Stat(path)
	e, err := s.AppendAudit(context.Background(), AuditEntry{Exe: huge, Action: huge, Target: huge, Outcome: huge, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.AuditList(context.Background(), time.Time{}, 1)
	r := got[0]
	if len(r.Exe) > auditMaxExe || len(r.Action) > auditMaxAction || len(r.Target) > auditMaxTarget || len(r.Outcome) > auditMaxOutcome {
		t.Errorf("strings not capped: %d %d %d %d", len(r.Exe), len(r.Action), len(r.Target), len(r.Outcome))
	}
	if len(r.Args) != auditMaxArgs+1 || r.Args[auditArgsCut] != "968" {
		t.Errorf("args: %d kept, dropped %q", len(r.Args), r.Args[auditArgsCut])
	}
	size := 0
	for k, v := range r.Args {
		size += len(k) + len(v)
		if !utf8.ValidString(k) || !utf8.ValidString(v) || len(k) > auditMaxArgKey || len(v) > auditMaxArgVal {
			t.Fatalf("arg %q not capped on a rune boundary", k)
		}
	}
	if !utf8.ValidString(r.Target) || !strings.HasSuffix(r.Target, "…") || e.Hash != r.Hash {
		t.Errorf("target %q", r.Target)
	}
	if size > 40_000 {
		t.Errorf("entry args hold %d bytes", size)
	}
	if v, err := s.VerifyAudit(context.Background()); err != nil || !v.OK {
		t.Errorf("verify %+v %v", v, err)
	}
	after, _ := os.Stat(path)
	if grown := after.Size() - before.Size(); grown > 256<<10 {
		t.Errorf("one capped entry grew the file by %d bytes", grown)
	}
}

// TestAuditMirrorDetectsRollback: every append hands its head to the
// mirror; a database file replaced by an older copy of itself verifies on
// its own (it is a genuine chain) but not against the newest mirrored head.
func TestAuditMirrorDetectsRollback(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	var heads []AuditHead
	mirror := func(h AuditHead) { heads = append(heads, h) }
	ctx := context.Background()
	s := openStore(t, path, k, Options{AuditMirror: mirror})
	for i := range 3 {
		if _, err := s.AppendAudit(ctx, AuditEntry{Action: "user.add", Target: fmt.Sprint("u", i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, k, Options{AuditMirror: mirror})
	for i := range 4 {
		if _, err := s.AppendAudit(ctx, AuditEntry{Action: "grant.revoke", Target: fmt.Sprint("g", i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	newest := heads[len(heads)-1]
	if newest.Seq != 7 || len(newest.Hash) != 64 || newest.KeyID != deriveAuditKey(k).ID() {
		t.Fatalf("mirrored heads %+v", heads)
	}
	// Heads came in order, one per append (plus one at each Open).
	for i := 1; i < len(heads); i++ {
		if heads[i].Seq < heads[i-1].Seq {
			t.Fatalf("heads out of order: %+v", heads)
		}
	}
	if v, err := s.VerifyAuditHead(ctx, &newest); err != nil || !v.OK {
		t.Fatalf("intact database against its own head: %+v %v", v, err)
	}
	s.Close()

	// Roll the file back to the copy taken after 3 entries.
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, k, Options{})
	if v, err := s.VerifyAudit(ctx); err != nil || !v.OK {
		t.Fatalf("the old copy is a valid chain on its own: %+v %v", v, err)
	}
	v, err := s.VerifyAuditHead(ctx, &newest)
	if err != nil || v.OK || v.FirstBad != 4 || !strings.Contains(v.Reason, "rolled back") {
		t.Fatalf("rolled-back database against the mirrored head: %+v %v", v, err)
	}
	// Appending to the rolled-back copy until it is as long again: the
	// entry at the mirrored seq is another one.
	for range 4 {
		if _, err := s.AppendAudit(ctx, AuditEntry{Action: "user.add", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	v, err = s.VerifyAuditHead(ctx, &newest)
	if err != nil || v.OK || v.FirstBad != 7 || !strings.Contains(v.Reason, "replaced") {
		t.Fatalf("rolled back and re-grown: %+v %v", v, err)
	}
	s.Close()
}

// launderChain is the hostile review's attack on a 12-entry chain by
// someone holding the file but not the master key: remove the key mark,
// drop the last 5 entries and the incriminating entry 4 ("u3"), renumber
// and rehash the rest with the unkeyed SHA-256 of chains from before
// keying, and write an unsigned head.
func launderChain(btx *bolt.Tx) error {
	b, meta := btx.Bucket(bucketAudit), btx.Bucket(bucketMeta)
	var recs []auditRec
	c := b.Cursor()
	for ck, cv := c.First(); ck != nil; ck, cv = c.Next() {
		r, err := decodeAudit(ck, cv)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	for _, r := range recs {
		if err := b.Delete(seqKey(r.Seq)); err != nil {
			return err
		}
	}
	var keep []auditRec
	for _, r := range recs[:7] {
		if r.Target != "u3" {
			keep = append(keep, r)
		}
	}
	prev := ""
	for i := range keep {
		keep[i].Seq = uint64(i + 1)
		keep[i].PrevHash = prev
		keep[i].Hash = legacyAuditHash(keep[i])
		prev = keep[i].Hash
		v, err := encode(keep[i])
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(keep[i].Seq), v); err != nil {
			return err
		}
	}
	hv, err := encode(auditHead{Seq: uint64(len(keep)), Hash: prev})
	if err != nil {
		return err
	}
	if err := meta.Put(metaAuditHead, hv); err != nil {
		return err
	}
	return meta.Delete(metaAuditKey)
}

func twelveEntryChain(t *testing.T, opts Options) (string, Key) {
	t.Helper()
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, opts)
	for i := range 12 {
		if _, err := s.AppendAudit(context.Background(), AuditEntry{Action: "user.add", Target: fmt.Sprint("u", i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return path, k
}

// TestAuditUnkeyedRewriteOfCurrentDatabaseIsNotLaundered: a chain of a
// current database stripped of its key mark and rewritten with unkeyed
// hashes is re-keyed at the next start (so the daemon can write) but all
// of it is reported unverified, for good; before, it was re-MACed under
// the real key and verified intact.
func TestAuditUnkeyedRewriteOfCurrentDatabaseIsNotLaundered(t *testing.T) {
	path, k := twelveEntryChain(t, Options{})
	rawUpdate(t, path, launderChain)
	s := openStore(t, path, k, Options{})
	ctx := context.Background()
	if _, err := s.AppendAudit(ctx, AuditEntry{Action: "user.add", Target: "later", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	v, err := s.VerifyAudit(ctx)
	if err != nil || v.OK || v.FirstBad != 1 || !strings.Contains(v.Reason, "no key mark") || !strings.Contains(v.Reason, "1..6") {
		t.Fatalf("VerifyAudit after an unkeyed rewrite = %+v %v; want entries 1..6 unverified (no key mark)", v, err)
	}
	if len(v.Rekeys) != 1 || v.Rekeys[0].Seq != 7 || v.Rekeys[0].From != "unkeyed" || v.Rekeys[0].Entries != 6 ||
		v.Rekeys[0].UnverifiedFrom != 1 || v.Rekeys[0].Schema != schemaVersion {
		t.Errorf("rekeys %+v", v.Rekeys)
	}
	s.Close()
	// A restart does not make it good.
	s = openStore(t, path, k, Options{})
	defer s.Close()
	if v, err := s.VerifyAudit(ctx); err != nil || v.OK || v.FirstBad != 1 {
		t.Fatalf("VerifyAudit after a restart = %+v %v", v, err)
	}
}

// TestAuditUnkeyedRewritePassedOffAsMigrationIsReported: the same attack
// with the schema number set back to before keying is vouched for by the
// migration (the file cannot tell), but verify names the re-keying, when
// it happened and how many entries it took, and the heads the journal saw
// before the attack are not in the database.
func TestAuditUnkeyedRewritePassedOffAsMigrationIsReported(t *testing.T) {
	var journal []AuditHead
	path, k := twelveEntryChain(t, Options{AuditMirror: func(h AuditHead) { journal = append(journal, h) }})
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		if err := launderChain(btx); err != nil {
			return err
		}
		return btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, keyedAuditSchema-1))
	})
	attack := time.Now()
	s := openStore(t, path, k, Options{})
	defer s.Close()
	ctx := context.Background()
	v, err := s.VerifyAudit(ctx)
	if err != nil || !v.OK {
		t.Fatalf("VerifyAudit = %+v %v", v, err)
	}
	if len(v.Rekeys) != 1 {
		t.Fatalf("verify does not report the re-keying: %+v", v)
	}
	rk := v.Rekeys[0]
	if rk.Seq != 7 || rk.From != "unkeyed" || rk.Entries != 6 || rk.Schema != keyedAuditSchema-1 || rk.UnverifiedFrom != 0 || rk.Time.Before(attack.Add(-time.Second)) {
		t.Errorf("rekey %+v; want entry 7, 6 unkeyed entries, from schema %d, at the attack's restart", rk, keyedAuditSchema-1)
	}
	last := journal[len(journal)-1]
	if vj, err := s.VerifyAuditHead(ctx, &last); err != nil || vj.OK {
		t.Errorf("the pre-attack journal head %d verifies: %+v %v", last.Seq, vj, err)
	}
}

// TestAuditRollbackCaughtAfterTheChainRegrows: a database rolled back to
// an older copy (5 entries, from 10) that then grows past the journal's
// old newest head (6 more appends, to 11) still fails against the heads
// the journal saw: its entries 6..10 are not the ones the journal saw.
func TestAuditRollbackCaughtAfterTheChainRegrows(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	var journal []AuditHead
	mirror := func(h AuditHead) { journal = append(journal, h) }
	ctx := context.Background()
	add := func(s *Store, n int, tag string) {
		for i := range n {
			if _, err := s.AppendAudit(ctx, AuditEntry{Action: "user.add", Target: fmt.Sprint(tag, i), Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := openStore(t, path, k, Options{AuditMirror: mirror})
	add(s, 5, "a")
	s.Close()
	older, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, k, Options{AuditMirror: mirror})
	add(s, 5, "incriminating")
	s.Close()
	if err := os.WriteFile(path, older, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, k, Options{AuditMirror: mirror})
	defer s.Close()
	if v, err := s.VerifyAuditHeads(ctx, journal); err != nil || v.OK || v.FirstBad != 6 || !strings.Contains(v.Reason, "rolled back") {
		t.Errorf("right after the rollback: %+v %v", v, err)
	}
	add(s, 6, "after")
	v, err := s.VerifyAuditHeads(ctx, journal)
	if err != nil || v.OK || v.FirstBad != 6 || !strings.Contains(v.Reason, "rolled back") {
		t.Fatalf("after 6 more appends: %+v %v; want entry 6 not the one the journal saw", v, err)
	}
	// The chain itself is intact: only the journal shows the rollback.
	if v, err := s.VerifyAudit(ctx); err != nil || !v.OK || v.Entries != 11 {
		t.Fatalf("VerifyAudit = %+v %v", v, err)
	}
}

// A secret-named argument keeps only the markers that say what a request
// did with the secret; any other value, a secret, is redacted.
func TestRedactArgsKeepsOnlySecretMarkers(t *testing.T) {
	in := map[string]string{"password": AuditSecretKept, "bind_password": AuditSecretChanged, "old_password": AuditSecretRemoved,
		"new_password": AuditSecretSet, "passwd": "", "token": "(kept) hunter2-internal-secret", "secret": "hunter2-internal-secret", "url": "rtsp://h/s"}
	got := redactArgs(in)
	want := map[string]string{"password": "(kept)", "bind_password": "(changed)", "old_password": "(removed)",
		"new_password": "(set)", "passwd": "", "token": redacted, "secret": redacted, "url": "rtsp://h/s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("redactArgs = %v, want %v", got, want)
	}
}
