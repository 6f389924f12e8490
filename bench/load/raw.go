package load

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Player is what rtspload needs of a reader, whichever client plays.
type Player interface {
	ReaderID() int
	UserName() string
	Stats() ReaderStats
	TakeLatency() Histogram
	Receiving() bool
	FirstKeyframe() (time.Duration, bool)
	Done() <-chan struct{}
	Close()
}

// ReaderID and UserName make *Reader a Player.
func (r *Reader) ReaderID() int    { return r.ID }
func (r *Reader) UserName() string { return r.User }

// RawReader is a minimal RTSP reader: DESCRIBE/SETUP/PLAY over TCP with
// Digest (or Basic) authentication, then a zero-allocation loop over the
// interleaved frames. It costs a fraction of a gortsplib client per packet,
// so a load test measures the server rather than its clients. It reads the
// first video media only.
type RawReader struct {
	ID   int
	User string

	conn    net.Conn
	br      *bufio.Reader
	wmu     sync.Mutex // serialises requests (keepalives) on conn
	cseq    int
	auth    func(method, uri string) string
	done    chan struct{}
	cancel  context.CancelFunc
	haveSeq bool // the read loop alone uses these two
	lastSeq uint16

	meter
}

// rtspResponse is a parsed RTSP response head (and body).
type rtspResponse struct {
	status  int
	headers map[string]string // canonical lower-case names; last value wins
	body    []byte
}

// readRTSPResponse reads one response, skipping any interleaved frames
// that arrive first. It bounds header and body sizes.
func readRTSPResponse(br *bufio.Reader) (*rtspResponse, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '$' {
			break
		}
		h, err := br.Peek(4)
		if err != nil {
			return nil, err
		}
		if _, err := br.Discard(4 + int(binary.BigEndian.Uint16(h[2:]))); err != nil {
			return nil, err
		}
	}
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	res, err := parseStatusLine(line)
	if err != nil {
		return nil, err
	}
	for n := 0; ; n++ {
		if n > 100 {
			return nil, errors.New("rtsp: too many header lines")
		}
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("rtsp: malformed header line")
		}
		res.headers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if cl := res.headers["content-length"]; cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("rtsp: bad Content-Length %q", cl)
		}
		res.body = make([]byte, n)
		if _, err := io.ReadFull(br, res.body); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("rtsp: line too long")
		}
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func parseStatusLine(line string) (*rtspResponse, error) {
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || proto != "RTSP/1.0" {
		return nil, fmt.Errorf("rtsp: not a response: %.40q", line)
	}
	code, _, _ := strings.Cut(rest, " ")
	st, err := strconv.Atoi(code)
	if err != nil || st < 100 || st > 999 {
		return nil, fmt.Errorf("rtsp: bad status %.40q", line)
	}
	return &rtspResponse{status: st, headers: map[string]string{}}, nil
}

// digestParams parses the parameters of a WWW-Authenticate Digest challenge.
func digestParams(h string) (realm, nonce string, ok bool) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return "", "", false
	}
	for rest != "" {
		var kv string
		// Values are quoted and may hold commas.
		rest = strings.TrimLeft(rest, " ,")
		k, after, found := strings.Cut(rest, "=")
		if !found {
			break
		}
		k = strings.TrimSpace(k)
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return "", "", false
			}
			kv, rest = after[1:1+end], after[2+end:]
		} else {
			kv, rest, _ = strings.Cut(after, ",")
		}
		switch strings.ToLower(k) {
		case "realm":
			realm = kv
		case "nonce":
			nonce = kv
		}
	}
	return realm, nonce, nonce != ""
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// request sends one request and reads its response; a 401 with a Digest
// challenge is answered once.
func (r *RawReader) request(method, uri string, extra map[string]string, user, password string) (*rtspResponse, error) {
	for attempt := 0; ; attempt++ {
		r.cseq++
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: camwarden-rtspload\r\n", method, uri, r.cseq)
		for k, v := range extra {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
		if r.auth != nil {
			fmt.Fprintf(&b, "Authorization: %s\r\n", r.auth(method, uri))
		}
		b.WriteString("\r\n")
		if _, err := io.WriteString(r.conn, b.String()); err != nil {
			return nil, err
		}
		res, err := readRTSPResponse(r.br)
		if err != nil {
			return nil, err
		}
		if res.status == 401 && attempt == 0 && user != "" {
			realm, nonce, ok := digestParams(res.headers["www-authenticate"])
			if !ok {
				return nil, fmt.Errorf("%s: 401 without a Digest challenge", method)
			}
			ha1 := md5hex(user + ":" + realm + ":" + password)
			r.auth = func(method, uri string) string {
				resp := md5hex(ha1 + ":" + nonce + ":" + md5hex(method+":"+uri))
				return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`, user, realm, nonce, uri, resp)
			}
			continue
		}
		if res.status != 200 {
			return nil, fmt.Errorf("%s: status %d", method, res.status)
		}
		return res, nil
	}
}

// videoControl returns the control attribute of the first video media.
func videoControl(sdp []byte) (string, bool) {
	inVideo := false
	for _, line := range strings.Split(string(sdp), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "m=") {
			inVideo = strings.HasPrefix(line, "m=video ")
			continue
		}
		if inVideo {
			if c, ok := strings.CutPrefix(line, "a=control:"); ok {
				return c, true
			}
		}
	}
	return "", false
}

// StartRawReader connects, plays the first video media of cfg.Path over
// TCP and starts the read loop. ctx bounds the start only.
func StartRawReader(ctx context.Context, id int, cfg ReaderConfig) (*RawReader, error) {
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 64 << 10
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("reader %d: %w", id, err)
	}
	r := &RawReader{ID: id, User: cfg.User, conn: conn, br: bufio.NewReaderSize(conn, cfg.ReadBuffer), done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fail := func(step string, err error) (*RawReader, error) {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("reader %d: %s: %w", id, step, err)
	}
	_ = conn.SetDeadline(time.Now().Add(cfg.ReadTimeout))
	base := "rtsp://" + cfg.Addr + "/" + cfg.Path
	r.started = time.Now()
	res, err := r.request("DESCRIBE", base, map[string]string{"Accept": "application/sdp"}, cfg.User, cfg.Password)
	if err != nil {
		return fail("describe", err)
	}
	ctl, ok := videoControl(res.body)
	if !ok {
		return fail("describe", errors.New("no video media in the SDP"))
	}
	setupURL := ctl
	if !strings.HasPrefix(ctl, "rtsp://") {
		cb := res.headers["content-base"]
		if cb == "" {
			cb = base + "/"
		}
		if !strings.HasSuffix(cb, "/") {
			cb += "/"
		}
		setupURL = cb + ctl
	}
	res, err = r.request("SETUP", setupURL, map[string]string{"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}, cfg.User, cfg.Password)
	if err != nil {
		return fail("setup", err)
	}
	session, _, _ := strings.Cut(res.headers["session"], ";")
	if session == "" {
		return fail("setup", errors.New("no Session header"))
	}
	if _, err := r.request("PLAY", base+"/", map[string]string{"Session": session, "Range": "npt=0.000-"}, cfg.User, cfg.Password); err != nil {
		return fail("play", err)
	}
	_ = conn.SetDeadline(time.Time{})
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.keepalive(lctx, base+"/", session)
	go func() {
		err := r.readLoop(cfg.ReadTimeout)
		at := time.Now()
		cancel()
		r.mu.Lock()
		r.endedAt, r.err = at, err
		r.mu.Unlock()
		close(r.done)
		if cfg.OnClose != nil {
			cfg.OnClose(r.ID, r.User, at, err)
		}
	}()
	return r, nil
}

// keepalive sends OPTIONS now and then: the server's idle timeout counts
// only what the reader sends.
func (r *RawReader) keepalive(ctx context.Context, uri, session string) {
	t := time.NewTicker(20 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.wmu.Lock()
		r.cseq++
		req := fmt.Sprintf("OPTIONS %s RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n", uri, r.cseq, session)
		if r.auth != nil {
			req += "Authorization: " + r.auth("OPTIONS", uri) + "\r\n"
		}
		_, err := io.WriteString(r.conn, req+"\r\n")
		r.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// rtpInfo is what the read loop takes from an RTP packet.
type rtpInfo struct {
	seq     uint16
	marker  bool
	payload []byte
}

// parseRTP reads an RTP header in place; ok is false for anything that is
// not a version-2 packet with a consistent header.
func parseRTP(b []byte) (rtpInfo, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return rtpInfo{}, false
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < n+4 {
			return rtpInfo{}, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	if len(b) < n {
		return rtpInfo{}, false
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding
		pad := int(b[end-1])
		if pad == 0 || end-pad < n {
			return rtpInfo{}, false
		}
		end -= pad
	}
	return rtpInfo{seq: binary.BigEndian.Uint16(b[2:]), marker: b[1]&0x80 != 0, payload: b[n:end]}, true
}

func (r *RawReader) readLoop(timeout time.Duration) error {
	var deadlineSet time.Time
	for {
		now := time.Now()
		// Refreshing the deadline per packet would cost a runtime call each.
		if now.Sub(deadlineSet) > timeout/8 {
			_ = r.conn.SetReadDeadline(now.Add(timeout))
			deadlineSet = now
		}
		h, err := r.br.Peek(4)
		if err != nil {
			return err
		}
		if h[0] != '$' {
			// An RTSP message: a keepalive answer, or the server's request.
			if _, err := readRTSPResponse(r.br); err != nil {
				return err
			}
			continue
		}
		ch, n := h[1], int(binary.BigEndian.Uint16(h[2:]))
		frame, err := r.br.Peek(4 + n)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("interleaved frame of %d bytes exceeds the read buffer", n)
			}
			return err
		}
		if ch == 0 {
			if p, ok := parseRTP(frame[4:]); ok {
				// Peek may have waited for the rest of the frame.
				r.onPacket(p, time.Now())
			}
		}
		if _, err := r.br.Discard(4 + n); err != nil {
			return err
		}
	}
}

func (r *RawReader) onPacket(p rtpInfo, now time.Time) {
	gap, seen := p.seq-r.lastSeq-1, r.haveSeq
	r.haveSeq, r.lastSeq = true, p.seq
	r.record(gap, seen, p.payload, p.marker, now)
}

func (r *RawReader) ReaderID() int    { return r.ID }
func (r *RawReader) UserName() string { return r.User }

// Done is closed when the session has ended.
func (r *RawReader) Done() <-chan struct{} { return r.done }

// Close ends the session and waits for the read loop.
func (r *RawReader) Close() {
	r.conn.Close()
	<-r.done
}
