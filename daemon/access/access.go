// Package access decides who may do what on which stream. A Policy is an
// immutable snapshot built from the store; it is swapped atomically by its
// owner and never mutated, so Allows needs no lock. Pure: no I/O.
package access

import (
	"fmt"
	"sort"
	"strings"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// Action is what a subject wants to do on a path.
type Action uint8

const (
	// ActionRead is playing a stream (DESCRIBE/SETUP/PLAY).
	ActionRead Action = iota + 1
	// ActionPublish is pushing a stream (ANNOUNCE/RECORD).
	ActionPublish
)

// ParseAction accepts exactly "read" or "publish".
func ParseAction(s string) (Action, error) {
	switch s {
	case "read":
		return ActionRead, nil
	case "publish":
		return ActionPublish, nil
	}
	return 0, apitype.CheckAction(s)
}

func (a Action) String() string {
	switch a {
	case ActionRead:
		return "read"
	case ActionPublish:
		return "publish"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ValidName reports whether s is in the safe name set (apitype.ValidName,
// where the rule is written once for the CLI and the daemon).
func ValidName(s string) bool { return apitype.ValidName(s) }

// CheckName returns a descriptive error when s is not a valid name.
func CheckName(kind, s string) error { return apitype.CheckName(kind, s) }

// ValidatePattern accepts "camera/stream", "camera/*" and "*".
func ValidatePattern(p string) error { return apitype.CheckPattern(p) }

// User is one account as the policy sees it.
type User struct {
	Name     string
	Disabled bool
	// CredentialVersion changes whenever the user's password changes, so
	// sessions authenticated with an older password can be found and closed.
	CredentialVersion uint64
}

// Grant gives Subject (a user name, or "@group") Action on Pattern.
type Grant struct {
	Subject string
	Action  Action
	Pattern string
}

// rules is the set of patterns one subject holds for one action.
type rules struct {
	all     bool
	cameras map[string]struct{} // "cam" for pattern "cam/*"
	exact   map[string]struct{} // "cam/stream"
}

func (r *rules) add(pattern string) {
	switch {
	case pattern == "*":
		r.all = true
	case strings.HasSuffix(pattern, "/*"):
		if r.cameras == nil {
			r.cameras = map[string]struct{}{}
		}
		r.cameras[strings.TrimSuffix(pattern, "/*")] = struct{}{}
	default:
		if r.exact == nil {
			r.exact = map[string]struct{}{}
		}
		r.exact[pattern] = struct{}{}
	}
}

func (r *rules) match(path string, slash int) bool {
	if r == nil {
		return false
	}
	if r.all {
		return true
	}
	if _, ok := r.exact[path]; ok {
		return true
	}
	if slash > 0 {
		if _, ok := r.cameras[path[:slash]]; ok {
			return true
		}
	}
	return false
}

// subject holds rules indexed by action (index 0 unused).
type subject struct {
	byAction [3]*rules
}

func (s *subject) add(a Action, pattern string) {
	if s.byAction[a] == nil {
		s.byAction[a] = &rules{}
	}
	s.byAction[a].add(pattern)
}

type userEntry struct {
	user   User
	own    subject
	groups []*subject
}

// Policy is an immutable snapshot. The zero value and nil deny everything.
type Policy struct {
	users      map[string]*userEntry
	groups     map[string][]string // group -> sorted members, for listing
	groupRules map[string]*subject // group -> its grants, for principals that are no local user
}

// New builds a Policy. groups maps a group name to its member user names.
// Grants naming unknown users or groups are kept out (they allow nothing);
// invalid actions or patterns are an error, so a bad snapshot never replaces
// a good one.
func New(users []User, groups map[string][]string, grants []Grant) (*Policy, error) {
	p := &Policy{users: make(map[string]*userEntry, len(users)), groups: make(map[string][]string, len(groups))}
	for _, u := range users {
		p.users[u.Name] = &userEntry{user: u}
	}
	groupSubj := make(map[string]*subject, len(groups))
	p.groupRules = groupSubj
	for g, members := range groups {
		s := &subject{}
		groupSubj[g] = s
		ms := append([]string(nil), members...)
		sort.Strings(ms)
		p.groups[g] = ms
		for _, m := range ms {
			if e, ok := p.users[m]; ok {
				e.groups = append(e.groups, s)
			}
		}
	}
	for _, g := range grants {
		if g.Action != ActionRead && g.Action != ActionPublish {
			return nil, fmt.Errorf("grant %s %s: invalid action", g.Subject, g.Pattern)
		}
		if err := ValidatePattern(g.Pattern); err != nil {
			return nil, err
		}
		if name, ok := strings.CutPrefix(g.Subject, "@"); ok {
			if s := groupSubj[name]; s != nil {
				s.add(g.Action, g.Pattern)
			}
			continue
		}
		if e := p.users[g.Subject]; e != nil {
			e.own.add(g.Action, g.Pattern)
		}
	}
	return p, nil
}

// Allows reports whether user may do action on path ("camera/stream", no
// leading slash). Deny by default: unknown or disabled users, unknown
// actions and malformed paths get false. It does not allocate.
func (p *Policy) Allows(user string, action Action, path string) bool {
	if p == nil || (action != ActionRead && action != ActionPublish) {
		return false
	}
	e := p.users[user]
	if e == nil || e.user.Disabled {
		return false
	}
	slash := strings.IndexByte(path, '/')
	if slash <= 0 || slash == len(path)-1 {
		return false
	}
	if e.own.byAction[action].match(path, slash) {
		return true
	}
	for _, g := range e.groups {
		if g.byAction[action].match(path, slash) {
			return true
		}
	}
	return false
}

// AllowsGroups reports whether a principal that is no local user (a token
// holder or a directory user) may do action on path, given the camwarden
// groups its token claims or directory groups map to. Only grants to those
// groups count: such a principal has no grants of its own. Unknown groups,
// unknown actions and malformed paths allow nothing. It does not allocate.
func (p *Policy) AllowsGroups(groups []string, action Action, path string) bool {
	if p == nil || (action != ActionRead && action != ActionPublish) {
		return false
	}
	slash := strings.IndexByte(path, '/')
	if slash <= 0 || slash == len(path)-1 {
		return false
	}
	for _, g := range groups {
		if s := p.groupRules[g]; s != nil && s.byAction[action].match(path, slash) {
			return true
		}
	}
	return false
}

// User returns the user's entry; ok is false for unknown users.
func (p *Policy) User(name string) (u User, ok bool) {
	if p == nil {
		return User{}, false
	}
	e := p.users[name]
	if e == nil {
		return User{}, false
	}
	return e.user, true
}

// Active reports whether name is a known, enabled user whose credentials are
// still at version credVersion. A session authenticated earlier stays valid
// only while this holds.
func (p *Policy) Active(name string, credVersion uint64) bool {
	u, ok := p.User(name)
	return ok && !u.Disabled && u.CredentialVersion == credVersion
}
