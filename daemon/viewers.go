package daemon

// The daemon's side of viewers who are not local users (#13): it
// implements stream.External over the token verifier, the directory and the
// stored group mappings, tracks token sessions' expiry and directory users'
// membership while their sessions live, and audits their logins.

import (
	"context"
	"errors"
	"sync"

	"github.com/camwarden/camwarden/daemon/identity/directory"
	"github.com/camwarden/camwarden/daemon/identity/token"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/store"
)

// viewers implements stream.External.
type viewers struct {
	d *Daemon

	mu       sync.Mutex
	dirUsers map[string]*liveDirUser // directory users with live sessions
}

type liveDirUser struct {
	sessions int // to Forget the user at 0
	user     directory.User
}

func newViewers(d *Daemon) *viewers { return &viewers{d: d, dirUsers: map[string]*liveDirUser{}} }

// rewatch has a new directory's syncer watch every user with live sessions
// (after directory set).
func (v *viewers) rewatch() {
	s := v.d.identity.syncerNow()
	if s == nil {
		return
	}
	v.mu.Lock()
	users := make([]directory.User, 0, len(v.dirUsers))
	for _, l := range v.dirUsers {
		users = append(users, l.user)
	}
	v.mu.Unlock()
	for _, u := range users {
		s.Watch(u)
	}
}

func (v *viewers) Local(name string) bool {
	_, ok := v.d.snap.Load().policy.User(name)
	return ok
}

func (v *viewers) Offered() bool {
	return v.d.identity.dir.Load() != nil || len(v.d.identity.verifier.Status()) > 0
}

// mappings reads the stored group mappings.
func (v *viewers) mappings(ctx context.Context) ([]store.GroupMapping, error) {
	var maps []store.GroupMapping
	err := v.d.store.View(ctx, func(tx *store.Tx) error {
		var err error
		maps, err = tx.GroupMappings()
		return err
	})
	return maps, err
}

func (v *viewers) Token(ctx context.Context, raw string) (stream.Principal, error) {
	id, err := v.d.identity.verifier.Verify(ctx, raw)
	if err != nil {
		return stream.Principal{}, err
	}
	maps, err := v.mappings(ctx)
	if err != nil {
		return stream.Principal{}, err
	}
	return stream.Principal{Name: id.Issuer + ":" + id.Subject, Kind: stream.PrincipalToken,
		Groups: mappedTokenGroups(maps, id.Issuer, id.Groups), Ref: id}, nil
}

// unavailable is a directory that could not be asked, for stream: its own
// message, and errors.Is(stream.ErrDirectoryUnavailable).
type unavailable struct{ err error }

func (u unavailable) Error() string        { return u.err.Error() }
func (u unavailable) Unwrap() error        { return u.err }
func (u unavailable) Is(target error) bool { return target == stream.ErrDirectoryUnavailable }

func (v *viewers) Directory(ctx context.Context, user, password string) (stream.Principal, error) {
	dir := v.d.identity.dir.Load()
	if dir == nil {
		return stream.Principal{}, stream.ErrNoDirectory
	}
	u, err := dir.Login(ctx, user, password)
	if errors.Is(err, directory.ErrUnavailable) {
		return stream.Principal{}, unavailable{err}
	}
	if err != nil {
		return stream.Principal{}, err
	}
	maps, err := v.mappings(ctx)
	if err != nil {
		return stream.Principal{}, err
	}
	return stream.Principal{Name: directoryPrincipal(u.Name), Kind: stream.PrincipalDirectory,
		Groups: mappedDirectoryGroups(maps, u.Groups), Ref: u}, nil
}

func directoryPrincipal(user string) string { return "ldap:" + user }

// Started tracks the session (token: its expiry, key, issuer and jti;
// directory: its user's membership) and audits the login: issuer, subject
// and jti of a token, never the token.
func (v *viewers) Started(sessionID, path string, p stream.Principal) {
	id := v.d.identity
	args := map[string]string{"session": sessionID, "path": path, "kind": p.Kind}
	switch ref := p.Ref.(type) {
	case token.Identity:
		id.tracker.Track(sessionID, ref)
		// A revocation between the verification and Track found no
		// session to end: check again now that it is tracked.
		if ref.JTI != "" {
			if _, revoked := id.verifier.Revocations()[ref.JTI]; revoked {
				id.tracker.Revoked(ref.JTI)
			}
		}
		args["issuer"], args["subject"], args["jti"] = ref.Issuer, ref.Subject, ref.JTI
		args["expires"] = ref.Expiry.UTC().Format("2006-01-02T15:04:05Z")
	case directory.User:
		v.mu.Lock()
		l := v.dirUsers[ref.Name]
		if l == nil {
			l = &liveDirUser{}
			v.dirUsers[ref.Name] = l
		}
		l.sessions++
		l.user = ref
		v.mu.Unlock()
		if s := id.syncerNow(); s != nil {
			s.Watch(ref)
		}
		args["user"], args["dn"] = ref.Name, ref.DN
	}
	v.d.log.Named("identity").Info("viewer login", "principal", p.Name, "session", sessionID, "path", path, "kind", p.Kind)
	go v.d.audit(context.Background(), auditEntry(systemCaller(), "session.login", p.Name, "ok", args))
}

func (v *viewers) Ended(sessionID string, p stream.Principal) {
	id := v.d.identity
	switch ref := p.Ref.(type) {
	case token.Identity:
		id.tracker.Untrack(sessionID)
	case directory.User:
		v.mu.Lock()
		last := true
		if l := v.dirUsers[ref.Name]; l != nil {
			l.sessions--
			last = l.sessions <= 0
		}
		if last {
			delete(v.dirUsers, ref.Name)
		}
		v.mu.Unlock()
		if s := id.syncerNow(); last && s != nil {
			s.Forget(ref.Name)
		}
	}
}

// onDirectorySync closes the directory sessions a sync's changes no longer
// allow: a user whose mapped groups changed keeps only the sessions its
// new groups' grants allow; a disabled or deleted user loses all of them.
// It runs off the syncer's goroutine (closing waits for connections).
func (v *viewers) onDirectorySync(changes []directory.Change) {
	maps, err := v.mappings(context.Background())
	if err != nil {
		v.d.log.Error("group mappings unreadable; directory sessions are re-checked at the next sync", "error", err)
		return
	}
	byUser := make(map[string]directory.Change, len(changes))
	for _, c := range changes {
		byUser[c.User] = c
	}
	v.d.streams.Regroup(func(p stream.Principal) (stream.Principal, bool) {
		u, ok := p.Ref.(directory.User)
		if !ok {
			return p, true
		}
		c, changed := byUser[u.Name]
		if !changed {
			return p, true
		}
		if c.Kind != directory.GroupsChanged {
			return p, false
		}
		u.Groups = canonicalDNs(c.Groups)
		p.Groups, p.Ref = mappedDirectoryGroups(maps, u.Groups), u
		return p, true
	})
}

func canonicalDNs(dns []string) []string {
	out := make([]string, len(dns))
	for i, dn := range dns {
		out[i] = directory.CanonicalDN(dn)
	}
	return out
}

// directoryChanged follows a directory set or clear: the new directory's
// syncer watches the live directory users, and every session is re-mapped
// (clear removes the directory's mappings, so its users' sessions close).
func (d *Daemon) directoryChanged(ctx context.Context, st *store.Store) error {
	if err := d.identity.reloadDirectory(ctx, st); err != nil {
		return err
	}
	d.viewers.rewatch()
	return d.regroupSessions(ctx, st)
}

// regroupSessions re-maps every token and directory session with the
// stored mappings (after group map/unmap) and closes those no longer
// allowed.
func (d *Daemon) regroupSessions(ctx context.Context, _ *store.Store) error {
	maps, err := d.viewers.mappings(ctx)
	if err != nil {
		return err
	}
	d.streams.Regroup(func(p stream.Principal) (stream.Principal, bool) {
		switch ref := p.Ref.(type) {
		case token.Identity:
			p.Groups = mappedTokenGroups(maps, ref.Issuer, ref.Groups)
		case directory.User:
			p.Groups = mappedDirectoryGroups(maps, ref.Groups)
		}
		return p, true
	})
	return nil
}
