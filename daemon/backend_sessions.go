package daemon

import (
	"context"
	"strings"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
)

func (b backend) SessionList(ctx context.Context, c api.Caller) (*apitype.SessionList, error) {
	out := &apitype.SessionList{Sessions: []apitype.Session{}}
	for _, s := range b.d.streams.Sessions() {
		out.Sessions = append(out.Sessions, apitype.Session{ID: s.ID, User: s.User, Action: s.Action,
			Path: strings.TrimPrefix(s.Path, "/"), Remote: s.RemoteAddr, Transport: s.Transport, Started: s.Since, BytesSent: s.BytesSent})
	}
	return out, nil
}

func (b backend) SessionKick(ctx context.Context, c api.Caller, id string) (*apitype.MutationResult, error) {
	d := b.d
	var kicked bool
	if err := d.do(ctx, func() { kicked = d.streams.Kick(id) }); err != nil {
		return nil, toAPIError(err)
	}
	outcome := "ok"
	if !kicked {
		outcome = "failed: not_found"
	}
	d.audit(ctx, auditEntry(c, "session.kick", id, outcome, nil))
	if !kicked {
		return nil, apitype.Errorf(apitype.CodeNotFound, "no live session %q (see camwarden session list)", id)
	}
	return &apitype.MutationResult{Changed: true, ClosedSessions: 1}, nil
}
