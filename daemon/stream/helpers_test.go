package stream

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/hashicorp/go-hclog"
	"github.com/pion/rtp"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/internal/testutil"
)

// 1920x1080 baseline SPS (from gortsplib's tests).
var testSPS = []byte{
	0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02,
	0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04,
	0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9,
	0x20,
}

// 1280x720 high-profile SPS (from mediacommon's tests).
var testSPS720 = []byte{
	0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
	0x05, 0xbb, 0x01, 0x6c, 0x80, 0x00, 0x00, 0x03,
	0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8c, 0x18,
	0xcb,
}

var testPPS = []byte{0x68, 0xce, 0x3c, 0x80}

const camPassword = "p@ss:w/o%rd #1 ?x"

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuf is a goroutine-safe log sink.
type syncBuf = testutil.SyncBuffer

// testAuth is the daemon's Authenticator reduced to a map.
type testAuth struct {
	mu    sync.Mutex
	users map[string]string
	vers  map[string]uint64
}

func (a *testAuth) VerifyBasic(user, password string) (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.users[user]
	return a.vers[user], ok && p == password
}

func (a *testAuth) CachedBasic(string, string) (uint64, bool) { return 0, false }

func (a *testAuth) DigestSecret(user string) (string, uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.users[user]
	return p, a.vers[user], ok
}

type rig struct {
	t      *testing.T
	srv    *Server
	logs   *syncBuf
	auth   *testAuth
	policy atomic.Pointer[access.Policy]
	addr   string
}

func mustPolicy(t *testing.T, users []string, grants ...access.Grant) *access.Policy {
	t.Helper()
	var us []access.User
	for _, u := range users {
		us = append(us, access.User{Name: u, CredentialVersion: 1})
	}
	p, err := access.New(us, nil, grants)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readGrant(user, pattern string) access.Grant {
	return access.Grant{Subject: user, Action: access.ActionRead, Pattern: pattern}
}

// newRig starts a Server on 127.0.0.1 with users alice (read *), bob (read
// cam1/*), pub (publish pub/*), all with version 1.
func newRig(t *testing.T, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{t: t, logs: &syncBuf{}}
	r.auth = &testAuth{
		users: map[string]string{"alice": "alicepw", "bob": "bob pw:@/", "pub": "pubpw"},
		vers:  map[string]uint64{"alice": 1, "bob": 1, "pub": 1},
	}
	r.policy.Store(mustPolicy(t, []string{"alice", "bob", "pub"},
		readGrant("alice", "*"), readGrant("bob", "cam1/*"),
		access.Grant{Subject: "pub", Action: access.ActionPublish, Pattern: "pub/*"},
		readGrant("pub", "pub/*")))
	cfg := Config{
		RTSPAddress:          "127.0.0.1:0",
		Logger:               hclog.New(&hclog.LoggerOptions{Output: r.logs, Level: hclog.Debug}),
		Auth:                 r.auth,
		Policy:               r.policy.Load,
		BackoffMin:           100 * time.Millisecond,
		BackoffMax:           400 * time.Millisecond,
		HealthyAfter:         time.Second,
		OnDemandStartTimeout: 5 * time.Second,
		OnDemandCloseAfter:   300 * time.Millisecond,
		StalledReaderTimeout: time.Second,
		ReadTimeout:          2 * time.Second,
		WriteTimeout:         5 * time.Second,
		// These tests send Basic over plain RTSP on purpose (the fair
		// argon2 queue, the throttle, passwords holding ':'); the default,
		// Basic over TLS only, has its own tests (external_test.go).
		BasicAuth: func() string { return BasicAlways },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r.srv = s
	r.addr = s.Addr().String()
	return r
}

func (r *rig) url(user, pass, p string) string {
	return "rtsp://" + user + ":" + pass + "@" + r.addr + "/" + p
}

// assertNoSecret fails if any secret shows up in the logs or in Streams().
func (r *rig) assertNoSecret(secrets ...string) {
	r.t.Helper()
	var sb strings.Builder
	for _, st := range r.srv.Streams() {
		sb.WriteString(st.URL + " " + st.LastError + " ")
	}
	for _, sec := range secrets {
		for _, form := range secretForms(sec) {
			if strings.Contains(r.logs.String(), form) {
				r.t.Errorf("secret %q leaked into logs", form)
			}
			if strings.Contains(sb.String(), form) {
				r.t.Errorf("secret %q leaked into Streams()", form)
			}
		}
	}
}

func (r *rig) status(p string) StreamStatus {
	for _, st := range r.srv.Streams() {
		if st.Path == p {
			return st
		}
	}
	return StreamStatus{}
}

// ---- test camera: gortsplib server with Digest auth and synthetic H.264 ----

type camOpts struct {
	addr       string // "" = 127.0.0.1:0
	user, pass string
	mode0      bool          // H.264 packetization-mode 0 (TCP-only camera)
	udp        bool          // offer UDP too
	frameEvery time.Duration // default 40 ms
	idrSize    int           // bytes of the IDR slice (default 3000)
	sliceSize  int           // bytes of other slices (default 800)
	gop        int           // frames per GOP (default 10)
	audio      bool          // add a G.711 and an AAC track
}

type testCam struct {
	t        *testing.T
	opts     camOpts
	srv      *gortsplib.Server
	stream   *gortsplib.ServerStream
	media    *description.Media
	audio    *description.Media
	addr     string
	sessions atomic.Int32 // sessions ever opened
	active   atomic.Int32 // sessions open now
	conns    atomic.Int32 // connections open now
	frames   atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

type camHandler struct{ c *testCam }

func (h camHandler) OnConnOpen(*gortsplib.ServerHandlerOnConnOpenCtx)   { h.c.conns.Add(1) }
func (h camHandler) OnConnClose(*gortsplib.ServerHandlerOnConnCloseCtx) { h.c.conns.Add(-1) }
func (h camHandler) OnSessionOpen(*gortsplib.ServerHandlerOnSessionOpenCtx) {
	h.c.sessions.Add(1)
	h.c.active.Add(1)
}
func (h camHandler) OnSessionClose(*gortsplib.ServerHandlerOnSessionCloseCtx) { h.c.active.Add(-1) }

func (h camHandler) check(c *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if h.c.opts.user == "" {
		return nil, nil
	}
	if !c.VerifyCredentials(req, h.c.opts.user, h.c.opts.pass) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	return nil, nil
}

func (h camHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := h.check(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, h.c.stream, nil
}

func (h camHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := h.check(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, h.c.stream, nil
}

func (h camHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func startCam(t *testing.T, o camOpts) *testCam {
	t.Helper()
	if o.addr == "" {
		o.addr = "127.0.0.1:0"
	}
	if o.frameEvery == 0 {
		o.frameEvery = 40 * time.Millisecond
	}
	if o.idrSize == 0 {
		o.idrSize = 3000
	}
	if o.sliceSize == 0 {
		o.sliceSize = 800
	}
	if o.gop == 0 {
		o.gop = 10
	}
	c := &testCam{t: t, opts: o, stop: make(chan struct{}), done: make(chan struct{})}
	c.srv = &gortsplib.Server{Handler: camHandler{c}, RTSPAddress: o.addr}
	if o.udp {
		c.srv.UDPRTPAddress, c.srv.UDPRTCPAddress = freeUDPPair(t)
	}
	if err := c.srv.Start(); err != nil {
		t.Fatalf("camera start: %v", err)
	}
	c.addr = c.srv.NetListener().Addr().String()
	mode := 1
	if o.mode0 {
		mode = 0
	}
	c.media = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{
		PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: mode,
	}}}
	medias := []*description.Media{c.media}
	if o.audio {
		c.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 8, MULaw: false, SampleRate: 8000, ChannelCount: 1}}}
		aac := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.MPEG4Audio{
			PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
			Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 1},
		}}}
		medias = append(medias, c.audio, aac)
	}
	c.stream = &gortsplib.ServerStream{Server: c.srv, Desc: &description.Session{Medias: medias}}
	if err := c.stream.Initialize(); err != nil {
		t.Fatalf("camera stream: %v", err)
	}
	go c.feed()
	t.Cleanup(c.close)
	return c
}

func (c *testCam) url(p string) string { return "rtsp://" + c.addr + "/" + p }

func (c *testCam) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	c.stream.Close()
	c.srv.Close()
}

func (c *testCam) feed() {
	defer close(c.done)
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: 1400, PacketizationMode: 1}
	_ = enc.Init()
	tick := time.NewTicker(c.opts.frameEvery)
	defer tick.Stop()
	ts := uint32(0)
	seq := uint16(1000)
	for n := 0; ; n++ {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		var au [][]byte
		if n%c.opts.gop == 0 {
			au = [][]byte{testSPS, testPPS, fill(0x65, c.opts.idrSize, n)}
		} else {
			au = [][]byte{fill(0x41, c.opts.sliceSize, n)}
		}
		var pkts []*rtp.Packet
		if c.opts.mode0 {
			for i, nalu := range au {
				seq++
				pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 42, Marker: i == len(au)-1}, Payload: nalu})
			}
		} else {
			var err error
			pkts, err = enc.Encode(au)
			if err != nil {
				panic(err)
			}
			for _, p := range pkts {
				p.Timestamp = ts
			}
		}
		for _, p := range pkts {
			_ = c.stream.WritePacketRTP(c.media, p)
		}
		if c.audio != nil {
			pcm := fill(0x55, 320, n)
			_ = c.stream.WritePacketRTP(c.audio, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: uint16(n), Timestamp: uint32(n * 320), Marker: true}, Payload: pcm})
		}
		c.frames.Add(1)
		ts += 3600
	}
}

func fill(hdr byte, n, seed int) []byte {
	b := make([]byte, n)
	b[0] = hdr
	for i := 1; i < n; i++ {
		b[i] = byte(i*7+seed) | 1 // never two zero bytes: no start codes inside
	}
	return b
}

// ---- test reader: gortsplib client that checks sequence continuity ----

type reader struct {
	c        *gortsplib.Client
	pkts     atomic.Int64
	gaps     atomic.Int64
	mu       sync.Mutex
	lastSeq  map[*description.Media]uint16
	lastTS   map[*description.Media]uint32
	tsJump   uint32 // largest forward timestamp step seen
	perMedia map[description.MediaType]int
	desc     *description.Session
	first    time.Time
	firstKey bool
	started  time.Time
}

func startReader(t *testing.T, rawURL string, proto gortsplib.Protocol) (*reader, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	r := &reader{lastSeq: map[*description.Media]uint16{}, lastTS: map[*description.Media]uint32{}, perMedia: map[description.MediaType]int{}, started: time.Now()}
	r.c = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto, ReadTimeout: 5 * time.Second}
	if err := r.c.Start(); err != nil {
		return nil, err
	}
	desc, _, err := r.c.Describe(u)
	if err != nil {
		r.c.Close()
		return nil, err
	}
	r.desc = desc
	if err := r.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		r.c.Close()
		return nil, err
	}
	r.c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		r.mu.Lock()
		if last, ok := r.lastSeq[m]; ok && pkt.SequenceNumber != last+1 {
			r.gaps.Add(1)
		}
		if r.first.IsZero() {
			r.first = time.Now()
			r.firstKey, _, _ = h264Scan(pkt.Payload)
		}
		r.lastSeq[m] = pkt.SequenceNumber
		if last, ok := r.lastTS[m]; ok {
			if d := pkt.Timestamp - last; d > r.tsJump {
				r.tsJump = d
			}
		}
		r.lastTS[m] = pkt.Timestamp
		r.perMedia[m.Type]++
		r.mu.Unlock()
		r.pkts.Add(1)
	})
	if _, err := r.c.Play(nil); err != nil {
		r.c.Close()
		return nil, err
	}
	t.Cleanup(r.c.Close)
	return r, nil
}

func mustReader(t *testing.T, rawURL string, proto gortsplib.Protocol) *reader {
	t.Helper()
	r, err := startReader(t, rawURL, proto)
	if err != nil {
		t.Fatalf("reader %s: %v", RedactURL(rawURL), err)
	}
	return r
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func camSpec(name, stream, url string, mod func(*StreamSpec)) CameraSpec {
	sp := StreamSpec{Name: stream, URL: url, Username: "camuser", Transport: "tcp", Revision: "1",
		Password: func(context.Context) (string, error) { return camPassword, nil }}
	if mod != nil {
		mod(&sp)
	}
	return CameraSpec{Name: name, Streams: []StreamSpec{sp}}
}
