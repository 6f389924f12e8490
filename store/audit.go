package store

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	bolt "go.etcd.io/bbolt"
)

// The audit log is a keyed hash chain: entry n stores
// Hash = HMAC-SHA256(auditKey, canonical(n)), where canonical(n) includes
// PrevHash = Hash of entry n-1 ("" for the first) and auditKey is derived
// from the master key (deriveAuditKey). Without the master key nobody can
// recompute a hash, so an entry can be neither edited nor dropped from the
// end (meta/audit_head must match the last entry) without verify noticing.
// What a keyed chain cannot see is the whole file being replaced by an older
// copy of itself; for that every new head is also handed to
// Options.AuditMirror (the daemon logs it to the journal) and
// VerifyAuditHeads compares mirrored heads with the database.
//
// Databases written before the chain was keyed (schema < keyedAuditSchema)
// carry plain SHA-256 hashes (legacyAuditHash) and no meta/audit_key; their
// migration re-keys them once (keyChain) and records that in the chain
// itself, which VerifyAudit reports ever after (AuditVerify.Rekeys).

// redactedArgKeys: argument names whose values are never stored, whatever the
// caller passed (defence in depth; callers record a marker instead).
var redactedArgKeys = []string{"password", "passwd", "secret", "token", "credential", "key_material"}

const redacted = "[redacted]"

// What callers record of a secret argument instead of its value: what the
// request did with it. These markers (and "", no secret) are the only
// values of a secret-named argument that are stored as given, so an auditor
// can tell a kept password from a changed one.
const (
	AuditSecretSet     = "(set)"     // an add stored one
	AuditSecretKept    = "(kept)"    // an edit left the stored one as it was
	AuditSecretChanged = "(changed)" // an edit stored a new one
	AuditSecretRemoved = "(removed)" // an edit removed the stored one
)

func isSecretMarker(v string) bool {
	switch v {
	case "", AuditSecretSet, AuditSecretKept, AuditSecretChanged, AuditSecretRemoved:
		return true
	}
	return false
}

func redactArgs(args map[string]string) map[string]string {
	if len(args) == 0 {
		return nil
	}
	out := make(map[string]string, len(args))
	for k, v := range args {
		lk := strings.ToLower(k)
		for _, r := range redactedArgKeys {
			if strings.Contains(lk, r) && !isSecretMarker(v) {
				v = redacted
				break
			}
		}
		out[k] = v
	}
	return out
}

// canonicalAudit is the byte string an entry's hash covers: a domain tag and
// every field but Hash, integers fixed-width big endian, strings
// length-prefixed, args sorted by key. It does not depend on JSON.
func canonicalAudit(e auditRec) []byte {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str("camwarden-audit-v1")
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Time.Nanosecond()))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(e.UID)))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(e.GID)))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(e.PID)))
	str(e.Exe)
	str(e.Action)
	str(e.Target)
	str(e.Outcome)
	keys := make([]string, 0, len(e.Args))
	for k := range e.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint64(b, uint64(len(keys)))
	for _, k := range keys {
		str(k)
		str(e.Args[k])
	}
	str(e.PrevHash)
	return b
}

// legacyAuditHash is the unkeyed hash of chains written before the chain
// was keyed; only the re-keying migration (and tests playing an attacker
// without the key) use it.
func legacyAuditHash(e auditRec) string {
	sum := sha256.Sum256(canonicalAudit(e))
	return hex.EncodeToString(sum[:])
}

// auditKeyInfo separates the audit MAC key from every other use of the
// master key.
const auditKeyInfo = "camwarden audit chain hmac-sha256 v1"

// deriveAuditKey derives the chain's HMAC key from the master key (HKDF-SHA256).
func deriveAuditKey(master Key) Key {
	if master.IsZero() {
		return Key{}
	}
	raw, err := hkdf.Key(sha256.New, master.b[:], nil, auditKeyInfo, KeySize)
	if err != nil {
		panic("store: hkdf: " + err.Error()) // only for impossible lengths
	}
	defer clear(raw)
	return keyFromBytes(raw)
}

// auditMAC is an entry's keyed hash.
func auditMAC(k Key, e auditRec) string {
	m := hmac.New(sha256.New, k.b[:])
	m.Write(canonicalAudit(e))
	return hex.EncodeToString(m.Sum(nil))
}

// Caps on what one audit entry may hold, so no request, however large, can
// make an entry large: strings are cut (marked with "…"), surplus arguments
// dropped and counted.
const (
	auditMaxExe     = 256
	auditMaxAction  = 64
	auditMaxTarget  = 512
	auditMaxOutcome = 512
	auditMaxArgs    = 32
	auditMaxArgKey  = 64
	auditMaxArgVal  = 512
	auditArgsCut    = "args_dropped"
)

// capString cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(textutil.Prefix(s, n-len(textutil.Ellipsis)), "") + textutil.Ellipsis
}

func capAudit(r auditRec) auditRec {
	r.Exe = capString(r.Exe, auditMaxExe)
	r.Action = capString(r.Action, auditMaxAction)
	r.Target = capString(r.Target, auditMaxTarget)
	r.Outcome = capString(r.Outcome, auditMaxOutcome)
	if len(r.Args) == 0 {
		return r
	}
	keys := make([]string, 0, len(r.Args))
	for k := range r.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, min(len(keys), auditMaxArgs+1))
	for i, k := range keys {
		if i == auditMaxArgs {
			out[auditArgsCut] = fmt.Sprint(len(keys) - auditMaxArgs)
			break
		}
		out[capString(k, auditMaxArgKey)] = capString(r.Args[k], auditMaxArgVal)
	}
	r.Args = out
	return r
}

func readHead(meta *bolt.Bucket) (auditHead, error) {
	var h auditHead
	v := meta.Get(metaAuditHead)
	if v == nil {
		return h, nil
	}
	if err := json.Unmarshal(v, &h); err != nil {
		return h, fmt.Errorf("%w: audit head: %v", ErrCorrupt, err)
	}
	return h, nil
}

// auditKeyMark is meta/audit_key: which key MACs the chain. Absent on a
// chain written before keying.
type auditKeyMark struct {
	KeyID       string `json:"key_id"`        // Key.ID of the derived audit key
	MasterKeyID string `json:"master_key_id"` // the master key it was derived from (for error messages)
}

func readKeyMark(meta *bolt.Bucket) (mark auditKeyMark, ok bool, err error) {
	v := meta.Get(metaAuditKey)
	if v == nil {
		return mark, false, nil
	}
	if err := json.Unmarshal(v, &mark); err != nil || mark.KeyID == "" {
		return mark, false, fmt.Errorf("%w: audit key mark unreadable", ErrCorrupt)
	}
	return mark, true, nil
}

// AuditHead is the newest entry of the chain: what the daemon mirrors to
// the journal on every append. KeyID names the audit key (never the key).
type AuditHead struct {
	Seq   uint64
	Hash  string
	KeyID string
}

// appendAudit adds e to the chain inside this write transaction and returns
// it with Seq, Time, PrevHash and Hash filled in.
func (tx *Tx) appendAudit(e AuditEntry) (AuditEntry, error) {
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return AuditEntry{}, err
	}
	b, err := tx.bucket(bucketAudit)
	if err != nil {
		return AuditEntry{}, err
	}
	key := tx.s.auditKey()
	mark, ok, err := readKeyMark(meta)
	if err != nil {
		return AuditEntry{}, err
	}
	if !ok || mark.KeyID != key.ID() {
		return AuditEntry{}, fmt.Errorf("%w: the audit chain is not keyed with the loaded master key's audit key", ErrCorrupt)
	}
	head, err := readHead(meta)
	if err != nil {
		return AuditEntry{}, err
	}
	r := auditRec(e)
	r.Seq = head.Seq + 1
	r.Time = tx.now
	r.Args = redactArgs(e.Args)
	r = capAudit(r)
	r.PrevHash = head.Hash
	r.Hash = auditMAC(key, r)
	k := seqKey(r.Seq)
	if b.Get(k) != nil {
		return AuditEntry{}, fmt.Errorf("%w: audit entry %d exists beyond the recorded head", ErrCorrupt, r.Seq)
	}
	if err := tx.put(b, "audit entry", fmt.Sprint(r.Seq), k, r); err != nil {
		return AuditEntry{}, err
	}
	if err := tx.put(meta, "audit head", "", metaAuditHead, auditHead{Seq: r.Seq, Hash: r.Hash, MAC: headMAC(key, r.Seq, r.Hash)}); err != nil {
		return AuditEntry{}, err
	}
	return r.public(), nil
}

// auditKey is the chain's HMAC key under the current master key.
func (s *Store) auditKey() Key { return *s.auditKeyPtr.Load() }

// mirrorHead hands a committed head to Options.AuditMirror. Called with
// writeMu held, so heads are mirrored in sequence order.
func (s *Store) mirrorHead(seq uint64, hash string) {
	if s.auditMirror != nil {
		s.auditMirror(AuditHead{Seq: seq, Hash: hash, KeyID: s.auditKey().ID()})
	}
}

// AuditKeyID is the id of the audit key (Key.ID; never the key): the
// KeyID of every head this store mirrors.
func (s *Store) AuditKeyID() string { return s.auditKey().ID() }

// AuditHead returns the chain's newest entry (Seq 0 for an empty chain).
func (s *Store) AuditHead(ctx context.Context) (AuditHead, error) {
	var h auditHead
	err := s.View(ctx, func(tx *Tx) error {
		meta, err := tx.bucket(bucketMeta)
		if err != nil {
			return err
		}
		h, err = readHead(meta)
		return err
	})
	return AuditHead{Seq: h.Seq, Hash: h.Hash, KeyID: s.auditKey().ID()}, err
}

// AppendAudit records e in its own fsynced transaction (for refused or failed
// requests, whose mutation never happened).
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	err := s.Update(ctx, &e, func(*Tx) error { return nil })
	if err != nil {
		return AuditEntry{}, err
	}
	return e, nil
}

// AuditList returns entries whose Time is not before since, oldest first
// (newest last); with limit > 0 only the newest limit of them.
func (s *Store) AuditList(ctx context.Context, since time.Time, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.View(ctx, func(tx *Tx) error {
		b, err := tx.bucket(bucketAudit)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if limit > 0 && len(out) >= limit {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := decodeAudit(k, v)
			if err != nil {
				return err
			}
			if r.Time.Before(since) {
				continue
			}
			out = append(out, r.public())
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// VerifyAudit walks the chain and reports the first entry where it breaks: an
// edited entry (MAC mismatch), a deleted one (sequence gap or a head beyond
// the last entry), a reordered one (an entry under another seq's key, or a
// broken PrevHash link), a tail cut off with the head rewritten to match (the
// new head's MAC cannot be made without the key), or a chain keyed under
// another master key.
func (s *Store) VerifyAudit(ctx context.Context) (AuditVerify, error) {
	return s.VerifyAuditHead(ctx, nil)
}

// VerifyAuditHead is VerifyAuditHeads with at most one mirrored head.
func (s *Store) VerifyAuditHead(ctx context.Context, mirrored *AuditHead) (AuditVerify, error) {
	if mirrored == nil {
		return s.VerifyAuditHeads(ctx, nil)
	}
	return s.VerifyAuditHeads(ctx, []AuditHead{*mirrored})
}

// VerifyAuditHeads is VerifyAudit plus a check of every head in mirrored
// (heads the journal saw): the database must hold each, at its sequence
// number with its hash. A database rolled back to an older copy ends
// before the newest of them, or, once it has grown again past that,
// holds other entries at the sequence numbers of the heads written
// before the rollback. Since an entry's MAC covers every entry before
// it, holding a head proves holding every earlier head of the same chain,
// so the last head of each daemon run is enough (what the CLI sends).
func (s *Store) VerifyAuditHeads(ctx context.Context, mirrored []AuditHead) (AuditVerify, error) {
	var res AuditVerify
	key := s.auditKey()
	err := s.View(ctx, func(tx *Tx) error {
		b, err := tx.bucket(bucketAudit)
		if err != nil {
			return err
		}
		meta, err := tx.bucket(bucketMeta)
		if err != nil {
			return err
		}
		mark, ok, err := readKeyMark(meta)
		switch {
		case err != nil:
			res = AuditVerify{FirstBad: 1, Reason: err.Error()}
			return nil
		case !ok:
			res = AuditVerify{FirstBad: 1, Reason: "the audit chain is not keyed (its key mark was removed); it cannot be trusted"}
			return nil
		case mark.KeyID != key.ID():
			res = AuditVerify{FirstBad: 1, Reason: fmt.Sprintf("the audit chain was keyed under master key %s, the loaded master key is %s", mark.MasterKeyID, s.MasterKeyID())}
			return nil
		}
		res = verifyChain(ctx, b, meta, keyedHashes(key))
		for _, m := range mirrored {
			if !res.OK || ctx.Err() != nil {
				break
			}
			res = checkMirrored(b, res, m, key)
		}
		return ctx.Err()
	})
	return res, err
}

func checkMirrored(b *bolt.Bucket, res AuditVerify, m AuditHead, key Key) AuditVerify {
	bad := func(n uint64, format string, args ...any) AuditVerify {
		return AuditVerify{OK: false, Entries: res.Entries, FirstBad: n, Reason: fmt.Sprintf(format, args...)}
	}
	if m.KeyID != "" && m.KeyID != key.ID() {
		return bad(0, "the journal's newest audit head (entry %d) was made with audit key %s, this database's is %s: it belongs to another database or master key", m.Seq, m.KeyID, key.ID())
	}
	if m.Seq > res.Entries {
		return bad(res.Entries+1, "the journal saw audit entry %d but the database ends at entry %d: "+
			"the database was rolled back to an older copy or its tail removed", m.Seq, res.Entries)
	}
	if m.Seq == 0 {
		return res
	}
	r, err := decodeAudit(seqKey(m.Seq), b.Get(seqKey(m.Seq)))
	if err != nil || !hmac.Equal([]byte(r.Hash), []byte(m.Hash)) {
		return bad(m.Seq, "audit entry %d is not the one the journal saw: the database was rolled back to an older copy "+
			"(and has grown again since) or replaced by another copy, so entries the journal saw up to %d are not all in it", m.Seq, m.Seq)
	}
	return res
}

// chainHashes is how a chain's hashes are made: keyed (auditMAC, headMAC)
// or, for a chain from before keying, plain SHA-256 with an unsigned head.
type chainHashes struct {
	entry func(auditRec) string
	head  func(seq uint64, hash string) string // nil: the head carries no MAC
}

func keyedHashes(k Key) chainHashes {
	return chainHashes{
		entry: func(r auditRec) string { return auditMAC(k, r) },
		head:  func(seq uint64, hash string) string { return headMAC(k, seq, hash) },
	}
}

var legacyHashes = chainHashes{entry: legacyAuditHash}

// headMAC authenticates meta/audit_head, so cutting entries off the end and
// pointing the head at the new last entry needs the key as well.
func headMAC(k Key, seq uint64, hash string) string {
	m := hmac.New(sha256.New, k.b[:])
	m.Write([]byte("camwarden-audit-head-v1\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, seq))
	m.Write([]byte(hash))
	return hex.EncodeToString(m.Sum(nil))
}

func verifyChain(ctx context.Context, b, meta *bolt.Bucket, hashes chainHashes) AuditVerify {
	v, _ := verifyChainDetail(ctx, b, meta, hashes)
	return v
}

// verifyChainDetail is verifyChain; intact reports whether every hash and
// link is right, even when a rekey entry confesses an unverified prefix.
func verifyChainDetail(ctx context.Context, b, meta *bolt.Bucket, hashes chainHashes) (v AuditVerify, intact bool) {
	bad := func(n uint64, count uint64, format string, args ...any) AuditVerify {
		return AuditVerify{OK: false, Entries: count, FirstBad: n, Reason: fmt.Sprintf(format, args...)}
	}
	var count uint64
	prev := ""
	expect := uint64(1)
	var unverified *AuditVerify // a rekey entry's confession, reported if nothing else is wrong
	var rekeys []AuditRekey
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if ctx.Err() != nil {
			return bad(expect, count, "verification cancelled"), false
		}
		count++
		if len(k) != 8 {
			return bad(expect, count, "entry with malformed key %x", k), false
		}
		seq := binary.BigEndian.Uint64(k)
		if seq != expect {
			if seq > expect {
				return bad(expect, count, "entry %d is missing (next entry is %d)", expect, seq), false
			}
			return bad(expect, count, "unexpected entry %d", seq), false
		}
		r, err := decodeAudit(k, v)
		if err != nil {
			return bad(seq, count, "entry %d does not decode: %v", seq, err), false
		}
		if r.Seq != seq {
			return bad(seq, count, "entry stored as %d claims to be %d (reordered)", seq, r.Seq), false
		}
		if r.PrevHash != prev {
			return bad(seq, count, "entry %d does not link to the previous entry (deleted, inserted or reordered)", seq), false
		}
		if h := hashes.entry(r); !hmac.Equal([]byte(h), []byte(r.Hash)) {
			return bad(seq, count, "entry %d was modified (its content does not match its hash)", seq), false
		}
		if r.Action == auditRekeyAction {
			rk := AuditRekey{Seq: seq, Time: r.Time, From: r.Args[rekeyFrom]}
			rk.Entries, _ = strconv.ParseUint(r.Args["entries"], 10, 64)
			rk.Schema, _ = strconv.ParseUint(r.Args["schema"], 10, 64)
			if from, ok := r.Args[rekeyUnverifiedFrom]; ok {
				n, _ := strconv.ParseUint(from, 10, 64)
				rk.UnverifiedFrom = max(n, 1)
				if unverified == nil {
					unverified = &AuditVerify{FirstBad: max(n, 1), Reason: fmt.Sprintf("entries %d..%d were re-keyed at entry %d without being verified: %s",
						max(n, 1), seq-1, seq, r.Args["unverified_reason"])}
				}
			}
			rekeys = append(rekeys, rk)
		}
		prev = r.Hash
		expect++
	}
	head, err := readHead(meta)
	if err != nil {
		return bad(expect, count, "%v", err), false
	}
	last := expect - 1
	switch {
	case head.Seq > last:
		return bad(last+1, count, "entries %d..%d are missing (the log ends at %d)", last+1, head.Seq, last), false
	case head.Seq < last:
		return bad(head.Seq+1, count, "entries after %d were added outside camwarden", head.Seq), false
	case head.Hash != prev:
		return bad(last, count, "entry %d was replaced (it does not match the recorded head)", last), false
	case hashes.head != nil && !hmac.Equal([]byte(head.MAC), []byte(hashes.head(head.Seq, head.Hash))):
		return bad(last, count, "the recorded head (entry %d) was rewritten outside camwarden: entries after it may have been removed", last), false
	}
	if unverified != nil {
		unverified.Entries = count
		unverified.Rekeys = rekeys
		return *unverified, true
	}
	return AuditVerify{OK: true, Entries: count, Rekeys: rekeys}, true
}

// keyedAuditSchema is the first schema whose audit chain is keyed. Only
// the migration from an older schema keys an unkeyed chain and vouches for
// it (after checking its SHA-256 hashes), in the migration's transaction.
// In a database of this schema or later, a chain without its key mark was
// stripped outside camwarden: it is re-keyed so the daemon can write, but
// every entry before the re-keying stays unverified for good.
const keyedAuditSchema = 3

// rekeyAuditChain makes sure the chain is keyed under the loaded master
// key, at Open, after any migration (which keys a chain older than
// keyedAuditSchema itself). A backup copy is written first unless the
// caller just made one. See keyChain for what it does to the chain.
func (s *Store) rekeyAuditChain(ctx context.Context, schema uint64, backupFirst bool) error {
	key := s.auditKey()
	var mark auditKeyMark
	var marked bool
	var entries uint64
	if err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		mark, marked, err = readKeyMark(btx.Bucket(bucketMeta))
		if k, _ := btx.Bucket(bucketAudit).Cursor().First(); k != nil {
			entries = 1
		}
		return err
	}); err != nil {
		return err
	}
	if marked && mark.KeyID == key.ID() {
		return nil
	}
	backup := "the pre-migration backup"
	if backupFirst && entries > 0 { // an empty chain has nothing to lose
		var err error
		if backup, err = s.backup(schema); err != nil {
			return fmt.Errorf("key the audit chain of %s: backup first: %w", s.path, err)
		}
	}
	var res keyChainResult
	err := s.Update(ctx, nil, func(tx *Tx) error {
		var err error
		res, err = tx.keyChain(ctx, schema, backup)
		return err
	})
	if err != nil {
		return fmt.Errorf("key the audit chain of %s (unchanged; backup at %s): %w", s.path, backup, err)
	}
	s.reportKeyChain(res, backup)
	return nil
}

// keyChainResult is what keyChain did, for the log and the mirror.
type keyChainResult struct {
	markOnly bool        // the chain verified under the key; only its mark was restored
	before   AuditVerify // the chain as found (OK: vouched for)
	entry    AuditEntry  // the audit.rekey entry (Seq 0: none)
}

// keyChain keys the chain under the loaded master key's audit key inside
// this write transaction; schema is the schema the database had when it
// was opened. A chain whose mark alone is missing but that verifies under
// the key just gets its mark back (no entry: nothing unkeyed is trusted).
// Otherwise every entry is re-MACed and an "audit.rekey" entry records
// when, how many, from what and, unless the chain could be vouched for,
// from which entry on it is unverified; VerifyAudit reports every such
// entry for good, so re-keying never launders a chain:
//   - an unkeyed chain from before keyedAuditSchema (the migration) is
//     vouched for if its SHA-256 chain verifies;
//   - an unkeyed chain at keyedAuditSchema or later was rewritten without
//     the key (an attacker can compute SHA-256): all of it is unverified;
//   - a chain keyed under another master key (possible only for a database
//     without sealed secrets, where the data key cannot tell) cannot be
//     checked: all of it is unverified.
func (tx *Tx) keyChain(ctx context.Context, schema uint64, backup string) (keyChainResult, error) {
	var res keyChainResult
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return res, err
	}
	b, err := tx.bucket(bucketAudit)
	if err != nil {
		return res, err
	}
	key := tx.s.auditKey()
	mark, marked, err := readKeyMark(meta)
	if err != nil {
		return res, err
	}
	if marked && mark.KeyID == key.ID() {
		return res, nil
	}
	newMark := auditKeyMark{KeyID: key.ID(), MasterKeyID: tx.s.MasterKeyID()}
	if !marked && verifyChain(ctx, b, meta, keyedHashes(key)).OK {
		res.markOnly = true
		return res, tx.put(meta, "audit key mark", "", metaAuditKey, newMark)
	}
	from := "unkeyed"
	switch {
	case marked:
		from = "master key " + mark.MasterKeyID
		res.before = AuditVerify{FirstBad: 1, Reason: fmt.Sprintf("entries before this one were keyed under master key %s and cannot be checked with master key %s", mark.MasterKeyID, tx.s.MasterKeyID())}
	case schema < keyedAuditSchema:
		res.before = verifyChain(ctx, b, meta, legacyHashes)
	default:
		res.before = AuditVerify{FirstBad: 1, Reason: fmt.Sprintf("the chain had no key mark in a schema-%d database, whose chain is always keyed: "+
			"it was stripped or rewritten outside camwarden, without the master key", schema)}
	}
	n, err := remacChain(b, meta, key)
	if err != nil {
		return res, err
	}
	if err := tx.put(meta, "audit key mark", "", metaAuditKey, newMark); err != nil {
		return res, err
	}
	if marked && n == 0 {
		return res, nil // an empty chain under another key: nothing to vouch for
	}
	args := map[string]string{"entries": fmt.Sprint(n), "backup": backup, "master_key_id": tx.s.MasterKeyID(),
		rekeyFrom: from, "schema": fmt.Sprint(schema)}
	if !res.before.OK {
		args[rekeyUnverifiedFrom] = fmt.Sprint(max(res.before.FirstBad, 1))
		args["unverified_reason"] = res.before.Reason
	}
	res.entry, err = tx.appendAudit(AuditEntry{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid(),
		Action: auditRekeyAction, Outcome: "ok", Args: args})
	return res, err
}

// reportKeyChain logs what keyChain did and mirrors its entry's head.
func (s *Store) reportKeyChain(res keyChainResult, backup string) {
	switch {
	case res.markOnly:
		s.log.Warn("the audit chain's key mark was missing; the chain verifies under the loaded master key, restoring the mark", "path", s.path)
		return
	case res.entry.Seq == 0:
		return
	case res.before.OK:
		s.log.Info("audit chain keyed under the master key", "path", s.path, "entries", res.entry.Args["entries"], "backup", backup)
	default:
		s.log.Error("audit chain re-keyed under the loaded master key, but the chain before could not be verified; audit verify will report it",
			"path", s.path, "first_bad", res.before.FirstBad, "reason", res.before.Reason, "backup", backup)
	}
	s.mirrorHead(res.entry.Seq, res.entry.Hash)
}

// The entry rekeyAuditChain appends, and its argument naming the first
// entry it could not vouch for.
const (
	auditRekeyAction    = "audit.rekey"
	rekeyUnverifiedFrom = "unverified_from"
	rekeyFrom           = "from" // "unkeyed" or "master key <id>"
)

// remacChain rewrites every entry's PrevHash and Hash under k, in order,
// and signs the head. It returns the number of entries.
func remacChain(b, meta *bolt.Bucket, k Key) (uint64, error) {
	const batch = 1024
	var n uint64
	prev := ""
	next := seqKey(1)
	for {
		type kv struct {
			k []byte
			r auditRec
		}
		var recs []kv
		c := b.Cursor()
		for ck, cv := c.Seek(next); ck != nil && len(recs) < batch; ck, cv = c.Next() {
			if len(ck) != 8 {
				return n, fmt.Errorf("%w: audit entry with malformed key %x", ErrCorrupt, ck)
			}
			r, err := decodeAudit(ck, cv)
			if err != nil {
				return n, err
			}
			recs = append(recs, kv{append([]byte{}, ck...), r})
		}
		if len(recs) == 0 {
			break
		}
		for _, e := range recs {
			e.r.PrevHash = prev
			e.r.Hash = auditMAC(k, e.r)
			prev = e.r.Hash
			v, err := encode(e.r)
			if err != nil {
				return n, err
			}
			if err := b.Put(e.k, v); err != nil {
				return n, err
			}
			n++
		}
		last := recs[len(recs)-1].k
		if binary.BigEndian.Uint64(last) == ^uint64(0) {
			break
		}
		next = seqKey(binary.BigEndian.Uint64(last) + 1)
	}
	// The head names the last entry as it is now; a chain whose old head
	// disagreed was reported by the legacy check above.
	var seq uint64
	if lk, _ := b.Cursor().Last(); len(lk) == 8 {
		seq = binary.BigEndian.Uint64(lk)
	}
	h := auditHead{Seq: seq, Hash: prev, MAC: headMAC(k, seq, prev)}
	v, err := encode(h)
	if err != nil {
		return n, err
	}
	return n, meta.Put(metaAuditHead, v)
}

// rekeyChainTo re-MACs a verified keyed chain under another audit key (a
// master key change), inside this write transaction. A chain that does
// not verify under its current key is not re-keyed: that would launder it.
func (tx *Tx) rekeyChainTo(ctx context.Context, k Key, masterID string) error {
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return err
	}
	b, err := tx.bucket(bucketAudit)
	if err != nil {
		return err
	}
	if v, intact := verifyChainDetail(ctx, b, meta, keyedHashes(tx.s.auditKey())); !intact {
		return fmt.Errorf("%w: the audit chain does not verify (entry %d: %s); not re-keying it", ErrCorrupt, v.FirstBad, v.Reason)
	}
	if _, err := remacChain(b, meta, k); err != nil {
		return err
	}
	return tx.put(meta, "audit key mark", "", metaAuditKey, auditKeyMark{KeyID: k.ID(), MasterKeyID: masterID})
}
