package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/identity/token"
	"github.com/camwarden/camwarden/store"
)

// identityState holds the token verifier and the session tracker (#13).
// The verifier keeps the stored issuers' keys current, so `issuer list`
// shows whether an issuer is usable, and revocations are loaded; the RTSP
// auth path does not consult them yet (docs/identity.md says how it will).
type identityState struct {
	log      hclog.Logger
	verifier *token.Verifier
	tracker  *token.Tracker
}

func (d *Daemon) startIdentity(ctx context.Context) (*identityState, error) {
	log := d.log.Named("identity")
	id := &identityState{log: log}
	id.tracker = token.NewTracker(func(sessionID string, reason token.EndReason) {
		log.Info("token session ends", "session", sessionID, "reason", reason.String())
		// Kick waits for the connections to close: never on the tracker's goroutine.
		go d.streams.Kick(sessionID)
	})
	id.verifier = token.New(token.Options{
		Events: id.tracker,
		Logf:   func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) },
	})
	var revoked []store.RevokedToken
	if err := d.store.View(ctx, func(tx *store.Tx) error {
		var err error
		revoked, err = tx.RevokedTokens()
		return err
	}); err != nil {
		id.close()
		return nil, err
	}
	entries := make(map[string]time.Time, len(revoked))
	for _, r := range revoked {
		entries[r.JTI] = r.Until
	}
	id.verifier.LoadRevoked(entries)
	if err := id.reloadIssuers(ctx, d.store); err != nil {
		id.close()
		return nil, err
	}
	return id, nil
}

func (id *identityState) close() {
	id.verifier.Close()
	id.tracker.Close()
}

// reloadIssuers applies the stored issuers to the verifier (after start and
// after every committed issuer change). A stored issuer the verifier
// refuses is logged and left out rather than stopping the daemon.
func (id *identityState) reloadIssuers(ctx context.Context, st *store.Store) error {
	var stored []store.Issuer
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		stored, err = tx.Issuers()
		return err
	}); err != nil {
		return err
	}
	cfgs := make([]token.Issuer, 0, len(stored))
	for _, s := range stored {
		c := tokenIssuer(s)
		if err := c.Validate(); err != nil {
			id.log.Error("stored token issuer ignored", "issuer", s.Name, "error", err)
			continue
		}
		cfgs = append(cfgs, c)
	}
	return id.verifier.SetIssuers(cfgs)
}

func tokenIssuer(s store.Issuer) token.Issuer {
	return token.Issuer{Name: s.Name, Issuer: s.Issuer, Audience: s.Audience, JWKSURL: s.JWKSURL,
		JWKSFile: s.JWKSFile, SubjectClaim: s.SubjectClaim, GroupsClaim: s.GroupsClaim}
}
