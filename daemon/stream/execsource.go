package stream

// The exec source: for a device only a vendor tool or ffmpeg can read, the
// daemon runs a command (no shell) that publishes the stream over RTSP to
// {output}, a URL on this server with a one-time credential. The credential
// is random per start, accepted only from loopback, only to publish this
// stream's own path, only while that start runs, and only once: the first
// ANNOUNCE it authenticates voids it (it is in the command's argv, readable
// by local users). It is never stored or logged. The camera's stored password reaches the command only through the
// environment variable CAMWARDEN_PASSWORD.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"

	"github.com/camwarden/camwarden/daemon/access"
)

// OutputPlaceholder is replaced, in every argument of an exec source's
// command, by the RTSP URL the command publishes to.
const OutputPlaceholder = "{output}"

// PasswordEnv carries the camera's stored password to an exec source.
const PasswordEnv = "CAMWARDEN_PASSWORD"

// execPublishTimeout bounds how long a started command may take to publish.
const execPublishTimeout = 30 * time.Second

// execStopGrace is how long a command has to exit after SIGTERM before its
// process group is killed.
const execStopGrace = 3 * time.Second

// stderrTail is how much of a command's output is kept for the last error.
const stderrTail = 2048

// execCred is one start's publish credential.
type execCred struct{ user, secret string }

// execState is the exec side of a camera path; its fields are under path.mu.
type execState struct {
	cred    *execCred                // the running start's credential until one ANNOUNCE used it; nil = none accepted
	session *gortsplib.ServerSession // the command's publishing session
	pid     int                      // the running command's PID (0 = none)
	events  chan struct{}            // the publisher went live or went away
	live    bool                     // the publisher is recording
}

// sourceOnce runs one connection of a camera path's source.
func (p *path) sourceOnce(ctx context.Context) (time.Time, error) {
	switch {
	case len(p.spec.Exec) > 0:
		return p.execOnce(ctx)
	case isRTMP(p.spec.URL):
		return p.rtmpOnce(ctx)
	}
	return p.pullOnce(ctx)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// outputURL is the loopback publish URL for this path with cred.
func (p *path) outputURL(cred *execCred) (string, error) {
	addr := p.s.Addr()
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", errors.New("RTSP server is not listening")
	}
	host := "127.0.0.1"
	if !ta.IP.IsUnspecified() && ta.IP != nil {
		// Bound to one address: publish to it (it is this machine's).
		host = ta.IP.String()
	}
	return "rtsp://" + cred.user + ":" + cred.secret + "@" + net.JoinHostPort(host, strconv.Itoa(ta.Port)) + "/" + p.name, nil
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > stderrTail {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrTail:]...)
	}
	return len(b), nil
}

// lines returns the last few lines, trimmed, joined with " | ".
func (t *tailBuffer) lines(n int) string {
	t.mu.Lock()
	s := string(t.buf)
	t.mu.Unlock()
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, " | ")
}

// execOnce starts the command once and serves what it publishes until it
// exits, stops publishing, or is no longer wanted. The returned error holds
// no secret.
func (p *path) execOnce(ctx context.Context) (liveAt time.Time, err error) {
	sp := p.spec
	pass := ""
	if sp.Password != nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		pw, perr := sp.Password(pctx)
		cancel()
		if perr != nil {
			return time.Time{}, fmt.Errorf("cannot unseal camera password: %s", scrub(perr.Error(), pw))
		}
		pass = pw
	}
	cred := &execCred{user: "exec-" + randomHex(6), secret: randomHex(24)}
	out, err := p.outputURL(cred)
	if err != nil {
		return time.Time{}, err
	}
	tail := &tailBuffer{}
	defer func() {
		if err != nil && !errors.Is(err, errIdle) { // errIdle is no failure: keep it recognisable
			msg := err.Error()
			if t := tail.lines(6); t != "" {
				msg += "; output: " + t
			}
			err = errors.New(scrub(msg, out, cred.secret, pass))
		}
	}()
	args := make([]string, len(sp.Exec))
	for i, a := range sp.Exec {
		args[i] = strings.ReplaceAll(a, OutputPlaceholder, out)
	}
	bin, err := ResolveCommand(args[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("exec source: %v", err)
	}
	cmd := &exec.Cmd{
		Path:   bin,
		Args:   args,
		Env:    execEnv(p.camera, p.strm, sp.Username, pass),
		Stdout: tail,
		Stderr: tail,
		// Its own process group, so stopping it stops what it started;
		// killed if the daemon dies.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}

	p.mu.Lock()
	p.exec.cred = cred
	p.exec.session, p.exec.live = nil, false
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.exec.cred, p.exec.pid = nil, 0
		ss := p.exec.session
		p.exec.session, p.exec.live = nil, false
		p.mu.Unlock()
		if ss != nil {
			ss.Close()
		}
	}()
	if err := cmd.Start(); err != nil {
		return time.Time{}, fmt.Errorf("exec source: start %s: %v", args[0], err)
	}
	pid := cmd.Process.Pid
	p.mu.Lock()
	p.exec.pid = pid
	p.mu.Unlock()
	p.s.log.Info("exec source started", "path", p.name, "command", args[0], "pid", pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			stopGroup(pid, exited)
		}
	}()

	exitErr := func(werr error) error {
		stopped = true
		_ = syscall.Kill(-pid, syscall.SIGKILL) // anything it left behind
		if werr == nil {
			return errors.New("exec source: command exited")
		}
		return fmt.Errorf("exec source: command %v", werr)
	}

	publishBy := time.NewTimer(execPublishTimeout)
	defer publishBy.Stop()
	idle := &idleWatch{p: p}
	defer idle.stop()
	healthTick := time.NewTicker(badInputWindow / 2)
	defer healthTick.Stop()
	for {
		select {
		case werr := <-exited:
			return liveAt, exitErr(werr)
		case <-ctx.Done():
			return liveAt, ctx.Err()
		case <-publishBy.C:
			if liveAt.IsZero() {
				return liveAt, fmt.Errorf("exec source: the command published nothing to %s within %s", OutputPlaceholder, execPublishTimeout)
			}
		case <-p.exec.events:
			p.mu.Lock()
			live, ss := p.exec.live, p.exec.session
			p.mu.Unlock()
			switch {
			case live && liveAt.IsZero():
				liveAt = time.Now()
				p.s.log.Info("exec source live", "path", p.name, "pid", pid)
				idle.check()
			case !liveAt.IsZero() && ss == nil:
				return liveAt, errors.New("exec source: the command stopped publishing")
			case ss == nil && p.execCredUsed():
				// Its credential is spent: a new start brings a new one.
				return liveAt, errors.New("exec source: the command's publishing session ended before it recorded")
			}
		case now := <-healthTick.C:
			if !liveAt.IsZero() {
				if err := p.checkSource(now); err != nil {
					return liveAt, fmt.Errorf("%v; restarting the command", err)
				}
			}
		case <-p.notify:
			if !liveAt.IsZero() {
				idle.check()
			}
		case <-idle.C:
			if idle.fired() {
				return liveAt, errIdle
			}
		}
	}
}

// execEnv is the command's whole environment: nothing of the daemon's but
// a PATH and locale, plus the camera's names and password.
func execEnv(camera, strm, user, password string) []string {
	env := []string{
		"PATH=" + execPath,
		"LANG=C.UTF-8",
		"CAMWARDEN_CAMERA=" + camera,
		"CAMWARDEN_STREAM=" + strm,
	}
	if user != "" {
		env = append(env, "CAMWARDEN_USER="+user)
	}
	if home := os.Getenv("STATE_DIRECTORY"); home != "" {
		env = append(env, "HOME="+home)
	}
	if password != "" {
		env = append(env, PasswordEnv+"="+password)
	}
	return env
}

// stopGroup stops the command's process group: SIGTERM, then SIGKILL after
// a grace period; it returns once the command has been reaped.
func stopGroup(pid int, exited <-chan error) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(execStopGrace)
	defer t.Stop()
	select {
	case <-exited:
		_ = syscall.Kill(-pid, syscall.SIGKILL) // anything it left behind
		return
	case <-t.C:
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-exited
}

// execAnnounce handles an ANNOUNCE carrying an exec source's one-time
// credential. handled=false leaves the request to the ordinary publisher
// path (users with the publish right).
func (h *handler) execAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (res *base.Response, err error, handled bool) {
	cam, st, ok := parsePath(ctx.Path)
	if !ok {
		return nil, nil, false
	}
	name := cam + "/" + st
	p := h.s.lookupPath(name)
	if p == nil || p.published || p.exec == nil {
		return nil, nil, false
	}
	p.mu.Lock()
	cred := p.exec.cred
	taken := p.exec.session != nil
	p.mu.Unlock()
	if cred == nil || taken {
		return nil, nil, false
	}
	user := authUser(ctx.Request)
	if user == "" {
		// The challenge, even to an address the throttle blocks: the
		// publisher may share it with someone who failed to log in.
		ensureNonce(ctx.Conn, ctx.Request)
		return unauthorized(), liberrors.ErrServerAuth{}, true
	}
	if user != cred.user {
		return nil, nil, false
	}
	cs := connStateOf(ctx.Conn)
	if cs == nil || !net.ParseIP(cs.ip).IsLoopback() || !ctx.Conn.VerifyCredentials(ctx.Request, cred.user, cred.secret) {
		if cs != nil {
			h.s.thr.fail(cs.ip)
		}
		return unauthorized(), liberrors.ErrServerAuth{}, true
	}
	se := sessionOf(ctx.Session)
	if se == nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, errRefused, true
	}
	h.s.mu.Lock()
	p.mu.Lock()
	if h.s.paths[name] != p || p.exec.cred != cred || p.exec.session != nil {
		p.mu.Unlock()
		h.s.mu.Unlock()
		return &base.Response{StatusCode: base.StatusBadRequest}, errRefused, true
	}
	p.exec.session = ctx.Session
	p.exec.cred = nil // single-use: no second session, even after this one ends
	p.mu.Unlock()
	// No user: the session is the camera's source, not a user's, so
	// policy changes never close it and it is not listed as a user session.
	se.pathName, se.action, se.p, se.execSource = name, access.ActionPublish, p, true
	h.s.mu.Unlock()
	h.s.unauth.leave(cs)
	return &base.Response{StatusCode: base.StatusOK}, nil, true
}

// execCredUsed reports whether the running start's credential was spent by
// an ANNOUNCE.
func (p *path) execCredUsed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exec.cred == nil
}

// execLive tells the exec runner that its publisher is recording.
func (p *path) execLive(ss *gortsplib.ServerSession) {
	p.mu.Lock()
	if p.exec != nil && p.exec.session == ss {
		p.exec.live = true
	}
	p.mu.Unlock()
	signal(p.exec.events)
}

// execGone tells the exec runner that its publisher left.
func (p *path) execGone(ss *gortsplib.ServerSession) {
	p.mu.Lock()
	current := p.exec.session == ss
	if current {
		p.exec.session, p.exec.live = nil, false
	}
	p.mu.Unlock()
	if !current {
		return // the runner dropped it (stopping, idle): its state is the runner's
	}
	p.goDown(StateConnecting, "")
	signal(p.exec.events)
}

// authUser is the user name an Authorization header claims ("" if none).
func authUser(req *base.Request) string {
	hv, ok := req.Header["Authorization"]
	if !ok || len(hv) == 0 {
		return ""
	}
	if u, _, ok := parseBasic(hv); ok {
		return u
	}
	var ah headers.Authorization
	if err := ah.Unmarshal(hv); err != nil {
		return ""
	}
	return ah.Username
}

// execPath is the PATH exec sources run with and are looked up in.
const execPath = "/usr/local/bin:/usr/bin:/bin"

// ResolveCommand finds an exec source's program: a name with a slash is
// taken as it is, any other is looked up in execPath.
func ResolveCommand(name string) (string, error) {
	if strings.Contains(name, "/") {
		if fi, err := os.Stat(name); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%q is not an executable file", name)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(execPath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in %s (give its full path)", name, execPath)
}

// execAwaitsPublisher reports whether ip is a loopback address and some exec
// source is waiting for its command to publish.
func (s *Server) execAwaitsPublisher(ip string) bool {
	if a := net.ParseIP(ip); a == nil || !a.IsLoopback() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.paths {
		if p.exec == nil {
			continue
		}
		p.mu.Lock()
		waiting := p.exec.cred != nil && p.exec.session == nil
		p.mu.Unlock()
		if waiting {
			return true
		}
	}
	return false
}
