package daemon

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

// defaultAuditLimit keeps an unfiltered listing readable.
const defaultAuditLimit = 100

func (b backend) AuditList(ctx context.Context, c api.Caller, req apitype.AuditListRequest) (*apitype.AuditList, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	entries, err := b.d.store.AuditList(ctx, req.Since, limit)
	if err != nil {
		return nil, toAPIError(err)
	}
	out := &apitype.AuditList{Entries: []apitype.AuditEntry{}}
	for _, e := range entries {
		out.Entries = append(out.Entries, apitype.AuditEntry{Seq: e.Seq, Time: e.Time,
			Actor:  fmt.Sprintf("uid=%d gid=%d pid=%d exe=%s", e.UID, e.GID, e.PID, e.Exe),
			Action: e.Action, Target: e.Target, Detail: auditDetail(e), Hash: e.Hash})
	}
	return out, nil
}

func auditDetail(e store.AuditEntry) string {
	keys := make([]string, 0, len(e.Args))
	for k := range e.Args {
		if e.Args[k] != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := []string{e.Outcome}
	for _, k := range keys {
		parts = append(parts, k+"="+e.Args[k])
	}
	return strings.Join(parts, " ")
}

func (b backend) AuditVerify(ctx context.Context, c api.Caller, req apitype.AuditVerifyRequest) (*apitype.AuditVerify, error) {
	// Every head the journal saw with this database's audit key must be
	// in it: the newest alone is not enough, since a rolled-back database
	// grows past it again and then holds an entry at its number. Heads of
	// other keys (before a master key change) cannot be compared.
	var mirrored []store.AuditHead
	var newest uint64
	key := b.d.store.AuditKeyID()
	for _, h := range req.Journal {
		if h.KeyID == key {
			mirrored = append(mirrored, store.AuditHead{Seq: h.Seq, Hash: h.Hash, KeyID: h.KeyID})
			newest = max(newest, h.Seq)
		}
	}
	v, err := b.d.store.VerifyAuditHeads(ctx, mirrored)
	if err != nil {
		return nil, toAPIError(err)
	}
	res := &apitype.AuditVerify{OK: v.OK, Entries: int(v.Entries), FirstBad: v.FirstBad, Message: v.Reason,
		JournalSeq: newest, JournalHeads: len(mirrored)}
	for _, rk := range v.Rekeys {
		res.Rekeys = append(res.Rekeys, apitype.AuditRekey{Seq: rk.Seq, Time: rk.Time, Entries: rk.Entries,
			From: rk.From, Schema: rk.Schema, UnverifiedFrom: rk.UnverifiedFrom})
	}
	if len(mirrored) == 0 && len(req.Journal) > 0 && v.OK {
		res.OK = false
		res.Message = fmt.Sprintf("none of the %d audit heads given was mirrored by this database (audit key %s): "+
			"the journal is from another database or master key, so a rollback cannot be ruled out", len(req.Journal), key)
	}
	return res, nil
}

// AuditRefusal hands the refusal to the coalescing auditor (refusals.go),
// which audits and logs it, once per caller per window.
func (b backend) AuditRefusal(ctx context.Context, c api.Caller, method, path, reason string) {
	b.d.metrics.AdminRefused() // every refusal is counted, even those coalesced in the audit log
	b.d.refusals.take(ctx, refusal{caller: c, method: method, path: path, reason: reason})
}
