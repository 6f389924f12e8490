package directory

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"
)

// ChangeKind says how a watched user's rights changed.
type ChangeKind int

const (
	GroupsChanged ChangeKind = iota + 1 // its mapped groups differ
	Disabled                            // the account is disabled
	Deleted                             // the entry is gone (or no longer unique)
)

func (k ChangeKind) String() string {
	switch k {
	case GroupsChanged:
		return "mapped groups changed"
	case Disabled:
		return "disabled in the directory"
	case Deleted:
		return "deleted from the directory"
	}
	return "unknown"
}

// Change is one user whose rights changed since it was last seen.
type Change struct {
	User   string
	Kind   ChangeKind
	Groups []string // its mapped groups now (GroupsChanged only)
}

// Syncer re-reads the users with live sessions every interval and reports
// those whose mapped groups changed or who were disabled or deleted. A pass
// that cannot reach the directory reports nothing: live sessions are kept
// while the directory is down.
//
// One goroutine owns the watched set; a pass runs on its own goroutine so
// Watch and Forget never wait for the network.
type Syncer struct {
	dir       *Directory
	interval  time.Duration
	mapped    func() []string
	onChange  func([]Change)
	cmds      chan func(*syncState)
	done      chan struct{}
	closeOnce sync.Once
}

type syncState struct {
	watched map[string][]string // user -> mapped groups when last seen
	running bool
	waiters []chan error // SyncNow callers of the running or next pass
}

type passResult struct {
	seen        map[string]User
	gone        map[string]ChangeKind
	err         error
	mappedGroup map[string]bool
}

// NewSyncer starts a Syncer. mapped returns the group DNs that camwarden maps
// (any spelling; they are canonicalised); onChange is called from the
// Syncer's goroutine and must not block.
func NewSyncer(d *Directory, interval time.Duration, mapped func() []string, onChange func([]Change)) *Syncer {
	s := &Syncer{dir: d, interval: interval, mapped: mapped, onChange: onChange,
		cmds: make(chan func(*syncState)), done: make(chan struct{})}
	go s.run()
	return s
}

// Close stops the Syncer.
func (s *Syncer) Close() { s.closeOnce.Do(func() { close(s.done) }) }

func (s *Syncer) do(cmd func(*syncState)) bool {
	select {
	case s.cmds <- cmd:
		return true
	case <-s.done:
		return false
	}
}

// Watch starts re-reading u (after a login), remembering its mapped groups.
func (s *Syncer) Watch(u User) {
	s.do(func(st *syncState) { st.watched[u.Name] = mappedOf(u.Groups, s.mappedSet()) })
}

// Forget stops re-reading a user (its last session ended).
func (s *Syncer) Forget(user string) {
	s.do(func(st *syncState) { delete(st.watched, user) })
}

// SyncNow runs a pass now (or joins the one running) and waits for it.
func (s *Syncer) SyncNow(ctx context.Context) error {
	reply := make(chan error, 1)
	if !s.do(func(st *syncState) { st.waiters = append(st.waiters, reply); s.startPass(st) }) {
		return errors.New("directory sync stopped")
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errors.New("directory sync stopped")
	}
}

func (s *Syncer) mappedSet() map[string]bool {
	set := map[string]bool{}
	if s.mapped != nil {
		for _, g := range s.mapped() {
			set[CanonicalDN(g)] = true
		}
	}
	return set
}

func mappedOf(groups []string, mapped map[string]bool) []string {
	out := []string{}
	for _, g := range groups {
		if mapped[g] {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func (s *Syncer) run() {
	st := &syncState{watched: map[string][]string{}}
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.done:
			return
		case cmd := <-s.cmds:
			cmd(st)
		case <-ticker.C:
			s.startPass(st)
		}
	}
}

// startPass starts a pass over a copy of the watched set unless one runs.
func (s *Syncer) startPass(st *syncState) {
	if st.running {
		return
	}
	if len(st.watched) == 0 {
		for _, w := range st.waiters {
			w <- nil
		}
		st.waiters = nil
		return
	}
	st.running = true
	users := make([]string, 0, len(st.watched))
	for n := range st.watched {
		users = append(users, n)
	}
	waiters := st.waiters
	st.waiters = nil
	go func() {
		res := s.pass(users)
		s.do(func(st *syncState) {
			st.running = false
			changes := s.apply(st, res)
			if len(changes) > 0 && s.onChange != nil {
				s.onChange(changes)
			}
			for _, w := range waiters {
				w <- res.err
			}
			if len(st.waiters) > 0 {
				s.startPass(st) // a SyncNow arrived during the pass
			}
		})
	}()
}

// pass re-reads users over one connection. Any failure to reach the
// directory aborts the whole pass: no change is reported from a partial view.
func (s *Syncer) pass(users []string) passResult {
	d := s.dir
	res := passResult{seen: map[string]User{}, gone: map[string]ChangeKind{}, mappedGroup: s.mappedSet()}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout*time.Duration(len(users)+1))
	defer cancel()
	c, err := d.connect(ctx)
	if err != nil {
		res.err = err
		d.logf("directory sync skipped, live sessions kept: %v", err)
		return res
	}
	defer c.close()
	for _, name := range users {
		u, err := c.lookup(ctx, name)
		switch {
		case err == nil:
			res.seen[name] = u
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrAmbiguous):
			res.gone[name] = Deleted
		case errors.Is(err, ErrDisabled):
			res.gone[name] = Disabled
		default:
			res.err = err
			d.logf("directory sync skipped, live sessions kept: %v", err)
			return passResult{err: err}
		}
	}
	return res
}

func (s *Syncer) apply(st *syncState, res passResult) []Change {
	if res.err != nil {
		return nil
	}
	var changes []Change
	for name, kind := range res.gone {
		if _, still := st.watched[name]; !still {
			continue
		}
		delete(st.watched, name)
		s.dir.Forget(name)
		changes = append(changes, Change{User: name, Kind: kind})
		s.dir.logf("directory user %q %s; its sessions end", name, kind)
	}
	for name, u := range res.seen {
		before, still := st.watched[name]
		if !still {
			continue
		}
		now := mappedOf(u.Groups, res.mappedGroup)
		if !slices.Equal(before, now) {
			st.watched[name] = now
			s.dir.Forget(name)
			changes = append(changes, Change{User: name, Kind: GroupsChanged, Groups: now})
			s.dir.logf("directory user %q: mapped groups changed", name)
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].User < changes[j].User })
	return changes
}
