package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The audit log is a hash chain: entry n stores Hash = SHA-256(canonical(n)),
// where canonical(n) includes PrevHash = Hash of entry n-1 ("" for the first).
// meta/audit_head holds the last seq and hash, so dropping entries from the
// end is detected too.

// redactedArgKeys: argument names whose values are never stored, whatever the
// caller passed (defence in depth; callers redact too).
var redactedArgKeys = []string{"password", "passwd", "secret", "token", "credential", "key_material"}

const redacted = "[redacted]"

func redactArgs(args map[string]string) map[string]string {
	if len(args) == 0 {
		return nil
	}
	out := make(map[string]string, len(args))
	for k, v := range args {
		lk := strings.ToLower(k)
		for _, r := range redactedArgKeys {
			if strings.Contains(lk, r) {
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

func auditHash(e auditRec) string {
	sum := sha256.Sum256(canonicalAudit(e))
	return hex.EncodeToString(sum[:])
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
	head, err := readHead(meta)
	if err != nil {
		return AuditEntry{}, err
	}
	r := auditRec(e)
	r.Seq = head.Seq + 1
	r.Time = tx.now
	r.Args = redactArgs(e.Args)
	r.PrevHash = head.Hash
	r.Hash = auditHash(r)
	k := seqKey(r.Seq)
	if b.Get(k) != nil {
		return AuditEntry{}, fmt.Errorf("%w: audit entry %d exists beyond the recorded head", ErrCorrupt, r.Seq)
	}
	if err := tx.put(b, "audit entry", fmt.Sprint(r.Seq), k, r); err != nil {
		return AuditEntry{}, err
	}
	if err := tx.put(meta, "audit head", "", metaAuditHead, auditHead{Seq: r.Seq, Hash: r.Hash}); err != nil {
		return AuditEntry{}, err
	}
	return r.public(), nil
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
// edited entry (hash mismatch), a deleted one (sequence gap or a head beyond
// the last entry), a reordered one (an entry under another seq's key, or a
// broken PrevHash link).
func (s *Store) VerifyAudit(ctx context.Context) (AuditVerify, error) {
	var res AuditVerify
	err := s.View(ctx, func(tx *Tx) error {
		b, err := tx.bucket(bucketAudit)
		if err != nil {
			return err
		}
		meta, err := tx.bucket(bucketMeta)
		if err != nil {
			return err
		}
		res = verifyChain(ctx, b, meta)
		return ctx.Err()
	})
	return res, err
}

func verifyChain(ctx context.Context, b, meta *bolt.Bucket) AuditVerify {
	bad := func(n uint64, count uint64, format string, args ...any) AuditVerify {
		return AuditVerify{OK: false, Entries: count, FirstBad: n, Reason: fmt.Sprintf(format, args...)}
	}
	var count uint64
	prev := ""
	expect := uint64(1)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if ctx.Err() != nil {
			return bad(expect, count, "verification cancelled")
		}
		count++
		if len(k) != 8 {
			return bad(expect, count, "entry with malformed key %x", k)
		}
		seq := binary.BigEndian.Uint64(k)
		if seq != expect {
			if seq > expect {
				return bad(expect, count, "entry %d is missing (next entry is %d)", expect, seq)
			}
			return bad(expect, count, "unexpected entry %d", seq)
		}
		r, err := decodeAudit(k, v)
		if err != nil {
			return bad(seq, count, "entry %d does not decode: %v", seq, err)
		}
		if r.Seq != seq {
			return bad(seq, count, "entry stored as %d claims to be %d (reordered)", seq, r.Seq)
		}
		if r.PrevHash != prev {
			return bad(seq, count, "entry %d does not link to the previous entry (deleted, inserted or reordered)", seq)
		}
		if h := auditHash(r); h != r.Hash {
			return bad(seq, count, "entry %d was modified (its content does not match its hash)", seq)
		}
		prev = r.Hash
		expect++
	}
	head, err := readHead(meta)
	if err != nil {
		return bad(expect, count, "%v", err)
	}
	last := expect - 1
	switch {
	case head.Seq > last:
		return bad(last+1, count, "entries %d..%d are missing (the log ends at %d)", last+1, head.Seq, last)
	case head.Seq < last:
		return bad(head.Seq+1, count, "entries after %d were added outside camwarden", head.Seq)
	case head.Hash != prev:
		return bad(last, count, "entry %d was replaced (it does not match the recorded head)", last)
	}
	return AuditVerify{OK: true, Entries: count}
}
