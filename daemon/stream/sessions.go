package stream

// The session registry: every RTSP session gortsplib opens is registered
// here (OnSessionOpen/OnSessionClose in handler.go); once authorised it
// carries its user, credential version, path and action, so a new policy
// can close exactly the sessions it no longer allows (Enforce) and an admin
// can list and kick them.

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"

	"github.com/camwarden/camwarden/daemon/access"
)

// session is one registered RTSP session.
type session struct {
	id string
	// gortsplib's session and the connection that created it, under
	// Server.mu; both nil once the reader's connection is handed off
	// (handoff.go), so that nothing of gortsplib's stays alive for it.
	ss     *gortsplib.ServerSession
	owner  *gortsplib.ServerConn
	remote string
	since  time.Time
	closed chan struct{}
	// rtspID is the id the client was given in the Session header (conn
	// goroutine, before the handoff; read-only after it)
	rtspID string
	// play is set once the playing reader's connection is ours
	play atomic.Pointer[playConn]

	// when its first connection opened (time to first frame counts from here)
	connected time.Time
	// why we closed it on purpose (a Close* reason), under Server.mu
	closeReason string

	// set once authorised (under Server.mu)
	user      string // a local user, or the Principal's name
	credVer   uint64
	ext       *Principal // not a local user: a token holder or a directory user
	life      extLife    // External.Started/Ended for ext
	pathName  string
	action    access.Action
	transport string
	p         *path
	// execSource: the publishing session of a camera's exec source (no user)
	execSource bool

	// the transport of each medium, from the SETUP answers (conn goroutine)
	setupMu sync.Mutex
	setups  map[*description.Media]mediaSetup
	playing bool // PLAY accepted: the reader starts after the answer

	reader atomic.Pointer[fanReader] // set once playing (fanout_session.go)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ownerOf is the connection that created se (nil once handed off).
func (s *Server) ownerOf(se *session) *gortsplib.ServerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return se.owner
}

func sessionOf(ss *gortsplib.ServerSession) *session {
	se, _ := ss.UserData().(*session)
	return se
}

// Sessions lists the authorised sessions, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	ses := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		if se.user != "" {
			ses = append(ses, se)
		}
	}
	infos := make([]SessionInfo, 0, len(ses))
	for _, se := range ses {
		infos = append(infos, SessionInfo{
			ID: se.id, User: se.user, Path: se.pathName, Action: se.action.String(),
			RemoteAddr: se.remote, Transport: se.transport, Since: se.since,
		})
	}
	gss := make([]*gortsplib.ServerSession, len(ses))
	for i, se := range ses {
		gss[i] = se.ss
	}
	s.mu.Unlock()
	for i, se := range ses {
		if pc := se.play.Load(); pc != nil {
			infos[i].BytesSent, infos[i].BytesReceived = pc.bytes()
		} else if gss[i] != nil {
			st := gss[i].Stats()
			infos[i].BytesSent, infos[i].BytesReceived = st.OutboundBytes, st.InboundBytes
		}
		if r := se.reader.Load(); r != nil {
			infos[i].BytesSent += r.sent.Load()
		}
	}
	sort.Slice(infos, func(i, j int) bool {
		if !infos[i].Since.Equal(infos[j].Since) {
			return infos[i].Since.Before(infos[j].Since)
		}
		return infos[i].ID < infos[j].ID
	})
	return infos
}

// Kick closes one session and returns once its connections are closed.
func (s *Server) Kick(id string) bool { return s.End(id, CloseKicked) }

// End closes one session for reason (a Close* value, for metrics) and
// returns once its connections are closed.
func (s *Server) End(id, reason string) bool {
	s.mu.Lock()
	var target *session
	for se := range s.sessions {
		if se.id == id {
			target = se
			break
		}
	}
	s.mu.Unlock()
	if target == nil {
		return false
	}
	s.markClosing(target, reason)
	s.closeSessions([]*session{target})
	return true
}

// stillAllowed re-checks a right against the current policy while s.mu is
// held, just before a session is registered with its user. Authorisation
// happened earlier (and SETUP may wait seconds for an on-demand source); a
// revocation in between has already swapped the policy before calling
// Enforce, so either this check or Enforce sees the session.
func (s *Server) stillAllowed(user string, ver uint64, ext *Principal, action access.Action, name string) bool {
	return allowedFor(s.cfg.Policy(), user, ver, ext, action, name)
}

// Enforce closes exactly the sessions p no longer allows (user disabled,
// removed or with a changed password, or the grant gone) and returns how
// many, once their connections are closed. A token holder's or directory
// user's session is re-checked with its mapped groups' grants.
func (s *Server) Enforce(p *access.Policy) int {
	s.mu.Lock()
	var victims []*session
	for se := range s.sessions {
		if se.user == "" {
			continue
		}
		if !allowedFor(p, se.user, se.credVer, se.ext, se.action, se.pathName) {
			victims = append(victims, se)
		}
	}
	s.mu.Unlock()
	for _, se := range victims {
		s.markClosing(se, CloseRevoked)
	}
	s.closeSessions(victims)
	if len(victims) > 0 {
		s.log.Info("closed sessions the new policy no longer allows", "count", len(victims))
	}
	return len(victims)
}

// markClosing records why we are about to close se; the first reason wins.
func (s *Server) markClosing(se *session, reason string) {
	s.mu.Lock()
	if se.closeReason == "" {
		se.closeReason = reason
	}
	s.mu.Unlock()
}

// closeSessions closes the sessions and their connections and waits (at most
// a few seconds) until gortsplib reports them closed.
func (s *Server) closeSessions(ses []*session) {
	var waits []chan struct{}
	for _, se := range ses {
		// Nothing more reaches the reader once this returns (UDP too); a
		// TCP reader's socket is reset, discarding what the kernel holds.
		if r := se.reader.Load(); r != nil {
			r.close()
		}
		if pc := se.play.Load(); pc != nil {
			// Ours alone: closed, unregistered and counted before end
			// returns.
			pc.end(CloseClient, true)
			continue
		}
		s.mu.Lock()
		ss := se.ss // nil only once handed off, and play is set before
		s.mu.Unlock()
		if ss == nil {
			continue
		}
		conns := ss.Conns()
		for _, c := range conns {
			if fc, ok := c.NetConn().(*fanConn); ok {
				fc.abort()
			}
		}
		s.mu.Lock()
		for _, c := range conns {
			if cs := s.conns[c]; cs != nil {
				waits = append(waits, cs.closed)
			}
		}
		s.mu.Unlock()
		waits = append(waits, se.closed)
		ss.Close()
		for _, c := range conns {
			c.Close()
		}
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-deadline.C:
			s.log.Warn("sessions did not close in time")
			return
		}
	}
}
