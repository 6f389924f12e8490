package stream

// Viewers who are not local users (#13): the holder of a signed token and a
// directory user. The daemon proves who they are (Config.External); this
// package decides with the grants of the camwarden groups they map to
// (access.Policy.AllowsGroups), keeps that decision current for live
// sessions (Enforce, Regroup) and tells the daemon when such a session
// starts and ends, so it can track the token's expiry and the directory
// user's membership.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/access"
)

// Principal is a viewer proven by a signed token or a directory login. It
// has no grants of its own: only its Groups' grants count.
type Principal struct {
	Name   string   // shown as the session's user: "ISSUER:SUBJECT" or "ldap:USER"
	Kind   string   // PrincipalToken or PrincipalDirectory
	Groups []string // the camwarden groups it maps to
	Ref    any      // the daemon's own record of it (never a secret)
}

// Principal kinds.
const (
	PrincipalToken     = "token"
	PrincipalDirectory = "directory"
)

// External checks viewers who are not local users. All methods may be
// called from many connections at once.
type External interface {
	// Local reports whether name is a local user: its Basic password is
	// checked against the store only, never sent to the directory.
	Local(name string) bool
	// Token verifies a signed viewer token. The error says why not and
	// never quotes the token.
	Token(ctx context.Context, raw string) (Principal, error)
	// Directory logs a user that is not local in. ErrNoDirectory when none
	// is configured; an error wrapping ErrDirectoryUnavailable when it
	// cannot be asked (down, slow, garbage): no credentials were checked.
	Directory(ctx context.Context, user, password string) (Principal, error)
	// Offered reports whether token or directory logins are configured:
	// then a challenge that may offer Basic offers only Basic, since RTSP
	// clients pick Digest whenever it is offered, and a token or a
	// directory password cannot be checked with Digest.
	Offered() bool
	// Started and Ended bracket every authorised session of a Principal
	// (path: "camera/stream"). They must not block.
	Started(sessionID, path string, p Principal)
	Ended(sessionID string, p Principal)
}

// Config.BasicAuth values.
const (
	BasicTLSOnly = "tls-only"
	BasicAlways  = "always"
	BasicNever   = "never"
)

// basicAllowed reports whether a password or token may come in clear form
// (Basic, a token) on this connection.
func (s *Server) basicAllowed(cs *connState) bool {
	switch s.cfg.BasicAuth() {
	case BasicAlways:
		return true
	case BasicNever:
		return false
	}
	return cs != nil && cs.tls
}

// challenge rewrites a 401's WWW-Authenticate offers for this connection:
// no Basic where it is not allowed; Basic alone where it is and token or
// directory logins are configured (clients pick Digest when offered).
func (s *Server) challenge(cs *connState, offers []string) []string {
	basic := s.basicAllowed(cs)
	only := basic && s.cfg.External != nil && s.cfg.External.Offered()
	out := offers[:0:0]
	for _, o := range offers {
		isBasic := strings.HasPrefix(o, "Basic")
		if (isBasic && !basic) || (!isBasic && only) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// Refusals External.Directory may return.
var (
	ErrNoDirectory          = errors.New("no directory configured")
	ErrDirectoryUnavailable = errors.New("directory unavailable")
)

// externalTimeout bounds one token verification or directory login (the
// directory's own timeout is usually shorter).
const externalTimeout = 10 * time.Second

// directoryLoginsAtOnce bounds directory logins in flight; more are
// answered 503. They never take a slot of the argon2 queue, so a slow
// directory cannot delay local users.
const directoryLoginsAtOnce = 16

// allowedFor is the policy decision for a local user (user, ver) or a
// principal (ext != nil).
func allowedFor(p *access.Policy, user string, ver uint64, ext *Principal, action access.Action, name string) bool {
	if ext != nil {
		return p.AllowsGroups(ext.Groups, action, name)
	}
	return p.Active(user, ver) && p.Allows(user, action, name)
}

// Regroup re-decides every live session of a Principal: regroup returns it
// as it is now (its groups, the daemon's record), or keep=false when it may
// no longer log in at all (a directory account disabled or deleted). Sessions the current policy
// no longer allows with their new groups are closed; it returns how many,
// once their connections are closed.
func (s *Server) Regroup(regroup func(Principal) (now Principal, keep bool)) int {
	pol := s.cfg.Policy()
	s.mu.Lock()
	var ext []*session
	for se := range s.sessions {
		if se.ext != nil {
			ext = append(ext, se)
		}
	}
	s.mu.Unlock()
	var victims []*session
	for _, se := range ext {
		s.mu.Lock()
		cur, action, name := se.ext, se.action, se.pathName
		s.mu.Unlock()
		if cur == nil {
			continue
		}
		next, keep := regroup(*cur)
		next.Name, next.Kind, next.Groups = cur.Name, cur.Kind, slices.Clone(next.Groups)
		s.mu.Lock()
		if se.ext == cur {
			se.ext = &next
		}
		s.mu.Unlock()
		if !keep || !pol.AllowsGroups(next.Groups, action, name) {
			victims = append(victims, se)
		}
	}
	for _, se := range victims {
		s.markClosing(se, CloseRevoked)
	}
	s.closeSessions(victims)
	if len(victims) > 0 {
		s.log.Info("closed sessions whose directory or token groups no longer allow them", "count", len(victims))
	}
	return len(victims)
}

// directoryNotes logs a refusal (why directory logins, or clear credentials,
// are refused) at most once every 10 s, with how many were refused since:
// an outage is one line per period, not one per reconnecting viewer.
type directoryNotes struct {
	mu      sync.Mutex
	last    time.Time
	refused int
}

func (n *directoryNotes) note(log hclog.Logger, msg string) {
	n.mu.Lock()
	n.refused++
	if time.Since(n.last) < 10*time.Second {
		n.mu.Unlock()
		return
	}
	refused := n.refused
	n.last, n.refused = time.Now(), 0
	n.mu.Unlock()
	log.Warn(msg, "refused", refused)
}

// extLife orders a session's Started and Ended calls: Ended only after
// Started, and no Started once the session has ended.
type extLife struct {
	mu      sync.Mutex
	started bool
	ended   bool
}

// extStarted calls External.Started once, unless the session already ended.
func (s *Server) extStarted(se *session, path string, p *Principal) {
	se.life.mu.Lock()
	defer se.life.mu.Unlock()
	if se.life.ended || se.life.started {
		return
	}
	se.life.started = true
	s.cfg.External.Started(se.id, path, *p)
}

func (s *Server) extEnded(se *session, p *Principal) {
	se.life.mu.Lock()
	defer se.life.mu.Unlock()
	se.life.ended = true
	if se.life.started && p != nil {
		s.cfg.External.Ended(se.id, *p)
	}
}
