package stream

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/rtp"
)

// rawCam is a minimal hand-written RTSP camera (TCP interleaved only) for
// what gortsplib's server refuses to do: send RTP packets larger than 1472
// bytes, send garbage, or stall.
type rawCam struct {
	ln   net.Listener
	addr string
	sdp  string
	mode string // "big" (4000-byte packets), "garbage", "stall", "ssrc" (RTP session restarts), "spschange",
	// "wrongcodec" (announces H.264, sends RTP/JPEG), "junkpayload" (valid RTP, payloads of random bytes
	// after the 10th frame), "ptchange" (payload type 97 from the 10th frame on), "bigpcmu" (2000-byte
	// G.711 packets: give it an SDP with a PCMU track)
	sessions atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	closed   chan struct{}
	// auth (under mu): "" none, "basic", "digest", "both" (Basic offered
	// first, then Digest), "redirect <url>"; authz records every
	// Authorization header received.
	auth  string
	authz []string
}

func (c *rawCam) setAuth(mode string) {
	c.mu.Lock()
	c.auth = mode
	c.mu.Unlock()
}

// authorizations returns the Authorization headers received so far.
func (c *rawCam) authorizations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.authz...)
}

// dropConnections closes every open connection (the puller reconnects).
func (c *rawCam) dropConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// challenge answers a request without acceptable credentials: the 401 (or
// redirect) to send, or "" to serve the request.
func (c *rawCam) challenge(cseq string, hdr textproto.MIMEHeader) string {
	c.mu.Lock()
	mode := c.auth
	got := hdr.Get("Authorization")
	if got != "" {
		c.authz = append(c.authz, got)
	}
	c.mu.Unlock()
	basic := "WWW-Authenticate: Basic realm=\"raw\"\r\n"
	digest := "WWW-Authenticate: Digest realm=\"raw\", nonce=\"0123456789abcdef\"\r\n"
	var offer string
	switch {
	case mode == "":
		return ""
	case strings.HasPrefix(mode, "redirect "):
		return fmt.Sprintf("RTSP/1.0 302 Found\r\nCSeq: %s\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n", cseq, strings.TrimPrefix(mode, "redirect "))
	case mode == "basic":
		if strings.HasPrefix(got, "Basic ") {
			return ""
		}
		offer = basic
	case mode == "digest":
		if strings.HasPrefix(got, "Digest ") {
			return ""
		}
		offer = digest
	case mode == "both":
		if got != "" {
			return ""
		}
		offer = basic + digest
	}
	return fmt.Sprintf("RTSP/1.0 401 Unauthorized\r\nCSeq: %s\r\n%sContent-Length: 0\r\n\r\n", cseq, offer)
}

func startRawCam(t *testing.T, mode, sdp string) *rawCam {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &rawCam{ln: ln, addr: ln.Addr().String(), mode: mode, sdp: sdp, closed: make(chan struct{})}
	if c.sdp == "" {
		c.sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=raw\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\n" +
			"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=" +
			base64.StdEncoding.EncodeToString(testSPS) + "," + base64.StdEncoding.EncodeToString(testPPS) + "\r\n"
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			c.wg.Add(1)
			go func() { defer c.wg.Done(); c.serve(conn) }()
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *rawCam) close() {
	select {
	case <-c.closed:
		return
	default:
	}
	close(c.closed)
	c.ln.Close()
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *rawCam) url() string { return "rtsp://" + c.addr + "/raw" }

func (c *rawCam) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	tp := textproto.NewReader(br)
	var wmu sync.Mutex
	write := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := conn.Write(b)
		return err
	}
	playing := false
	for {
		// Skip interleaved RTCP from the client.
		if b, err := br.Peek(1); err == nil && b[0] == '$' {
			hdr := make([]byte, 4)
			if _, err := br.Read(hdr[:4]); err != nil {
				return
			}
			n := int(hdr[2])<<8 | int(hdr[3])
			if _, err := br.Discard(n); err != nil {
				return
			}
			continue
		}
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		hdr, err := tp.ReadMIMEHeader()
		if err != nil {
			return
		}
		method := strings.Fields(line)[0]
		cseq := hdr.Get("Cseq")
		if method != "OPTIONS" {
			if ch := c.challenge(cseq, hdr); ch != "" {
				if err := write([]byte(ch)); err != nil {
					return
				}
				continue
			}
		}
		var extra, body string
		switch method {
		case "DESCRIBE":
			extra = "Content-Type: application/sdp\r\nContent-Base: " + c.url() + "/\r\n"
			body = c.sdp
		case "SETUP":
			extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678\r\n"
		case "PLAY":
			extra = "Session: 12345678\r\n"
		}
		resp := fmt.Sprintf("RTSP/1.0 200 OK\r\nCSeq: %s\r\n%sContent-Length: %d\r\n\r\n%s", cseq, extra, len(body), body)
		if err := write([]byte(resp)); err != nil {
			return
		}
		if method == "PLAY" && !playing {
			playing = true
			c.sessions.Add(1)
			go c.play(write)
		}
	}
}

func (c *rawCam) play(write func([]byte) error) {
	size := 4000
	switch c.mode {
	case "ssrc", "spschange", "wrongcodec", "ptchange", "junkpayload":
		size = 1400
	}
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: size, PacketizationMode: 1}
	_ = enc.Init()
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	ts := uint32(0)
	for n := 0; ; n++ {
		select {
		case <-c.closed:
			return
		case <-tick.C:
		}
		switch c.mode {
		case "stall":
			if n > 10 {
				continue // the camera keeps the connection open and sends nothing
			}
		case "garbage":
			if n > 10 {
				_ = write([]byte("$\x00\x00\x05garbage that is not RTP at all \x00\xff"))
				continue
			}
		case "bigpcmu":
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(n), Timestamp: uint32(n * 2000), SSRC: 7, Marker: true}, Payload: fill(0x55, 2000, n)}
			if err := write(interleave(p)); err != nil {
				return
			}
			continue
		case "junkpayload":
			if n > 10 {
				junk := []byte{0xff, 0xd8, 0x13, 0x37, 0x00, 0x42}
				p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(n), Timestamp: ts, SSRC: 7, Marker: true}, Payload: junk}
				if err := write(interleave(p)); err != nil {
					return
				}
				ts += 3600
				continue
			}
		case "wrongcodec":
			// An RFC 2435 JPEG header (type-specific 0, offset 0, type 1, Q 94, 320x240) and scan data.
			jpeg := append([]byte{0, 0, 0, 0, 1, 94, 40, 30}, fill(0x11, 900, n)...)
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(n), Timestamp: ts, SSRC: 7, Marker: true}, Payload: jpeg}
			if err := write(interleave(p)); err != nil {
				return
			}
			ts += 3600
			continue
		}
		var au [][]byte
		sps := testSPS
		if c.mode == "spschange" && n >= 10 {
			sps = testSPS720 // the camera switched resolution in-band
		}
		if n%10 == 0 {
			au = [][]byte{sps, testPPS, fill(0x65, 9000, n)}
		} else {
			au = [][]byte{fill(0x41, 3500, n)}
		}
		if c.mode == "ssrc" && n%10 == 0 && n > 0 {
			// The camera restarts its RTP session: new SSRC, sequence and timestamp.
			ssrc, seq := uint32(n*7919+1), uint16(n*4099)
			enc = &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: 1400, PacketizationMode: 1, SSRC: &ssrc, InitialSequenceNumber: &seq}
			_ = enc.Init()
			ts = uint32(n) * 1234567
		}
		pkts, _ := enc.Encode(au)
		for _, p := range pkts {
			p.Timestamp = ts
			if c.mode == "ptchange" && n >= 10 {
				p.PayloadType = 97 // the camera switched codec without a new SDP
			}
			if err := write(interleave(p)); err != nil {
				return
			}
		}
		ts += 3600
	}
}

func interleave(p *rtp.Packet) []byte {
	b, _ := p.Marshal()
	out := append([]byte{'$', 0, byte(len(b) >> 8), byte(len(b))}, b...)
	return out
}
