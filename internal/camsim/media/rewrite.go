package media

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The faults BadSDP, Oversized and ChangeSSRCAfter are things gortsplib's server will not do, so
// they are applied to the bytes it writes: every accepted TCP connection is a rewriteConn that
// parses the outgoing RTSP byte stream (responses and $-interleaved frames) and edits it, and the
// UDP sockets are rewritePacketConns that edit RTP/RTCP headers.

// badSDP is well-formed RTSP content that no SDP parser accepts: the m= line has no port.
const badSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camsim\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=video RTP/AVP\r\na=rtpmap:96 H264/90000\r\n"

// ssrcXOR turns an SSRC into the "changed" one.
const ssrcXOR = 0x5a5a5a5a

type rewriteListener struct {
	net.Listener
	faults func() *Faults
}

func (l *rewriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &rewriteConn{Conn: c, faults: l.faults, chans: map[byte]*chanState{}}, nil
}

// rewriteConn is written to by the gortsplib connection and session goroutines; mu serialises them.
type rewriteConn struct {
	net.Conn
	faults func() *Faults

	mu       sync.Mutex
	pending  []byte // an incomplete message carried to the next Write
	firstRTP time.Time
	chans    map[byte]*chanState
}

// chanState is per interleaved RTP channel: the sequence-number shift caused by merging FU-A
// fragments and the fragments of the NAL unit being merged.
type chanState struct {
	seqShift uint16
	frags    [][]byte // the raw RTP packets of the FU-A being merged
	nal      []byte
}

func (c *rewriteConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := p
	if len(c.pending) > 0 {
		data = append(c.pending, p...)
		c.pending = nil
	}
	f := c.faults()
	out := make([]byte, 0, len(data)+64)
	for len(data) > 0 {
		n := messageLen(data)
		if n == 0 { // incomplete: wait for the rest
			c.pending = append([]byte(nil), data...)
			break
		}
		msg := data[:n]
		data = data[n:]
		if msg[0] == '$' {
			out = c.frame(out, msg, f)
		} else {
			out = rewriteRTSP(out, msg, f)
		}
	}
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// messageLen returns the length of the first complete message in b, or 0 if it is incomplete.
func messageLen(b []byte) int {
	if b[0] == '$' {
		if len(b) < 4 {
			return 0
		}
		n := 4 + int(binary.BigEndian.Uint16(b[2:4]))
		if len(b) < n {
			return 0
		}
		return n
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0
	}
	n := end + 4 + contentLength(b[:end])
	if len(b) < n {
		return 0
	}
	return n
}

func contentLength(head []byte) int {
	for _, line := range strings.Split(string(head), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil && n >= 0 {
				return n
			}
		}
	}
	return 0
}

// rewriteRTSP replaces the SDP of a successful DESCRIBE response when BadSDP is on.
func rewriteRTSP(out, msg []byte, f *Faults) []byte {
	if !f.BadSDP || !bytes.HasPrefix(msg, []byte("RTSP/1.0 200")) {
		return append(out, msg...)
	}
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	head := string(msg[:end])
	if !strings.Contains(strings.ToLower(head), "application/sdp") {
		return append(out, msg...)
	}
	var lines []string
	for _, line := range strings.Split(head, "\r\n") {
		k, _, _ := strings.Cut(line, ":")
		if strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			line = "Content-Length: " + strconv.Itoa(len(badSDP))
		}
		lines = append(lines, line)
	}
	out = append(out, strings.Join(lines, "\r\n")...)
	out = append(out, "\r\n\r\n"...)
	return append(out, badSDP...)
}

func (c *rewriteConn) frame(out, msg []byte, f *Faults) []byte {
	ch := msg[1]
	pkt := msg[4:]
	if ch%2 == 1 { // RTCP
		if c.ssrcChanged(f) && len(pkt) >= 8 && pkt[1] == 200 { // sender report
			msg = bytes.Clone(msg)
			xorSSRC(msg[4+4:])
		}
		return append(out, msg...)
	}
	if c.firstRTP.IsZero() {
		c.firstRTP = time.Now()
	}
	hl := rtpHeaderLen(pkt)
	if hl == 0 {
		return append(out, msg...)
	}
	st := c.chans[ch]
	if st == nil {
		st = &chanState{}
		c.chans[ch] = st
	}
	emit := func(out, raw []byte) []byte {
		start := len(out)
		out = append(out, raw...)
		r := out[start+4:]
		seq := binary.BigEndian.Uint16(r[2:4]) - st.seqShift
		binary.BigEndian.PutUint16(r[2:4], seq)
		if c.ssrcChanged(f) {
			xorSSRC(r[8:])
		}
		return out
	}
	payload := pkt[hl:]
	isFUA := len(payload) >= 2 && payload[0]&0x1f == 28
	switch {
	case isFUA && payload[1]&0x80 != 0 && f.Oversized: // first fragment: start merging
		out = flushFrags(out, st, emit)
		st.frags = append(st.frags, bytes.Clone(msg))
		st.nal = append(st.nal[:0], payload[0]&0xe0|payload[1]&0x1f)
		st.nal = append(st.nal, payload[2:]...)
		return out
	case isFUA && len(st.frags) > 0:
		st.frags = append(st.frags, bytes.Clone(msg))
		st.nal = append(st.nal, payload[2:]...)
		if hl+len(st.nal) > 65535 {
			return flushFrags(out, st, emit) // too big for one interleaved frame: send as is
		}
		if payload[1]&0x40 == 0 { // not the end fragment yet
			return out
		}
		// One packet with the whole NAL unit: the first fragment's sequence number, the last's header.
		first := st.frags[0][4:]
		merged := make([]byte, 0, 4+hl+len(st.nal))
		merged = append(merged, '$', ch, 0, 0)
		merged = append(merged, pkt[:hl]...)
		copy(merged[4+2:4+4], first[2:4])
		merged = append(merged, st.nal...)
		binary.BigEndian.PutUint16(merged[2:4], uint16(hl+len(st.nal)))
		out = emit(out, merged)
		st.seqShift += uint16(len(st.frags) - 1)
		st.frags, st.nal = st.frags[:0], st.nal[:0]
		return out
	default:
		out = flushFrags(out, st, emit)
		return emit(out, msg)
	}
}

// flushFrags sends fragments whose merge was abandoned, unchanged but for seq and SSRC rewriting.
func flushFrags(out []byte, st *chanState, emit func(out, raw []byte) []byte) []byte {
	for _, fr := range st.frags {
		out = emit(out, fr)
	}
	st.frags, st.nal = st.frags[:0], st.nal[:0]
	return out
}

func (c *rewriteConn) ssrcChanged(f *Faults) bool {
	return f.ChangeSSRCAfter > 0 && !c.firstRTP.IsZero() && time.Since(c.firstRTP) >= f.ChangeSSRCAfter
}

func xorSSRC(b []byte) {
	binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)^ssrcXOR)
}

// rtpHeaderLen returns the RTP header length (CSRCs and extension included), or 0 if invalid.
func rtpHeaderLen(b []byte) int {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return 0
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:n+4]))
	}
	if len(b) < n {
		return 0
	}
	return n
}

// rewritePacketConn applies ChangeSSRCAfter to UDP readers, timed from the first packet sent to
// each reader address.
type rewritePacketConn struct {
	*net.UDPConn // gortsplib needs SyscallConn and SetReadBuffer
	faults       func() *Faults
	rtcp         bool

	mu    sync.Mutex
	first map[string]time.Time // reader RTP address -> first packet time
	seen  map[string]time.Time // reader RTP address -> last packet time, for pruning
	prune time.Time
}

func newRewritePacketConn(pc *net.UDPConn, faults func() *Faults, rtcp bool) *rewritePacketConn {
	return &rewritePacketConn{UDPConn: pc, faults: faults, rtcp: rtcp,
		first: map[string]time.Time{}, seen: map[string]time.Time{}}
}

func (c *rewritePacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	f := c.faults()
	if f.ChangeSSRCAfter <= 0 {
		return c.UDPConn.WriteTo(p, addr)
	}
	key := addr.String()
	if ua, ok := addr.(*net.UDPAddr); ok && c.rtcp {
		// Key RTCP by the reader's RTP port so both switch together.
		key = (&net.UDPAddr{IP: ua.IP, Port: ua.Port - 1, Zone: ua.Zone}).String()
	}
	now := time.Now()
	c.mu.Lock()
	first, ok := c.first[key]
	if !ok {
		first = now
		c.first[key] = now
	}
	c.seen[key] = now
	if now.Sub(c.prune) > time.Minute {
		c.prune = now
		for k, t := range c.seen {
			if now.Sub(t) > time.Minute {
				delete(c.seen, k)
				delete(c.first, k)
			}
		}
	}
	c.mu.Unlock()
	if now.Sub(first) < f.ChangeSSRCAfter {
		return c.UDPConn.WriteTo(p, addr)
	}
	q := bytes.Clone(p)
	switch {
	case !c.rtcp && rtpHeaderLen(q) > 0:
		xorSSRC(q[8:])
	case c.rtcp && len(q) >= 8 && q[1] == 200:
		xorSSRC(q[4:])
	}
	return c.UDPConn.WriteTo(q, addr)
}
