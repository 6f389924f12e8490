package daemon

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

// systemCaller is the daemon itself (renumbering, start-up repairs).
func systemCaller() api.Caller {
	return api.Caller{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid(), Exe: "camwardend"}
}

// changeSet says what a mutation touched, so only those parts are redone.
type changeSet struct {
	users   bool // drop the auth cache
	cameras bool // re-diff the stream layer
	// closedCameras are cameras removed: their readers are closed by
	// SetCameras and counted here.
	removedCameras []string
}

// mutation describes one admin change.
type mutation struct {
	caller api.Caller
	action string // audit action, e.g. "grant.revoke"
	target string
	args   map[string]string // redacted: never a secret
	apply  func(tx *store.Tx, ch *changeSet) error
}

// mutate runs m as one transaction on the loop goroutine: every live
// session the new rights no longer allow is closed, the change and its
// audit entry commit together (fsynced), then the new snapshot is swapped
// in, the stream layer is updated, and the sessions are checked once more,
// all before mutate returns. A failed change leaves the stored state as it
// was and is audited as failed (sessions it had already closed may
// reconnect).
func (d *Daemon) mutate(ctx context.Context, m mutation) (apitype.MutationResult, error) {
	var res apitype.MutationResult
	var outErr error
	err := d.do(ctx, func() {
		res, outErr = d.mutateLocked(ctx, m)
	})
	if err != nil {
		return res, apitype.Errorf(apitype.CodeUnavailable, "daemon busy or stopping: %v", err)
	}
	return res, outErr
}

func (d *Daemon) mutateLocked(ctx context.Context, m mutation) (apitype.MutationResult, error) {
	var res apitype.MutationResult
	var ch changeSet
	var pv policyView
	var cams []store.Camera
	entry := auditEntry(m.caller, m.action, m.target, "ok", m.args)
	var precut chan int
	err := d.store.Update(ctx, &entry, func(tx *store.Tx) error {
		if err := m.apply(tx, &ch); err != nil {
			return err
		}
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		if pv, err = buildPolicy(pd); err != nil {
			return err
		}
		// Cut what the new rights no longer allow now, while the commit
		// and its fsyncs run: a revoked viewer is off in well under the
		// time the disk takes. (Nothing on the closing path touches the
		// store or the loop goroutine.) If the commit fails, those viewers may
		// come back (the old rights still stand): a failure errs on the
		// closed side. Enforce runs again once the change is published,
		// for anyone who came in meanwhile under the old rights.
		precut = make(chan int, 1)
		go func(p *access.Policy) { precut <- d.streams.Enforce(p) }(pv.policy)
		if ch.cameras {
			cams, err = tx.Cameras()
		}
		return err
	})
	if precut != nil {
		res.ClosedSessions += <-precut
	}
	if err != nil {
		apiErr := toAPIError(err)
		d.audit(ctx, auditEntry(m.caller, m.action, m.target, "failed: "+apiErr.Code, m.args))
		return res, apiErr
	}
	next := d.publish(func(s *snapshot) { s.policyView = pv })
	if ch.users {
		d.auth.reset()
	}
	if ch.cameras {
		for _, s := range d.streams.Sessions() {
			for _, gone := range ch.removedCameras {
				if strings.HasPrefix(strings.TrimPrefix(s.Path, "/"), gone+"/") {
					res.ClosedSessions++
				}
			}
		}
		res.RestartedStreams = d.streams.SetCameras(ctx, d.cameraSpecs(cams))
	}
	res.ClosedSessions += d.streams.Enforce(next.policy)
	d.log.Info("change applied", "action", m.action, "target", m.target, "closed_sessions", res.ClosedSessions)
	return res, nil
}

// toAPIError maps store and validation errors to typed API errors. Messages
// of store errors name records, never secrets.
func toAPIError(err error) *apitype.Error {
	var ae *apitype.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrNotFound):
		return &apitype.Error{Code: apitype.CodeNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrExists):
		return &apitype.Error{Code: apitype.CodeConflict, Message: err.Error()}
	case errors.Is(err, store.ErrNoSpace):
		// The store's message names the state directory; nothing was written.
		return &apitype.Error{Code: apitype.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apitype.Error{Code: apitype.CodeUnavailable, Message: "request cancelled or timed out"}
	}
	return &apitype.Error{Code: apitype.CodeInternal, Message: "internal error; see the camwardend log"}
}

func invalid(format string, args ...any) error {
	return apitype.Errorf(apitype.CodeInvalid, format, args...)
}
