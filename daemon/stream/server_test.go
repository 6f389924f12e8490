package stream

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/hashicorp/go-hclog"
)

// rawConn speaks RTSP by hand, to see exactly what a client sees.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	br   *bufio.Reader
	cseq int
}

func dialRaw(t *testing.T, addr string, rcvBuf int) *rawConn {
	t.Helper()
	return dialRawFrom(t, "", addr, rcvBuf)
}

// dialRawFrom connects from the loopback address local ("" = any): Linux
// routes all of 127.0.0.0/8 to lo, so tests can act as many addresses.
func dialRawFrom(t *testing.T, local, addr string, rcvBuf int) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

type rawResp struct {
	status int
	header map[string]string
	body   string
}

func (r *rawConn) do(method, url string, hdr map[string]string) (*rawResp, error) {
	return r.doBody(method, url, hdr, "")
}

func (r *rawConn) doBody(method, url string, hdr map[string]string, body string) (*rawResp, error) {
	r.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, r.cseq)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	_ = r.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return r.read()
}

func (r *rawConn) read() (*rawResp, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := r.br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	res := &rawResp{header: map[string]string{}}
	res.status, _ = strconv.Atoi(f[1])
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		res.header[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	if n, _ := strconv.Atoi(res.header["content-length"]); n > 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			return nil, err
		}
		res.body = string(buf)
	}
	return res, nil
}

// closed reports whether the server closed the connection.
func (r *rawConn) closed() bool {
	_ = r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := r.br.ReadByte()
	return err != nil
}

var regexpHex = regexp.MustCompile(`0x[0-9a-f]+`)

var nonceRe = regexp.MustCompile(`Digest realm="([^"]*)", nonce="([^"]*)"`)

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func digestHeader(challenge, method, uri, user, pass string) string {
	m := nonceRe.FindStringSubmatch(challenge)
	realm, nonce := m[1], m[2]
	resp := md5hex(md5hex(user+":"+realm+":"+pass) + ":" + nonce + ":" + md5hex(method+":"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`, user, realm, nonce, uri, resp)
}

// describeDigest does an unauthenticated DESCRIBE, then one with Digest
// credentials, and returns what the second looked like.
func describeDigest(t *testing.T, addr, p, user, pass string) (status int, headerNames []string, body string, closed bool) {
	t.Helper()
	rc := dialRaw(t, addr, 0)
	uri := "rtsp://" + addr + "/" + p
	res, err := rc.do("DESCRIBE", uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := res.header["www-authenticate"]
	if res.status != 401 || !strings.Contains(ch, `nonce="`) || strings.Contains(ch, `nonce=""`) {
		t.Fatalf("challenge = %d %q", res.status, ch)
	}
	res, err = rc.do("DESCRIBE", uri, map[string]string{"Authorization": digestHeader(ch, "DESCRIBE", uri, user, pass)})
	if err != nil {
		t.Fatal(err)
	}
	for k := range res.header {
		if k != "cseq" {
			headerNames = append(headerNames, k)
		}
	}
	sort.Strings(headerNames)
	return res.status, headerNames, res.body, rc.closed()
}

func TestRefusalsLookTheSame(t *testing.T) {
	cam1 := startCam(t, camOpts{user: "camuser", pass: camPassword})
	cam2 := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam1.url("live"), nil), camSpec("cam2", "main", cam2.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam2/main").State == StateLive })

	st, _, body, _ := describeDigest(t, r.addr, "cam1/main", "bob", "bob pw:@/")
	if st != 200 || !strings.Contains(body, "H264") {
		t.Fatalf("good Digest DESCRIBE = %d %q", st, body)
	}
	type look struct {
		status int
		names  string
		body   string
		closed bool
	}
	var looks []look
	for _, c := range []struct{ name, path, user, pass string }{
		{"wrong password", "cam1/main", "bob", "nope"},
		{"unknown user", "cam1/main", "mallory", "x"},
		{"unknown path", "cam9/main", "bob", "bob pw:@/"},
		{"forbidden path", "cam2/main", "bob", "bob pw:@/"},
		{"bad path", "cam1/../cam2/main", "bob", "bob pw:@/"},
	} {
		st, names, body, closed := describeDigest(t, r.addr, c.path, c.user, c.pass)
		l := look{st, strings.Join(names, ","), body, closed}
		if st != 401 || !closed {
			t.Errorf("%s: status %d closed %v", c.name, st, closed)
		}
		looks = append(looks, l)
	}
	for i := range looks {
		if looks[i] != looks[0] {
			t.Errorf("refusal %d looks different: %+v vs %+v", i, looks[i], looks[0])
		}
	}
}

func TestBasicAuthAndThrottle(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.ThrottleFailures = 3; c.ThrottleBase = 700 * time.Millisecond })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })

	basic := func(user, pass string) int {
		rc := dialRaw(t, r.addr, 0)
		res, err := rc.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", map[string]string{
			"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))})
		if err != nil {
			return -1 // refused: connection closed without a reply
		}
		return res.status
	}
	if st := basic("alice", "alicepw"); st != 200 {
		t.Fatalf("Basic with good password = %d", st)
	}
	for i := 0; i < 3; i++ {
		if st := basic("alice", "wrong"); st != 401 {
			t.Fatalf("wrong password %d = %d", i, st)
		}
	}
	// Now even the right password is refused, and refusals do not log each time.
	for i := 0; i < 5; i++ {
		if st := basic("alice", "alicepw"); st == 200 {
			t.Fatalf("throttled address got 200")
		}
	}
	if n := strings.Count(r.logs.String(), "refusing address"); n != 1 {
		t.Errorf("%d throttle log lines, want 1", n)
	}
	waitFor(t, 3*time.Second, "throttle release", func() bool { return basic("alice", "alicepw") == 200 })
}

func TestThrottleBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(2, time.Minute, time.Second, 100, hclog.NewNullLogger())
	th.now = func() time.Time { return now }
	for i := 0; i < 100000; i++ {
		th.fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	if n := th.size(); n > 100 {
		t.Fatalf("throttle holds %d entries, cap 100", n)
	}
	th.fail("192.0.2.1")
	th.fail("192.0.2.1")
	if !th.blocked("192.0.2.1") {
		t.Fatal("not blocked after 2 failures")
	}
	now = now.Add(1100 * time.Millisecond)
	if th.blocked("192.0.2.1") {
		t.Fatal("still blocked after the period")
	}
	th.fail("192.0.2.1")
	th.fail("192.0.2.1")
	now = now.Add(1100 * time.Millisecond)
	if !th.blocked("192.0.2.1") {
		t.Fatal("second period did not grow")
	}
	now = now.Add(time.Second)
	if th.blocked("192.0.2.1") {
		t.Fatal("second period longer than 2x")
	}
}

// playRaw does DESCRIBE/SETUP/PLAY over TCP interleaved with Basic auth and
// returns the connection without reading from it any more.
func playRaw(t *testing.T, addr, p, user, pass string, rcvBuf int) *rawConn {
	t.Helper()
	rc, sess := setupRaw(t, addr, p, user, pass, rcvBuf)
	auth := map[string]string{"Authorization": basicAuth(user, pass), "Session": sess}
	res, err := rc.do("PLAY", "rtsp://"+addr+"/"+p+"/", auth)
	if err != nil || res.status != 200 {
		t.Fatalf("PLAY %v %+v", err, res)
	}
	return rc
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// setupRaw does DESCRIBE/SETUP over TCP interleaved with Basic auth and
// returns the connection and the session id, before PLAY.
func setupRaw(t *testing.T, addr, p, user, pass string, rcvBuf int) (*rawConn, string) {
	t.Helper()
	rc := dialRaw(t, addr, rcvBuf)
	auth := map[string]string{"Authorization": basicAuth(user, pass)}
	url := "rtsp://" + addr + "/" + p
	res, err := rc.do("DESCRIBE", url, auth)
	if err != nil || res.status != 200 {
		t.Fatalf("DESCRIBE %v %+v", err, res)
	}
	ctl := regexp.MustCompile(`a=control:(\S+)`).FindAllStringSubmatch(res.body, -1)
	setupURL := url + "/"
	if len(ctl) > 0 {
		c := ctl[len(ctl)-1][1]
		if strings.HasPrefix(c, "rtsp://") {
			setupURL = c
		} else {
			setupURL = url + "/" + c
		}
	}
	h := map[string]string{"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
	for k, v := range auth {
		h[k] = v
	}
	res, err = rc.do("SETUP", setupURL, h)
	if err != nil || res.status != 200 {
		t.Fatalf("SETUP %v %+v", err, res)
	}
	sess, _, _ := strings.Cut(res.header["session"], ";")
	return rc, sess
}

func TestStalledReaderEvicted(t *testing.T) {
	// ~2000 packets/s of 1.4 kB: a reader that stops reading fills its
	// socket buffers and its queue within a couple of seconds.
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, frameEvery: 10 * time.Millisecond, idrSize: 30000, sliceSize: 25000})
	r := newRig(t, func(c *Config) { c.WriteQueueSize = 128; c.StalledReaderTimeout = time.Second })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	good := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	playRaw(t, r.addr, "cam1/main", "bob", "bob pw:@/", 4096) // PLAY, then never read again
	if n := len(r.srv.Sessions()); n != 2 {
		t.Fatalf("sessions = %d", n)
	}
	waitFor(t, 20*time.Second, "eviction", func() bool { return strings.Contains(r.logs.String(), "evicting reader that stopped reading") })
	waitFor(t, 3*time.Second, "session gone", func() bool { return len(r.srv.Sessions()) == 1 })
	if s := r.srv.Sessions()[0]; s.User != "alice" {
		t.Fatalf("wrong session evicted: %+v", s)
	}
	n := good.pkts.Load()
	waitFor(t, 2*time.Second, "good reader continues", func() bool { return good.pkts.Load() > n+100 })
	if g := good.gaps.Load(); g != 0 {
		t.Errorf("good reader lost packets: %d gaps in %d packets", g, good.pkts.Load())
	}
	if n := strings.Count(r.logs.String(), "evicting reader"); n != 1 {
		t.Errorf("%d eviction log lines", n)
	}
	t.Logf("good reader received %d packets without a gap", good.pkts.Load())
}

func TestMalformedInputNeverCrashes(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.ThrottleFailures = 1000 })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw")) + "\r\n"
	inputs := []string{
		"GARBAGE\r\n\r\n",
		"\x00\x01\x02\xff\xfe\r\n\r\n",
		"$\x00\xff\xffshort",
		"DESCRIBE rtsp://x/cam1/main RTSP/1.0\r\nCSeq: 1\r\nX: " + strings.Repeat("A", 1<<20) + "\r\n\r\n",
		"FOO rtsp://x/cam1/main RTSP/1.0\r\nCSeq: 1\r\n\r\n",
		"DESCRIBE rtsp://x/../../etc/passwd RTSP/1.0\r\nCSeq: 1\r\n" + basic + "\r\n",
		"DESCRIBE rtsp://x/cam1/main%00/.. RTSP/1.0\r\nCSeq: 1\r\n" + basic + "\r\n",
		"DESCRIBE rtsp://x/cam1/%2e%2e/main RTSP/1.0\r\nCSeq: 1\r\n" + basic + "\r\n",
		"DESCRIBE rtsp://x/\xff\xfe/main RTSP/1.0\r\nCSeq: 1\r\n" + basic + "\r\n",
		"SETUP rtsp://x/cam1/main/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n" + basic + "Transport: bogus;;;interleaved=9-\r\n\r\n",
		"SETUP rtsp://x/cam1/main/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n" + basic + "Transport: RTP/AVP;unicast;client_port=1-0\r\n\r\n",
		"PLAY rtsp://x/cam1/main RTSP/1.0\r\nCSeq: 1\r\nSession: nope\r\n" + basic + "\r\n",
		"DESCRIBE rtsp://x/cam1/main RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Digest username=\"\x00\", nonce=\r\n\r\n",
		"DESCRIBE rtsp://x/cam1/main RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic !!!\r\n\r\n",
		"DESCRIBE rtsp://x/cam1/main RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n",
	}
	for i, in := range inputs {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(in))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if n > 0 && strings.HasPrefix(string(buf[:n]), "RTSP/1.0 200") {
			t.Errorf("input %d answered 200: %q", i, buf[:n])
		}
		c.Close()
	}
	// Still serving.
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets", func() bool { return rd.pkts.Load() > 5 })
}

func TestPublish(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })

	media := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}}
	desc := &description.Session{Medias: []*description.Media{media}}
	publish := func(url string) (*gortsplib.Client, error) {
		c := &gortsplib.Client{Protocol: new(gortsplib.ProtocolTCP)}
		return c, c.StartRecording(url, desc)
	}
	// No publish grant, or a configured camera's path: refused.
	if c, err := publish(r.url("alice", "alicepw", "pub/live")); err == nil {
		c.Close()
		t.Fatal("alice published without a grant")
	}
	if c, err := publish(r.url("pub", "pubpw", "cam1/main")); err == nil {
		c.Close()
		t.Fatal("published over a configured camera")
	}
	c, err := publish(r.url("pub", "pubpw", "pub/live"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
		_ = enc.Init()
		ts := uint32(0)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			au := [][]byte{fill(0x41, 500, n)}
			if n%10 == 0 {
				au = [][]byte{testSPS, testPPS, fill(0x65, 2000, n)}
			}
			pkts, _ := enc.Encode(au)
			for _, p := range pkts {
				p.Timestamp = ts
				_ = c.WritePacketRTP(media, p)
			}
			ts += 1800
		}
	}()
	waitFor(t, 3*time.Second, "published path", func() bool { return r.status("pub/live").Published })
	rd := mustReader(t, r.url("alice", "alicepw", "pub/live"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "reader gets published packets", func() bool { return rd.pkts.Load() > 10 })
	var pubSess bool
	for _, s := range r.srv.Sessions() {
		if s.User == "pub" && s.Action == "publish" && s.Path == "pub/live" {
			pubSess = true
		}
	}
	if !pubSess {
		t.Errorf("publisher session not listed: %+v", r.srv.Sessions())
	}
	c.Close()
	waitFor(t, 3*time.Second, "path gone with its publisher", func() bool { return r.status("pub/live").Path == "" })
}

// TestSilentConnectionsAreClosed: a client that connects and never sends a
// byte is dropped after the read timeout (gortsplib's first read has no
// deadline of its own).
func TestSilentConnectionsAreClosed(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	conns := make([]net.Conn, 20)
	for i := range conns {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d not closed by the server: %v", i, err)
		}
	}
}
