package stream

// The handoff: once a TCP reader plays, its connection leaves gortsplib.
//
// gortsplib's server runs five goroutines for a playing reader (connection,
// its reader, session, an idle writer, an idle RTCP sender) and keeps about
// 12 KB of state for it, although none of that carries a byte of media: the
// fan-out engine writes the media straight to the socket. So right after
// the PLAY answer is written, the connection is handed to a playConn, and
// gortsplib is made to let go of it: its next read fails without taking a
// byte from the socket (fanConn.Read), its Close leaves the socket open, and
// the session it closes in turn is only unlinked (OnSessionClose), not
// ended. What is left per reader is one goroutine blocked in a 1-byte read,
// the fanConn, the fanReader and the session record; a read buffer is
// borrowed from a pool only while the client is sending something.
//
// A playing reader's client sends little: RTCP receiver reports (read and
// dropped), keep-alives (GET_PARAMETER, OPTIONS), PAUSE/PLAY and TEARDOWN.
// The playConn answers those as gortsplib did; anything else gets 455.
// UDP readers and tunnelled connections stay with gortsplib.
//
// A request the client pipelined right behind its PLAY may already sit in
// gortsplib's read buffer: gortsplib answers it (our handler's callbacks
// treat the handed-off connection as the session's owner), and if it ends
// gortsplib's session otherwise than by letting go (TEARDOWN, the stream
// closing), OnSessionClose ends ours. A request split across that buffer's
// end cannot be read by either and ends the session.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
)

// readerIdleTimeout closes a playing TCP reader's connection that sent
// nothing (no keep-alive, no RTCP report) for this long: gortsplib's
// IdleTimeout, which the handed-off connection keeps. (A variable for
// tests.)
var readerIdleTimeout = 60 * time.Second

// publicMethods is the OPTIONS answer: what the handler implements, in
// gortsplib's order (handoff_test.go checks that they agree).
const publicMethods = "DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, TEARDOWN"

// serverHeader is what gortsplib puts in every answer's Server header.
const serverHeader = "gortsplib"

// playConn is a playing TCP reader's connection after the handoff. Its
// goroutine (serve) owns the reading side; end may run from any goroutine
// and runs once.
type playConn struct {
	s  *Server
	se *session
	fc *fanConn
	r  *fanReader

	// from gortsplib, at the handoff
	baseIn, baseOut uint64
	// since the handoff
	in, out atomic.Uint64

	peek    [1]byte
	endOnce sync.Once
}

// handOff takes a TCP reader's connection from gortsplib right after its
// PLAY answer was written (gortsplib's connection goroutine, so its reader
// is not reading yet). It leaves the session with gortsplib when the
// connection is tunnelled or shared, or when the session is already being
// closed.
func (s *Server) handOff(se *session, ss *gortsplib.ServerSession, c *gortsplib.ServerConn, fc *fanConn, r *fanReader) {
	if r.tcp != fc || c.NetConn() != fc || c.Transport().Tunnel != gortsplib.TunnelNone || se.rtspID == "" {
		return
	}
	if conns := ss.Conns(); len(conns) != 1 || conns[0] != c {
		return
	}
	st := ss.Stats()
	pc := &playConn{s: s, se: se, fc: fc, r: r, baseIn: st.InboundBytes, baseOut: st.OutboundBytes}
	s.mu.Lock()
	if _, live := s.sessions[se]; !live || se.closeReason != "" || s.closed {
		// gortsplib has closed it, or someone is closing it through
		// gortsplib right now: leave it there.
		s.mu.Unlock()
		return
	}
	se.play.Store(pc)
	se.ss, se.owner = nil, nil
	s.mu.Unlock()
	fc.handOff()
	if r.isClosed() {
		// Its path went down in between (the fan-out closes its readers
		// before goDown looks for handed-off ones): end it here.
		pc.end(CloseStopped, true)
		return
	}
	go pc.serve()
}

// bytes is what the session sent (answers; the engine counts media) and
// received.
func (pc *playConn) bytes() (sent, received uint64) {
	return pc.baseOut + pc.out.Load(), pc.baseIn + pc.in.Load()
}

// end ends the session: no more media, the socket closed (reset, dropping
// what the kernel still holds, unless graceful), the session unregistered
// and counted. reason applies unless a reason was marked before.
func (pc *playConn) end(reason string, reset bool) {
	pc.endOnce.Do(func() {
		s, se := pc.s, pc.se
		pc.r.close()
		if reset {
			pc.fc.abort()
		} else {
			_ = pc.fc.shut()
		}
		if p := se.p; p != nil {
			p.removeReader(se)
			p.detachReader(pc.r)
		}
		s.mu.Lock()
		delete(s.sessions, se)
		if se.closeReason == "" {
			se.closeReason = reason
		}
		reason, ext, counted := se.closeReason, se.ext, se.user != ""
		s.mu.Unlock()
		if counted {
			s.cfg.Observer.SessionClosed(reason)
		}
		s.extEnded(se, ext)
		close(se.closed)
	})
}

// socketReader reads the socket (under TLS for RTSPS) past fanConn.Read,
// which fails for gortsplib once the connection is handed off.
type socketReader struct{ pc *playConn }

func (r socketReader) Read(p []byte) (int, error) {
	// Renewed at every read: a client that keeps sending is never cut,
	// a request that stops halfway is.
	_ = r.pc.fc.Conn.SetReadDeadline(time.Now().Add(readerIdleTimeout))
	n, err := r.pc.fc.Conn.Read(p)
	r.pc.in.Add(uint64(max(n, 0)))
	return n, err
}

// prefixReader gives back the byte the idle read took, then reads on.
type prefixReader struct {
	first []byte
	rest  io.Reader
}

func (r *prefixReader) Read(p []byte) (int, error) {
	if len(r.first) > 0 {
		n := copy(p, r.first)
		r.first = r.first[n:]
		return n, nil
	}
	return r.rest.Read(p)
}

// readBufs lends the read buffer to connections whose client is sending
// something right now; an idle reader holds none. 4 KB takes the longest
// request line gortsplib accepts (a URL with a token in its query).
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// serve reads what the client sends until the session ends.
func (pc *playConn) serve() {
	raw := socketReader{pc}
	for {
		n, _ := raw.Read(pc.peek[:])
		if n == 0 {
			pc.end(CloseClient, false)
			return
		}
		br := readBufs.Get().(*bufio.Reader)
		br.Reset(&prefixReader{first: pc.peek[:n], rest: raw})
		ok := pc.drain(br)
		br.Reset(nil)
		readBufs.Put(br)
		if !ok {
			return
		}
	}
}

// drain handles what br holds and what follows it at once; it returns
// false once the session has ended.
func (pc *playConn) drain(br *bufio.Reader) bool {
	for {
		if !pc.handleOne(br) {
			return false
		}
		if br.Buffered() == 0 {
			return true
		}
	}
}

// handleOne reads one interleaved frame (dropped: the client's RTCP
// reports) or one request, and answers the request.
func (pc *playConn) handleOne(br *bufio.Reader) bool {
	req, err := readFromPlayingClient(br)
	switch {
	case errors.Is(err, errUnreadable):
		// Not RTSP: nothing sensible to answer, as gortsplib.
		pc.s.log.Debug("closing a playing reader that sent something unreadable", "session", pc.se.id, "remote", pc.se.remote, "error", err)
		pc.end(CloseClient, false)
		return false
	case err != nil: // EOF, silence past readerIdleTimeout, a reset
		pc.end(CloseClient, false)
		return false
	case req == nil:
		return true
	}
	res, act := answerPlaying(req, pc.se.rtspID)
	switch act {
	case playResume:
		pc.r.resume()
	case playPause:
		pc.r.pause()
	}
	if !pc.reply(res) {
		return false
	}
	if act == playEnd {
		pc.end(CloseClient, false)
		return false
	}
	return true
}

// errUnreadable: what a playing client sent is not RTSP.
var errUnreadable = errors.New("not an RTSP request")

// readFromPlayingClient reads one item a playing client sends: a request,
// or an interleaved frame, which it drops (req and err nil).
func readFromPlayingClient(br *bufio.Reader) (*base.Request, error) {
	b, err := br.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] == base.InterleavedFrameMagicByte {
		hdr, err := br.Peek(4)
		if err != nil {
			return nil, err
		}
		_, err = br.Discard(4 + int(binary.BigEndian.Uint16(hdr[2:])))
		return nil, err
	}
	var req base.Request
	if err := req.Unmarshal(br); err != nil {
		if isReadFailure(err) {
			return nil, err // the socket's end or failure, not the client's words
		}
		return nil, fmt.Errorf("%w: %v", errUnreadable, err)
	}
	return &req, nil
}

// isReadFailure: err came from reading the socket (EOF, reset, the idle
// deadline, a close), which Unmarshal passes on as it is.
func isReadFailure(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// playAction is what an answered request does to the session.
type playAction int

const (
	playNone   playAction = iota
	playResume            // PLAY
	playPause             // PAUSE
	playEnd               // TEARDOWN, or a request without CSeq
)

// answerPlaying is the answer to one request of a playing reader whose
// session id is rtspID, as gortsplib would have given it.
func answerPlaying(req *base.Request, rtspID string) (*base.Response, playAction) {
	res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{}}
	cseq, ok := req.Header["CSeq"]
	if !ok || len(cseq) != 1 {
		res.StatusCode = base.StatusBadRequest
		return res, playEnd
	}
	res.Header["CSeq"] = cseq
	v, inSession := req.Header["Session"]
	switch {
	case inSession && (len(v) != 1 || sessionIDOf(v[0]) != rtspID),
		!inSession && (req.Method == base.Play || req.Method == base.Pause || req.Method == base.Teardown):
		// Only this connection's own session is reachable here, and
		// only by its id.
		res.StatusCode = base.StatusSessionNotFound
		return res, playNone
	}
	act := playNone
	switch req.Method {
	case base.Options:
		res.Header["Public"] = base.HeaderValue{publicMethods}
	case base.GetParameter:
		res.Header["Content-Type"] = base.HeaderValue{"text/parameters"}
		res.Body = []byte{}
	case base.Play:
		act = playResume
	case base.Pause:
		act = playPause
	case base.Teardown:
		return res, playEnd // no Session header on its answer
	case base.SetParameter:
		res.StatusCode = base.StatusNotImplemented
	default:
		res.StatusCode = base.StatusMethodNotValidInThisState
	}
	if inSession || req.Method != base.Options {
		timeout := uint(max(int(readerIdleTimeout/time.Second)-5, 1))
		res.Header["Session"] = headers.Session{Session: rtspID, Timeout: &timeout}.Marshal()
	}
	return res, act
}

// reply writes an answer, after any media the socket has not taken yet.
func (pc *playConn) reply(res *base.Response) bool {
	res.Header["Server"] = base.HeaderValue{serverHeader}
	buf, err := res.Marshal()
	if err != nil {
		pc.end(CloseClient, true)
		return false
	}
	_ = pc.fc.SetWriteDeadline(time.Now().Add(pc.s.cfg.WriteTimeout))
	n, err := pc.fc.Write(buf)
	pc.out.Add(uint64(max(n, 0)))
	if err != nil {
		pc.end(CloseClient, true)
		return false
	}
	return true
}

// sessionIDOf is the id of a Session header ("id;timeout=60").
func sessionIDOf(v string) string {
	id, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(id)
}

// sessionPlay is se's playConn (nil for no session or one gortsplib holds).
func sessionPlay(se *session) *playConn {
	if se == nil {
		return nil
	}
	return se.play.Load()
}
