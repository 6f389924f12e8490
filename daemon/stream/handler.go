package stream

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/camwarden/camwarden/daemon/access"
)

// connState is our view of one RTSP connection.
type connState struct {
	ip     string
	conn   *gortsplib.ServerConn
	opened time.Time
	closed chan struct{}
	gate   unauthEntry // guarded by Server.unauth's mutex

	mu         sync.Mutex
	playUnlock func() // releases a path lock held from OnPlay to OnResponse
	user       string // who last authenticated on this connection ("" = nobody yet)
}

func (cs *connState) closeConn() { cs.conn.Close() }

func (cs *connState) setUser(user string) {
	cs.mu.Lock()
	cs.user = user
	cs.mu.Unlock()
}

func (cs *connState) authenticatedAs() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.user
}

func (cs *connState) setPlayUnlock(f func()) {
	cs.mu.Lock()
	cs.playUnlock = f
	cs.mu.Unlock()
}

func (cs *connState) releasePlay() {
	cs.mu.Lock()
	f := cs.playUnlock
	cs.playUnlock = nil
	cs.mu.Unlock()
	if f != nil {
		f()
	}
}

// session is one registered RTSP session.
type session struct {
	id     string
	ss     *gortsplib.ServerSession
	owner  *gortsplib.ServerConn // the connection that created it
	remote string
	since  time.Time
	closed chan struct{}

	// when its first connection opened (time to first frame counts from here)
	connected time.Time
	// why we closed it on purpose (a Close* reason), under Server.mu
	closeReason string

	// set once authorised (under Server.mu)
	user      string
	credVer   uint64
	pathName  string
	action    access.Action
	transport string
	p         *path

	// stalled-reader detection, touched only from OnStreamWriteError
	errMu    sync.Mutex
	errFirst time.Time
	errLast  time.Time
	evicted  bool
}

type handler struct{ s *Server }

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func remoteIP(c *gortsplib.ServerConn) string {
	a := c.NetConn().RemoteAddr()
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	cs := &connState{ip: remoteIP(ctx.Conn), conn: ctx.Conn, opened: time.Now(), closed: make(chan struct{})}
	ctx.Conn.SetUserData(cs)
	h.s.mu.Lock()
	h.s.conns[ctx.Conn] = cs
	h.s.mu.Unlock()
	if h.s.thr.blocked(cs.ip) || !h.s.unauth.admit(cs) {
		ctx.Conn.Close()
	}
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.mu.Lock()
	cs := h.s.conns[ctx.Conn]
	delete(h.s.conns, ctx.Conn)
	h.s.mu.Unlock()
	if cs != nil {
		h.s.unauth.leave(cs)
		cs.releasePlay()
		close(cs.closed)
	}
}

func connStateOf(c *gortsplib.ServerConn) *connState {
	cs, _ := c.UserData().(*connState)
	return cs
}

func (h *handler) OnSessionOpen(ctx *gortsplib.ServerHandlerOnSessionOpenCtx) {
	se := &session{id: newID(), ss: ctx.Session, owner: ctx.Conn, since: time.Now(), closed: make(chan struct{})}
	se.connected = se.since
	if ctx.Conn != nil {
		se.remote = ctx.Conn.NetConn().RemoteAddr().String()
		if cs := connStateOf(ctx.Conn); cs != nil {
			se.connected = cs.opened
		}
	}
	ctx.Session.SetUserData(se)
	h.s.mu.Lock()
	h.s.sessions[ctx.Session] = se
	h.s.mu.Unlock()
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.s.mu.Lock()
	se := h.s.sessions[ctx.Session]
	delete(h.s.sessions, ctx.Session)
	var p *path
	var pub bool
	reason, counted := "", false
	if se != nil {
		reason, counted = se.closeReason, se.user != ""
		p = se.p
		pub = p != nil && p.published && p.publisher == ctx.Session
		if pub && h.s.paths[p.name] == p {
			delete(h.s.paths, p.name)
		}
	}
	h.s.mu.Unlock()
	if p != nil {
		if pub {
			p.goDown(StateIdle, "")
			h.s.log.Info("publisher left", "path", p.name, "user", se.user)
		} else {
			p.removeReader(ctx.Session)
		}
	}
	if counted {
		if reason == "" {
			reason = closeReason(ctx.Error)
		}
		h.s.cfg.Observer.SessionClosed(reason)
	}
	if se != nil {
		close(se.closed)
	}
}

func sessionOf(ss *gortsplib.ServerSession) *session {
	se, _ := ss.UserData().(*session)
	return se
}

var errRefused = errors.New("refused")

func unauthorized() *base.Response { return &base.Response{StatusCode: base.StatusUnauthorized} }

// authorize authenticates the request and checks action on the path against
// the current policy. Every refusal (bad credentials, unknown path, path not
// allowed) is the same 401, so a stranger cannot enumerate cameras.
func (h *handler) authorize(conn *gortsplib.ServerConn, req *base.Request, rawPath string, action access.Action) (user string, ver uint64, name string, res *base.Response, err error) {
	cs := connStateOf(conn)
	ip := ""
	if cs != nil {
		ip = cs.ip
	}
	if h.s.thr.blocked(ip) {
		// No challenge and the connection closes.
		return "", 0, "", unauthorized(), errRefused
	}
	hv, present := req.Header["Authorization"]
	var ah headers.Authorization
	if !present || len(hv) == 0 {
		ensureNonce(conn, req)
		return "", 0, "", unauthorized(), liberrors.ErrServerAuth{}
	}
	ok := false
	method := "other"
	if bu, bp, isBasic := parseBasic(hv); isBasic {
		method = "basic"
		// Our own Basic parsing: gortsplib's refuses passwords holding ':'.
		ah.Method, ah.Username = headers.AuthMethodBasic, bu
		ver, ok = h.s.cfg.Auth.VerifyBasic(bu, bp)
		ensureNonce(conn, req)
	} else if perr := ah.Unmarshal(hv); perr == nil {
		switch ah.Method {
		case headers.AuthMethodBasic:
			method = "basic"
			ver, ok = h.s.cfg.Auth.VerifyBasic(ah.Username, ah.BasicPass)
			ensureNonce(conn, req)
		case headers.AuthMethodDigest:
			method = "digest"
			var secret string
			secret, ver, ok = h.s.cfg.Auth.DigestSecret(ah.Username)
			if ok && secret != "" {
				ok = conn.VerifyCredentials(req, ah.Username, secret)
			} else {
				ok = false
				ensureNonce(conn, req)
			}
		default:
			ensureNonce(conn, req)
		}
	} else {
		ensureNonce(conn, req)
	}
	user = ah.Username
	fail := func() (string, uint64, string, *base.Response, error) {
		h.s.thr.fail(ip)
		h.s.cfg.Observer.AuthFailed(method)
		return "", 0, "", unauthorized(), liberrors.ErrServerAuth{}
	}
	if !ok {
		return fail()
	}
	pol := h.s.cfg.Policy()
	if !pol.Active(user, ver) {
		return fail()
	}
	cam, st, okp := parsePath(rawPath)
	if !okp {
		return fail()
	}
	name = cam + "/" + st
	if !pol.Allows(user, action, name) {
		return fail()
	}
	if cs != nil {
		cs.setUser(user)
		h.s.unauth.leave(cs)
	}
	return user, ver, name, nil, nil
}

// checkSessionConn refuses a request naming a session from a connection
// that neither created the session nor authenticates as its user.
// gortsplib lets any connection from the creator's IP address use a session
// whose id it knows; for us a session id is a handle, not a credential.
func (h *handler) checkSessionConn(se *session, conn *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if conn == se.owner {
		return nil, nil
	}
	h.s.mu.Lock()
	user, name, action := se.user, se.pathName, se.action
	h.s.mu.Unlock()
	if user == "" {
		// Not yet authorised on its own connection: nothing to join.
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused
	}
	cs := connStateOf(conn)
	if cs != nil && cs.authenticatedAs() == user {
		return nil, nil
	}
	got, _, _, res, err := h.authorize(conn, req, "/"+name, action)
	if res != nil {
		return res, err
	}
	if got != user {
		if cs != nil {
			h.s.thr.fail(cs.ip)
		}
		return unauthorized(), liberrors.ErrServerAuth{}
	}
	return nil, nil
}

// parseBasic decodes a Basic Authorization header; the password is
// everything after the first ':' (RFC 7617).
func parseBasic(hv base.HeaderValue) (user, pass string, ok bool) {
	if len(hv) != 1 {
		return "", "", false
	}
	enc, found := strings.CutPrefix(hv[0], "Basic ")
	if !found {
		return "", "", false
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(dec), ":")
	return user, pass, ok && user != ""
}

// ensureNonce makes gortsplib generate the Digest nonce for this connection;
// without it a 401 carries an empty nonce and every Digest reply fails.
func ensureNonce(conn *gortsplib.ServerConn, req *base.Request) {
	conn.VerifyCredentials(req, "-", "\x00")
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	_, _, name, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path, access.ActionRead)
	if res != nil {
		return res, nil, err
	}
	p := h.s.lookupPath(name)
	if p == nil {
		h.s.thr.fail(connStateOf(ctx.Conn).ip)
		return unauthorized(), nil, liberrors.ErrServerAuth{}
	}
	st := p.waitReady(h.s.ctx, h.s.cfg.OnDemandStartTimeout)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		// Publisher: authorised at ANNOUNCE on this session.
		if se := sessionOf(ctx.Session); se != nil {
			if res, err := h.checkSessionConn(se, ctx.Conn, ctx.Request); res != nil {
				return res, nil, err
			}
		}
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	user, ver, name, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path, access.ActionRead)
	if res != nil {
		return res, nil, err
	}
	p := h.s.lookupPath(name)
	if p == nil {
		h.s.thr.fail(connStateOf(ctx.Conn).ip)
		return unauthorized(), nil, liberrors.ErrServerAuth{}
	}
	se := sessionOf(ctx.Session)
	if se == nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, errRefused
	}
	h.s.mu.Lock()
	if se.p != nil && se.p != p {
		h.s.mu.Unlock()
		return &base.Response{StatusCode: base.StatusBadRequest}, nil, nil
	}
	if se.user != "" && se.user != user {
		// Another user's session: a session id is no credential.
		h.s.mu.Unlock()
		h.s.thr.fail(connStateOf(ctx.Conn).ip)
		return unauthorized(), nil, liberrors.ErrServerAuth{}
	}
	h.s.mu.Unlock()
	st := p.waitReady(h.s.ctx, h.s.cfg.OnDemandStartTimeout)
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	h.s.mu.Lock()
	if !h.s.stillAllowed(user, ver, access.ActionRead, name) {
		h.s.mu.Unlock()
		return unauthorized(), nil, liberrors.ErrServerAuth{}
	}
	se.user, se.credVer, se.pathName, se.action, se.p = user, ver, name, access.ActionRead, p
	if ctx.Transport != nil {
		se.transport = ctx.Transport.Protocol.String()
	}
	h.s.mu.Unlock()
	p.addReader(ctx.Session)
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	se := sessionOf(ctx.Session)
	if se == nil || se.p == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused
	}
	if res, err := h.checkSessionConn(se, ctx.Conn, ctx.Request); res != nil {
		return res, err
	}
	cs := connStateOf(ctx.Conn)
	if ctx.Session.State() != gortsplib.ServerSessionStatePrePlay || cs == nil || h.s.cfg.GOPCacheDisabled {
		if ctx.Session.State() == gortsplib.ServerSessionStatePrePlay {
			se.p.mu.Lock()
			se.p.awaitKeyframeLocked(ctx.Session, se.connected)
			se.p.mu.Unlock()
		}
		return &base.Response{StatusCode: base.StatusOK}, nil
	}
	// Send the packets since the last keyframe, then keep the ingest side
	// locked until gortsplib has made the session active (it does so after
	// OnPlay returns, before the response goes out): the reader gets the
	// cached packets followed by the live ones, with no gap and no duplicate.
	p := se.p
	p.mu.Lock()
	if ctx.Session.Stream() != p.stream {
		p.mu.Unlock()
		return &base.Response{StatusCode: base.StatusOK}, nil
	}
	if p.replayGOPLocked(ctx.Session) > 0 {
		// The cache starts at a keyframe: that was the first frame.
		h.s.cfg.Observer.FirstFrame(time.Since(se.connected))
	} else {
		p.awaitKeyframeLocked(ctx.Session, se.connected)
	}
	var once sync.Once
	unlock := func() { once.Do(p.mu.Unlock) }
	cs.setPlayUnlock(unlock)
	time.AfterFunc(2*time.Second, unlock) // belt and braces: never hold ingest longer
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnResponse runs in the connection goroutine after the request was handled.
func (h *handler) OnResponse(c *gortsplib.ServerConn, _ *base.Response) {
	if cs := connStateOf(c); cs != nil {
		cs.releasePlay()
	}
}

func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	user, ver, name, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path, access.ActionPublish)
	if res != nil {
		return res, err
	}
	se := sessionOf(ctx.Session)
	if se == nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, errRefused
	}
	cam, st, _ := parsePath(name)
	h.s.mu.Lock()
	if !h.s.stillAllowed(user, ver, access.ActionPublish, name) {
		h.s.mu.Unlock()
		return unauthorized(), errRefused
	}
	if old := h.s.paths[name]; old != nil {
		h.s.mu.Unlock()
		// A configured camera or another publisher holds the path.
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused
	}
	p := newPath(h.s, cam, st)
	p.published = true
	p.publisher = ctx.Session
	h.s.paths[name] = p
	se.user, se.credVer, se.pathName, se.action, se.p = user, ver, name, access.ActionPublish, p
	h.s.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	se := sessionOf(ctx.Session)
	if se == nil || se.p == nil || !se.p.published {
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused
	}
	if res, err := h.checkSessionConn(se, ctx.Conn, ctx.Request); res != nil {
		return res, err
	}
	p := se.p
	desc := ctx.Session.AnnouncedDescription()
	if err := p.goLive(&description.Session{Title: desc.Title, Medias: desc.Medias}); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	p.markLive()
	h.s.mu.Lock()
	if tr := ctx.Session.Transport(); tr != nil {
		se.transport = tr.Protocol.String()
	}
	h.s.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		p.ingest(m, pkt)
	})
	h.s.log.Info("publisher started", "path", p.name, "user", se.user)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnStreamWriteError is called when a reader's queue is full (gortsplib
// drops the packet for that reader only). A reader that stays full for
// StalledReaderTimeout has stopped reading: evict it.
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	se := sessionOf(ctx.Session)
	if se == nil {
		return
	}
	now := time.Now()
	se.errMu.Lock()
	if se.errFirst.IsZero() || now.Sub(se.errLast) > time.Second {
		se.errFirst = now // a new streak
	}
	se.errLast = now
	evict := !se.evicted && now.Sub(se.errFirst) >= h.s.cfg.StalledReaderTimeout
	if evict {
		se.evicted = true
	}
	se.errMu.Unlock()
	if evict {
		h.s.markClosing(se, CloseEvicted)
		h.s.log.Warn("evicting reader that stopped reading", "session", se.id, "user", se.user, "path", se.pathName, "remote", se.remote, "stalled_for", now.Sub(se.errFirst).Round(time.Millisecond))
		ctx.Session.Close()
		for _, c := range ctx.Session.Conns() {
			c.Close()
		}
	}
}

// Sessions lists the authorised sessions, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	ses := make([]*session, 0, len(s.sessions))
	for _, se := range s.sessions {
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
	s.mu.Unlock()
	for i, se := range ses {
		st := se.ss.Stats()
		infos[i].BytesSent, infos[i].BytesReceived = st.BytesSent, st.BytesReceived
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
func (s *Server) Kick(id string) bool {
	s.mu.Lock()
	var target *session
	for _, se := range s.sessions {
		if se.id == id {
			target = se
			break
		}
	}
	s.mu.Unlock()
	if target == nil {
		return false
	}
	s.markClosing(target, CloseKicked)
	s.closeSessions([]*session{target})
	return true
}

// stillAllowed re-checks a right against the current policy while s.mu is
// held, just before a session is registered with its user. Authorisation
// happened earlier (and SETUP may wait seconds for an on-demand source); a
// revocation in between has already swapped the policy before calling
// Enforce, so either this check or Enforce sees the session.
func (s *Server) stillAllowed(user string, ver uint64, action access.Action, name string) bool {
	p := s.cfg.Policy()
	return p.Active(user, ver) && p.Allows(user, action, name)
}

// Enforce closes exactly the sessions p no longer allows (user disabled,
// removed or with a changed password, or the grant gone) and returns how
// many, once their connections are closed.
func (s *Server) Enforce(p *access.Policy) int {
	s.mu.Lock()
	var victims []*session
	for _, se := range s.sessions {
		if se.user == "" {
			continue
		}
		if !p.Active(se.user, se.credVer) || !p.Allows(se.user, se.action, se.pathName) {
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
		conns := se.ss.Conns()
		s.mu.Lock()
		for _, c := range conns {
			if cs := s.conns[c]; cs != nil {
				waits = append(waits, cs.closed)
			}
		}
		s.mu.Unlock()
		waits = append(waits, se.closed)
		se.ss.Close()
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
