package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/store"
)

// backend implements api.Backend on top of the daemon. Reads go to the
// store or the stream layer directly; mutations go through mutate.
type backend struct{ d *Daemon }

var _ api.Backend = backend{}

func (d *Daemon) startAPI(ctx context.Context, cfg Config, activated net.Listener) (<-chan struct{}, error) {
	ln := activated
	if ln == nil {
		if err := os.MkdirAll(dirOf(cfg.Socket), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the admin socket directory: %w", err)
		}
		var err error
		if ln, err = api.Listen(cfg.Socket, cfg.AdminGroup, d.log.Named("api")); err != nil {
			return nil, err
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := api.Serve(ctx, ln, api.Options{
			Backend:    backend{d},
			Logger:     d.log.Named("api"),
			AdminGroup: cfg.AdminGroup,
			AllowUID:   os.Getuid(),
		})
		if err != nil && ctx.Err() == nil {
			d.log.Error("admin API stopped", "error", err)
		}
	}()
	return done, nil
}

func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "."
	}
	return p[:i]
}

// setOrEmpty records whether an add was given a secret (never the secret:
// see store.AuditSecretSet).
func setOrEmpty(secret string) string {
	if secret == "" {
		return ""
	}
	return store.AuditSecretSet
}

// secretEdit records what an edit did to a stored secret; given is nil
// when the request leaves it alone.
func secretEdit(given *string) string {
	switch {
	case given == nil:
		return store.AuditSecretKept
	case *given == "":
		return store.AuditSecretRemoved
	}
	return store.AuditSecretChanged
}

// auditEntry is the one place a caller becomes an audit entry's actor.
func auditEntry(c api.Caller, action, target, outcome string, args map[string]string) store.AuditEntry {
	return store.AuditEntry{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe,
		Action: action, Target: target, Outcome: outcome, Args: args}
}

// audit appends an entry outside a mutation (refusals, failures, kicks);
// a failure to write it is logged, never returned to the caller.
func (d *Daemon) audit(ctx context.Context, e store.AuditEntry) {
	if _, err := d.store.AppendAudit(ctx, e); err != nil {
		d.log.Error("cannot write an audit entry", "action", e.Action, "outcome", e.Outcome, "error", err)
	}
}

func (d *Daemon) auditFailure(ctx context.Context, c api.Caller, action, target, outcome string) {
	d.audit(ctx, auditEntry(c, action, target, outcome, nil))
}
