package stream

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
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
	"github.com/camwarden/camwarden/daemon/identity/token"
)

// connState is our view of one RTSP connection.
type connState struct {
	ip     string
	conn   *gortsplib.ServerConn
	opened time.Time
	closed chan struct{}
	gate   unauthEntry // guarded by Server.unauth's mutex
	tls    bool        // RTSPS: a password or token may come in clear form

	mu   sync.Mutex
	told map[string]struct{} // session ids our answers gave this connection
	// inSetupGate: the path setup gate this connection's SETUP holds until
	// its answer (setupgate.go)
	inSetupGate chan struct{}
}

// tell records a session id an answer on this connection carried.
func (cs *connState) tell(id string) {
	cs.mu.Lock()
	if cs.told == nil {
		cs.told = map[string]struct{}{}
	}
	cs.told[id] = struct{}{}
	cs.mu.Unlock()
}

func (cs *connState) wasTold(id string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.told[id]
	return ok
}

func (cs *connState) closeConn() { cs.conn.Close() }

type handler struct{ s *Server }

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
	if fc, ok := ctx.Conn.NetConn().(*fanConn); ok && fc.isTLS() {
		cs.tls = true
	}
	ctx.Conn.SetUserData(cs)
	h.s.mu.Lock()
	h.s.conns[ctx.Conn] = cs
	h.s.mu.Unlock()
	// A blocked loopback address may still connect while an exec source
	// awaits its publisher: the publisher proves itself with its one-time
	// credential (execAnnounce); any other request is refused in authorize.
	if (h.s.thr.blocked(cs.ip) && !h.s.execAwaitsPublisher(cs.ip)) || !h.s.unauth.admit(cs) {
		h.s.counts.refusedConns.Add(1)
		ctx.Conn.Close()
	}
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.mu.Lock()
	cs := h.s.conns[ctx.Conn]
	delete(h.s.conns, ctx.Conn)
	h.s.mu.Unlock()
	if cs != nil {
		cs.leaveSetupGate()
		h.s.unauth.leave(cs)
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
	h.s.sessions[se] = struct{}{}
	h.s.mu.Unlock()
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.s.mu.Lock()
	se := sessionOf(ctx.Session)
	if pc := sessionPlay(se); pc != nil {
		h.s.mu.Unlock()
		// The reader's connection is ours now (handoff.go). gortsplib
		// letting go of it is no end; anything else (a TEARDOWN it read
		// before the handoff, its stream closing) ends ours too.
		// (A TEARDOWN ends it once its answer is out: OnRequest.)
		if !errors.As(ctx.Error, new(liberrors.ErrServerSessionNotInUse)) && !errors.As(ctx.Error, new(liberrors.ErrServerSessionTornDown)) {
			go pc.end(closeReason(ctx.Error), false)
		}
		return
	}
	if se != nil {
		delete(h.s.sessions, se)
	}
	var p *path
	var pub bool
	var ext *Principal
	reason, counted := "", false
	if se != nil {
		reason, counted, ext = se.closeReason, se.user != "", se.ext
		p = se.p
		pub = p != nil && p.published && p.publisher == ctx.Session
		if pub && h.s.paths[p.name] == p {
			delete(h.s.paths, p.name)
		}
	}
	h.s.mu.Unlock()
	if p != nil {
		switch {
		case pub:
			p.goDown(StateIdle, "")
			h.s.log.Info("publisher left", "path", p.name, "user", se.user)
		case se.execSource:
			p.execGone(ctx.Session)
		default:
			p.removeReader(se)
			if r := se.reader.Load(); r != nil {
				p.detachReader(r)
			}
		}
	}
	if counted {
		if reason == "" {
			reason = closeReason(ctx.Error)
		}
		h.s.cfg.Observer.SessionClosed(reason)
	}
	if se != nil {
		h.s.extEnded(se, ext)
		close(se.closed)
	}
}

var errRefused = errors.New("refused")

func unauthorized() *base.Response { return &base.Response{StatusCode: base.StatusUnauthorized} }

// authorized is who a request proved to be: a local user (user, ver) or a
// Principal (ext != nil; user is then its name).
type authorized struct {
	user string
	ver  uint64
	ext  *Principal
}

// authorize authenticates the request and checks action on the path against
// the current policy. Every refusal (bad credentials, unknown path, path not
// allowed) is the same 401, so a stranger cannot enumerate cameras. A token
// comes in the query (?token=, never logged) or as a Basic password; a Basic
// login whose name is no local user goes to the directory.
func (h *handler) authorize(conn *gortsplib.ServerConn, req *base.Request, rawPath, query string, action access.Action) (who authorized, name string, res *base.Response, err error) {
	cs := connStateOf(conn)
	ip := ""
	if cs != nil {
		ip = cs.ip
	}
	if h.s.thr.blocked(ip) {
		// No challenge and the connection closes.
		return who, "", unauthorized(), errRefused
	}
	var ah headers.Authorization
	ok := false
	method := "other"
	counted := false // the failure is already on the throttle's books
	var busy *base.Response
	hv, present := req.Header["Authorization"]
	clear := h.s.basicAllowed(cs)
	if tok, _ := token.SplitQuery(query); tok != "" && h.s.cfg.External != nil {
		method = "token"
		if clear {
			who.ext, ok = h.checkToken(ip, tok)
		} else {
			h.s.clearNotes.note(h.s.log, "refused a token sent without TLS (basic_auth = "+h.s.cfg.BasicAuth()+")")
		}
		ensureNonce(conn, req)
	} else if !present || len(hv) == 0 {
		ensureNonce(conn, req)
		return who, "", unauthorized(), liberrors.ErrServerAuth{}
	} else if bu, bp, isBasic := parseBasic(hv); isBasic {
		method = "basic"
		// Our own Basic parsing: gortsplib's refuses passwords holding ':'.
		ah.Method, ah.Username = headers.AuthMethodBasic, bu
		if clear {
			method, who, ok, counted, busy = h.checkBasicOrToken(ip, bu, bp)
		} else {
			h.s.clearNotes.note(h.s.log, "refused a Basic login sent without TLS (basic_auth = "+h.s.cfg.BasicAuth()+"); use Digest or RTSPS")
		}
		ensureNonce(conn, req)
	} else if perr := ah.Unmarshal(hv); perr == nil {
		switch ah.Method {
		case headers.AuthMethodBasic:
			method = "basic"
			if clear {
				method, who, ok, counted, busy = h.checkBasicOrToken(ip, ah.Username, ah.BasicPass)
			}
			ensureNonce(conn, req)
		case headers.AuthMethodDigest:
			method = "digest"
			var secret string
			secret, who.ver, ok = h.s.cfg.Auth.DigestSecret(ah.Username)
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
	if busy != nil {
		h.s.counts.busyLogins.Add(1)
		return authorized{}, "", busy, errBusy
	}
	who.user = ah.Username
	if who.ext != nil {
		who.user = who.ext.Name
	}
	fail := func() (authorized, string, *base.Response, error) {
		h.s.thr.fail(ip)
		h.s.cfg.Observer.AuthFailed(method)
		return authorized{}, "", unauthorized(), liberrors.ErrServerAuth{}
	}
	if !ok {
		if counted {
			h.s.cfg.Observer.AuthFailed(method)
			return authorized{}, "", unauthorized(), liberrors.ErrServerAuth{}
		}
		return fail()
	}
	cam, st, okp := parsePath(rawPath)
	if !okp {
		return fail()
	}
	name = cam + "/" + st
	if !allowedFor(h.s.cfg.Policy(), who.user, who.ver, who.ext, action, name) {
		return fail()
	}
	h.s.thr.succeeded(ip) // its Basic checks now go before strangers'
	if cs != nil {
		h.s.unauth.leave(cs)
	}
	return who, name, nil, nil
}

// checkBasicOrToken checks a Basic login: a password that is a JWT is a
// viewer token (any user name), anything else a password.
func (h *handler) checkBasicOrToken(ip, user, pass string) (method string, who authorized, ok, counted bool, busy *base.Response) {
	if h.s.cfg.External != nil && token.LooksLikeJWT(pass) {
		who.ext, ok = h.checkToken(ip, pass)
		return "token", who, ok, false, nil
	}
	who.ver, who.ext, ok, counted, busy = h.checkBasic(ip, user, pass)
	if who.ext != nil {
		method = "directory"
	} else {
		method = "basic"
	}
	return method, who, ok, counted, busy
}

// checkToken verifies a viewer token (a signature check: cheap, so not
// queued; a failure counts on the throttle like a wrong password).
func (h *handler) checkToken(ip, raw string) (*Principal, bool) {
	ctx, cancel := context.WithTimeout(h.s.ctx, externalTimeout)
	defer cancel()
	p, err := h.s.cfg.External.Token(ctx, raw)
	if err != nil {
		// err never quotes the token
		h.s.log.Info("token login refused", "remote", ip, "reason", err.Error())
		return nil, false
	}
	return &p, true
}

// basicChecksPerAddr is how many expensive Basic checks one address may
// have waiting or running at once.
const basicChecksPerAddr = 2

// checkBasic checks Basic credentials: from the cache of recent successes
// at once, or with the result of an identical check in flight, otherwise
// with an expensive check booked on the throttle BEFORE it is run: a local
// user's (or an unknown name's) argon2 check in its fair turn of the queue,
// a directory login (a name that is no local user, with a directory
// configured) beside the queue, so a slow directory never delays local
// users. counted reports that a failure was recorded (once for a flight);
// busy is the 503 to answer when there is no room or the directory cannot
// be asked.
func (h *handler) checkBasic(ip, user, pass string) (ver uint64, ext *Principal, ok, counted bool, busy *base.Response) {
	if v, hit := h.s.cfg.Auth.CachedBasic(user, pass); hit {
		return v, nil, true, false, nil
	}
	fl, leader, land := h.s.flights.join(user, pass)
	if !leader {
		select {
		case <-fl.done:
		case <-h.s.ctx.Done():
			return 0, nil, false, false, busyResponse()
		}
		if fl.busy {
			return 0, nil, false, false, busyResponse()
		}
		return fl.ver, fl.ext, fl.ok, !fl.ok, nil
	}
	defer land()
	demand, verdict := h.s.thr.reserve(ip)
	switch verdict {
	case reserveRefused:
		return 0, nil, false, false, nil
	case reserveBusy:
		h.s.busy.note(h.s.log)
		fl.busy = true
		return 0, nil, false, false, busyResponse()
	}
	if x := h.s.cfg.External; x != nil && !x.Local(user) {
		p, tried, unavailable := h.checkDirectory(ip, user, pass)
		if unavailable {
			h.s.thr.unbook(ip) // not checked: no failure, no demand
			fl.busy = true
			return 0, nil, false, false, busyResponse()
		}
		if tried {
			h.s.thr.settle(ip, p != nil)
			fl.ext, fl.ok = p, p != nil
			return 0, p, fl.ok, !fl.ok, nil
		}
	}
	release, err := h.s.checks.acquire(h.s.ctx, ip, demand)
	if err != nil {
		h.s.thr.unbook(ip) // not checked: no failure, no demand
		h.s.busy.note(h.s.log)
		fl.busy = true
		return 0, nil, false, false, busyResponse()
	}
	ver, ok = h.s.cfg.Auth.VerifyBasic(user, pass)
	release()
	h.s.thr.settle(ip, ok)
	fl.ver, fl.ok = ver, ok
	return ver, nil, ok, !ok, nil
}

// checkDirectory logs a user that is no local user in with the directory.
// tried=false: there is no directory (the caller runs the local check,
// which costs the same as for any unknown name). unavailable: the directory
// could not be asked, or too many logins wait for it; no credentials were
// checked.
func (h *handler) checkDirectory(ip, user, pass string) (p *Principal, tried, unavailable bool) {
	select {
	case h.s.dirLogins <- struct{}{}:
		defer func() { <-h.s.dirLogins }()
	default:
		h.s.dirNotes.note(h.s.log, "directory logins refused: too many wait for the directory; local users are not affected")
		return nil, true, true
	}
	ctx, cancel := context.WithTimeout(h.s.ctx, externalTimeout)
	defer cancel()
	pr, err := h.s.cfg.External.Directory(ctx, user, pass)
	switch {
	case err == nil:
		return &pr, true, false
	case errors.Is(err, ErrNoDirectory):
		return nil, false, false
	case errors.Is(err, ErrDirectoryUnavailable):
		h.s.dirNotes.note(h.s.log, "directory logins refused: "+err.Error()+"; live sessions are kept and local users are not affected")
		return nil, true, true
	default:
		h.s.log.Info("directory login refused", "remote", ip, "reason", err.Error())
		return nil, true, false
	}
}

// busyResponse asks the client to come back: no credentials were checked.
func busyResponse() *base.Response {
	return &base.Response{StatusCode: base.StatusServiceUnavailable, Header: base.Header{"Retry-After": {"1"}}}
}

// checkSessionConn refuses a request naming a session from any connection
// but the one that created it. gortsplib lets any connection from the
// creator's IP address use a session whose id it knows; for us a session id
// is a handle, not a credential. Not even the session's own user may use it
// from a second connection: gortsplib v5.6.5 reads a session's state
// unlocked from every connection linked to it (a data race), and RTSP
// clients do not split a session over connections (an HTTP tunnel is one
// connection to gortsplib). The refused connection is closed: gortsplib has
// linked it to the session by now, and its reader would race as well.
func (h *handler) checkSessionConn(se *session, conn *gortsplib.ServerConn) (*base.Response, error) {
	if h.s.ownerOf(se) == conn {
		return nil, nil
	}
	if pc := se.play.Load(); pc != nil && conn.NetConn() == net.Conn(pc.fc) {
		return nil, nil // a request gortsplib read just before the handoff
	}
	if cs := connStateOf(conn); cs != nil {
		h.s.thr.fail(cs.ip)
	}
	return &base.Response{StatusCode: base.StatusSessionNotFound}, errRefused
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
	_, name, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query, access.ActionRead)
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
	if se := sessionOf(ctx.Session); se != nil && h.s.ownerOf(se) != ctx.Conn {
		if res, err := h.checkSessionConn(se, ctx.Conn); res != nil {
			return res, nil, err
		}
	}
	if cs := connStateOf(ctx.Conn); cs != nil && cs.tls && ctx.Transport != nil && ctx.Transport.Protocol != gortsplib.ProtocolTCP {
		// RTSPS: the media go inside the TLS connection or not at all
		// (UDP would carry them in clear).
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		// Publisher: authorised at ANNOUNCE on this session.
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	who, name, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query, access.ActionRead)
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
	if se.user != "" && se.user != who.user {
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
	if !h.s.stillAllowed(who.user, who.ver, who.ext, access.ActionRead, name) {
		h.s.mu.Unlock()
		return unauthorized(), nil, liberrors.ErrServerAuth{}
	}
	se.user, se.credVer, se.pathName, se.action, se.p = who.user, who.ver, name, access.ActionRead, p
	if se.ext == nil {
		se.ext = who.ext
	}
	ext := se.ext
	if ctx.Transport != nil {
		se.transport = ctx.Transport.Protocol.String()
	}
	h.s.mu.Unlock()
	if ext != nil {
		h.s.extStarted(se, name, ext)
	}
	p.addReader(se)
	h.enterSetupGate(connStateOf(ctx.Conn), p)
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	se := sessionOf(ctx.Session)
	if se == nil || se.p == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused
	}
	if res, err := h.checkSessionConn(se, ctx.Conn); res != nil {
		return res, err
	}
	if r := se.reader.Load(); r != nil {
		r.resume() // PLAY after PAUSE: on from the next keyframe
	} else if ctx.Session.State() == gortsplib.ServerSessionStatePrePlay {
		// The fan-out engine starts sending once the answer is out
		// (OnResponse arms it): the cached GOP first, then live units.
		se.setupMu.Lock()
		se.playing = true
		se.setupMu.Unlock()
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnPause stops the engine sending to the session's reader until the next
// PLAY, which resumes at a keyframe. (Without this handler gortsplib answers
// 501, and the engine kept sending.) A session that is not playing pauses
// nothing, and a publisher's PAUSE is refused.
func (h *handler) OnPause(ctx *gortsplib.ServerHandlerOnPauseCtx) (*base.Response, error) {
	se := sessionOf(ctx.Session)
	if se == nil || se.p == nil || se.action != access.ActionRead {
		return &base.Response{StatusCode: base.StatusMethodNotValidInThisState}, nil
	}
	if res, err := h.checkSessionConn(se, ctx.Conn); res != nil {
		return res, err
	}
	if r := se.reader.Load(); r != nil {
		r.pause()
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnResponse runs in the connection goroutine just before an answer is
// written. It notes the session ids the connection was given, records what
// SETUP answers gave each medium and, for an accepted PLAY, arms the start
// of the reader right after the answer is written.
func (h *handler) OnResponse(c *gortsplib.ServerConn, res *base.Response) {
	if cs := connStateOf(c); cs != nil {
		cs.leaveSetupGate() // gortsplib is done with this SETUP
	}
	if offers, ok := res.Header["WWW-Authenticate"]; ok {
		res.Header["WWW-Authenticate"] = h.s.challenge(connStateOf(c), offers)
	}
	told := ""
	if cs := connStateOf(c); cs != nil {
		if v := res.Header["Session"]; len(v) == 1 {
			told = sessionIDOf(v[0])
			cs.tell(told)
		}
	}
	if res.StatusCode != base.StatusOK {
		return
	}
	ss := c.Session()
	if ss == nil {
		return
	}
	se := sessionOf(ss)
	if se == nil {
		return
	}
	if told != "" && se.rtspID == "" {
		se.rtspID = told // for the answers after the handoff; written once, before it
	}
	if tv, ok := res.Header["Transport"]; ok {
		se.recordSetup(c, ss, tv)
		return
	}
	se.setupMu.Lock()
	playing := se.playing
	se.playing = false
	se.setupMu.Unlock()
	if !playing || se.reader.Load() != nil {
		return
	}
	fc, _ := c.NetConn().(*fanConn)
	if fc == nil {
		return
	}
	fc.setAfterWrite(func() {
		if r := h.s.startReader(se, ss, fc); r != nil && r.tcp != nil {
			h.s.handOff(se, ss, c, fc, r)
		}
	})
}

// OnRequest runs before gortsplib handles a request. A request naming a
// session whose id no answer on this connection carried is handled as if it
// named none: gortsplib would let it act on the session of any connection
// from the same address (PLAY it, TEARDOWN it, keep it alive). The PLAY,
// RECORD and SETUP callbacks check the connection again (checkSessionConn),
// in case a gortsplib version stops sharing the request with this hook.
func (h *handler) OnRequest(c *gortsplib.ServerConn, req *base.Request) {
	if req.Method == base.Teardown {
		// gortsplib read this TEARDOWN just before the handoff: the
		// session ends once gortsplib's answer is written.
		if ss := c.Session(); ss != nil {
			if pc := sessionPlay(sessionOf(ss)); pc != nil && c.NetConn() == net.Conn(pc.fc) {
				pc.fc.setAfterWrite(func() { pc.end(CloseClient, false) })
			}
		}
	}
	v := req.Header["Session"]
	if len(v) == 0 {
		return
	}
	if cs := connStateOf(c); cs == nil || len(v) != 1 || !cs.wasTold(v[0]) {
		delete(req.Header, "Session")
	}
}

func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	if res, err, handled := h.execAnnounce(ctx); handled {
		return res, err
	}
	who, name, res, err := h.authorize(ctx.Conn, ctx.Request, ctx.Path, ctx.Query, access.ActionPublish)
	if res != nil {
		return res, err
	}
	se := sessionOf(ctx.Session)
	if se == nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, errRefused
	}
	cam, st, _ := parsePath(name)
	h.s.mu.Lock()
	if !h.s.stillAllowed(who.user, who.ver, who.ext, access.ActionPublish, name) {
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
	se.user, se.credVer, se.pathName, se.action, se.p, se.ext = who.user, who.ver, name, access.ActionPublish, p, who.ext
	h.s.mu.Unlock()
	if who.ext != nil {
		h.s.extStarted(se, name, who.ext)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	se := sessionOf(ctx.Session)
	if se == nil || se.p == nil || (!se.p.published && !se.execSource) {
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused
	}
	if res, err := h.checkSessionConn(se, ctx.Conn); res != nil {
		return res, err
	}
	p := se.p
	desc := ctx.Session.AnnouncedDescription()
	if err := p.goLive(&description.Session{Title: desc.Title, Medias: desc.Medias}); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	p.markLive()
	if se.execSource {
		p.execLive(ctx.Session)
	}
	h.s.mu.Lock()
	if tr := ctx.Session.Transport(); tr != nil {
		se.transport = tr.Protocol.String()
	}
	h.s.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		p.ingest(m, pkt)
	})
	if !se.execSource {
		h.s.log.Info("publisher started", "path", p.name, "user", se.user)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}
