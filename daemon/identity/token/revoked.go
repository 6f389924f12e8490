package token

import (
	"sync"
	"sync/atomic"
	"time"
)

// revokedSet holds revoked jtis until the time their tokens can no longer be
// valid. Readers use the current immutable map without locks; writers
// (rare: an admin's `token revoke`) copy it under a mutex.
type revokedSet struct {
	mu   sync.Mutex
	snap atomic.Pointer[map[string]time.Time]
}

func (r *revokedSet) has(jti string, now time.Time) bool {
	m := r.snap.Load()
	if m == nil {
		return false
	}
	until, ok := (*m)[jti]
	return ok && now.Before(until)
}

// add records jti until until (if later than what is recorded) and drops
// entries whose time has passed.
func (r *revokedSet) add(now time.Time, entries map[string]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := map[string]time.Time{}
	if m := r.snap.Load(); m != nil {
		for jti, until := range *m {
			if now.Before(until) {
				next[jti] = until
			}
		}
	}
	for jti, until := range entries {
		if now.Before(until) && until.After(next[jti]) {
			next[jti] = until
		}
	}
	r.snap.Store(&next)
}

func (r *revokedSet) list(now time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	if m := r.snap.Load(); m != nil {
		for jti, until := range *m {
			if now.Before(until) {
				out[jti] = until
			}
		}
	}
	return out
}

// Revoke refuses every token with this jti from now on and ends the live
// sessions it opened (Events.Revoked). until is the token's exp if known (exp
// is checked strictly, so no token with this jti is valid after it); a
// zero until keeps the revocation for MaxLifetime, which is as long as any
// token accepted from now on can live. It returns the time the revocation
// lapses, for the caller to persist.
func (v *Verifier) Revoke(jti string, until time.Time) time.Time {
	now := v.opts.Now()
	if until.IsZero() {
		until = now.Add(v.opts.MaxLifetime)
	}
	v.revoked.add(now, map[string]time.Time{jti: until})
	if v.opts.Events != nil {
		v.opts.Events.Revoked(jti)
	}
	return until
}

// LoadRevoked restores revocations persisted earlier (at start, from the
// store); lapsed ones are dropped. It ends no sessions: there are none yet.
func (v *Verifier) LoadRevoked(entries map[string]time.Time) {
	v.revoked.add(v.opts.Now(), entries)
}

// Revocations lists the revocations still in force, jti -> lapse time.
func (v *Verifier) Revocations() map[string]time.Time {
	return v.revoked.list(v.opts.Now())
}
