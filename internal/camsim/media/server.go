// Package media is the media half of camsim: a synthetic H.264 camera served over RTSP
// (gortsplib v5), with Digest/Basic auth, realistic bitrate and packet bursts, a latency-probe SEI
// in every access unit, and fault switches that can be flipped while readers are connected.
package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/hashicorp/go-hclog"
)

// Profile is one stream of the camera, served at rtsp://HOST:PORT/<Name>.
type Profile struct {
	Name          string
	Width, Height int
	FPS           int
	BitrateKbps   int           // frames are padded with filler data up to this; 0 = no padding
	GOP           time.Duration // keyframe interval; 0 = 2 s
	// PacketizationMode0 sends single-NAL-unit packets only (SDP packetization-mode=0). Pictures
	// are then cut into slices that fit one packet. Such streams cannot be served over UDP by
	// gortsplib, so a server with such a profile is TCP-only.
	PacketizationMode0 bool
}

// DefaultProfiles returns the profiles of a typical camera: main 1920x1080@25 4000 kbit/s and
// sub 640x360@25 500 kbit/s, both with a 2 s GOP.
func DefaultProfiles() []Profile {
	return []Profile{
		{Name: "main", Width: 1920, Height: 1080, FPS: 25, BitrateKbps: 4000, GOP: 2 * time.Second},
		{Name: "sub", Width: 640, Height: 360, FPS: 25, BitrateKbps: 500, GOP: 2 * time.Second},
	}
}

// Faults are misbehaviours that can be switched on and off while the server runs.
type Faults struct {
	// DropAfter closes every reader session this long after its PLAY (0 = never).
	DropAfter time.Duration
	// Stall stops sending RTP packets; sessions stay open. The first picture after a stall is an IDR.
	Stall bool
	// BadSDP makes DESCRIBE answer 200 with a body that is not valid SDP (a broken m= line).
	BadSDP bool
	// Oversized sends every H.264 NAL unit in one RTP packet (no FU-A), so packets exceed 1472
	// bytes. TCP readers only.
	Oversized bool
	// ChangeSSRCAfter switches the SSRC of a reader's packets this long after its first packet
	// (0 = never).
	ChangeSSRCAfter time.Duration
}

// Config configures a Server.
type Config struct {
	Addr               string // TCP listen address; default 127.0.0.1:0
	Username, Password string // empty Username: no authentication
	Profiles           []Profile
	Logger             hclog.Logger
	DisableUDP         bool
	// MaxSessions caps concurrent reader sessions, as recorders do: a SETUP
	// of a further session is answered 453 Not Enough Bandwidth. 0 = no cap.
	MaxSessions int
}

// Server is one simulated camera's RTSP endpoint.
type Server struct {
	cfg    Config
	log    hclog.Logger
	faults atomic.Pointer[Faults]

	mu     sync.Mutex // guards inst and closed; held across start and stop of an instance
	inst   *instance
	closed bool
}

var profileNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// NewServer validates cfg and returns a Server that is not yet listening.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if len(cfg.Profiles) == 0 {
		cfg.Profiles = DefaultProfiles()
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, errors.New("camsim media: a password needs a username")
	}
	cfg.Profiles = append([]Profile(nil), cfg.Profiles...)
	seen := map[string]bool{}
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		if !profileNameRE.MatchString(p.Name) {
			return nil, fmt.Errorf("camsim media: profile name %q: use [a-z0-9_-]", p.Name)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("camsim media: duplicate profile %q", p.Name)
		}
		seen[p.Name] = true
		if p.GOP == 0 {
			p.GOP = 2 * time.Second
		}
		if p.GOP < 0 || p.BitrateKbps < 0 {
			return nil, fmt.Errorf("camsim media: profile %q: negative GOP or bitrate", p.Name)
		}
		if _, err := newH264Encoder(p.Width, p.Height, p.FPS, p.BitrateKbps, 0); err != nil {
			return nil, fmt.Errorf("camsim media: profile %q: %w", p.Name, err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("media")}
	s.faults.Store(&Faults{})
	return s, nil
}

// Start binds the listeners and starts one frame generator per profile. ctx bounds the start-up
// only; the server runs until Close.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("camsim media: server closed")
	}
	if s.inst != nil {
		return errors.New("camsim media: server already started")
	}
	inst, err := s.startInstance(ctx, s.cfg.Addr)
	if err != nil {
		return err
	}
	s.inst = inst
	return nil
}

// Restart stops the server (dropping every reader) and starts it again on addr ("" keeps the
// configured address; a port of 0 picks a new one).
func (s *Server) Restart(ctx context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("camsim media: server closed")
	}
	if addr == "" {
		addr = s.cfg.Addr
	}
	if s.inst != nil {
		s.inst.close()
		s.inst = nil
	}
	inst, err := s.startInstance(ctx, addr)
	if err != nil {
		return err
	}
	s.inst = inst
	return nil
}

// Close stops the server. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.inst != nil {
		s.inst.close()
		s.inst = nil
	}
	return nil
}

func (s *Server) current() *instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inst
}

// Addr is the bound RTSP (TCP) address, or nil when not running.
func (s *Server) Addr() net.Addr {
	if in := s.current(); in != nil {
		return in.ln.Addr()
	}
	return nil
}

// URL returns rtsp://HOST:PORT/<profile>; it never contains credentials.
func (s *Server) URL(profile string) string {
	a := s.Addr()
	if a == nil {
		return ""
	}
	return "rtsp://" + a.String() + "/" + profile
}

// SetFaults replaces the active faults; safe from any goroutine while readers are connected.
func (s *Server) SetFaults(f Faults) {
	s.faults.Store(&f)
	s.log.Info("faults set", "drop_after", f.DropAfter, "stall", f.Stall, "bad_sdp", f.BadSDP,
		"oversized", f.Oversized, "change_ssrc_after", f.ChangeSSRCAfter)
}

func (s *Server) currentFaults() *Faults { return s.faults.Load() }

// Sessions is the number of open RTSP sessions (readers that got as far as SETUP).
func (s *Server) Sessions() int {
	if in := s.current(); in != nil {
		return int(in.sessions.Load())
	}
	return 0
}

// instance is one run of the server between Start/Restart and Close/Restart.
type instance struct {
	s        *Server
	rtsp     *gortsplib.Server
	ln       net.Listener
	streams  map[string]*profileStream // read-only after start
	sessions atomic.Int64

	playMu sync.Mutex
	playAt map[*gortsplib.ServerSession]time.Time

	admitMu  sync.Mutex
	admitted map[*gortsplib.ServerSession]struct{} // sessions counted against MaxSessions

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type profileStream struct {
	p      Profile
	stream *gortsplib.ServerStream
	media  *description.Media
	h264   *h264Encoder
}

func (s *Server) startInstance(ctx context.Context, addr string) (*instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("camsim media: listen on %s: %w", addr, err)
	}
	in := &instance{s: s, ln: ln, streams: map[string]*profileStream{},
		playAt: map[*gortsplib.ServerSession]time.Time{}, admitted: map[*gortsplib.ServerSession]struct{}{}}

	udp := !s.cfg.DisableUDP
	for _, p := range s.cfg.Profiles {
		if p.PacketizationMode0 && udp {
			// gortsplib refuses packetization-mode=0 streams on servers with UDP.
			s.log.Info("profile uses packetization-mode=0: serving TCP only", "profile", p.Name)
			udp = false
		}
	}
	var rtpPC, rtcpPC net.PacketConn
	if udp {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		rtpPC, rtcpPC, err = listenUDPPair(ctx, host)
		if err != nil {
			ln.Close()
			return nil, err
		}
	}

	in.rtsp = &gortsplib.Server{
		Handler:     &handler{in: in},
		RTSPAddress: ln.Addr().String(),
		Listen: func(string, string) (net.Listener, error) {
			return &rewriteListener{Listener: ln, faults: s.currentFaults}, nil
		},
	}
	if udp {
		in.rtsp.UDPRTPAddress = rtpPC.LocalAddr().String()
		in.rtsp.UDPRTCPAddress = rtcpPC.LocalAddr().String()
		in.rtsp.ListenPacket = func(_, address string) (net.PacketConn, error) {
			switch address {
			case rtpPC.LocalAddr().String():
				return newRewritePacketConn(rtpPC.(*net.UDPConn), s.currentFaults, false), nil
			case rtcpPC.LocalAddr().String():
				return newRewritePacketConn(rtcpPC.(*net.UDPConn), s.currentFaults, true), nil
			}
			return nil, fmt.Errorf("camsim media: unexpected UDP listen on %s", address)
		}
	}
	if err := in.rtsp.Start(); err != nil {
		ln.Close()
		if udp {
			rtpPC.Close()
			rtcpPC.Close()
		}
		return nil, fmt.Errorf("camsim media: start RTSP server: %w", err)
	}

	for _, p := range s.cfg.Profiles {
		ps, err := in.newProfileStream(p)
		if err != nil {
			in.closeStreams()
			in.rtsp.Close()
			return nil, err
		}
		in.streams[p.Name] = ps
	}

	gctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	for _, ps := range in.streams {
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			in.generate(gctx, ps)
		}()
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.dropper(gctx)
	}()
	s.log.Info("rtsp camera listening", "addr", ln.Addr().String(), "udp", udp,
		"auth", s.cfg.Username != "")
	return in, nil
}

// listenUDPPair binds an even RTP port and the next odd RTCP port, as gortsplib requires.
func listenUDPPair(ctx context.Context, host string) (net.PacketConn, net.PacketConn, error) {
	var lc net.ListenConfig
	for range 100 {
		rtp, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("camsim media: listen UDP: %w", err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 {
			rtcp, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, strconv.Itoa(port+1)))
			if err == nil {
				return rtp, rtcp, nil
			}
		}
		rtp.Close()
	}
	return nil, nil, errors.New("camsim media: found no free UDP port pair for RTP/RTCP")
}

func (in *instance) newProfileStream(p Profile) (*profileStream, error) {
	maxSlice := 0
	if p.PacketizationMode0 {
		maxSlice = maxPayload
	}
	enc, err := newH264Encoder(p.Width, p.Height, p.FPS, p.BitrateKbps, maxSlice)
	if err != nil {
		return nil, err
	}
	mode := 1
	if p.PacketizationMode0 {
		mode = 0
	}
	forma := &format.H264{PayloadTyp: 96, SPS: enc.sps, PPS: enc.pps, PacketizationMode: mode}
	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	st := &gortsplib.ServerStream{
		Server: in.rtsp,
		Desc:   &description.Session{Medias: []*description.Media{medi}},
	}
	if err := st.Initialize(); err != nil {
		return nil, fmt.Errorf("camsim media: profile %q: %w", p.Name, err)
	}
	return &profileStream{p: p, stream: st, media: medi, h264: enc}, nil
}

func (in *instance) closeStreams() {
	for _, ps := range in.streams {
		ps.stream.Close()
	}
}

func (in *instance) close() {
	if in.cancel != nil {
		in.cancel()
	}
	in.wg.Wait()
	in.closeStreams()
	in.rtsp.Close()
	in.s.log.Info("rtsp camera stopped", "addr", in.ln.Addr().String())
}

// dropper closes sessions whose DropAfter has elapsed; it re-reads the faults every tick so the
// switch applies to sessions that were already playing.
func (in *instance) dropper(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := in.s.currentFaults().DropAfter
		if d <= 0 {
			continue
		}
		now := time.Now()
		in.playMu.Lock()
		for ss, at := range in.playAt {
			if now.Sub(at) >= d {
				delete(in.playAt, ss)
				in.s.log.Info("fault: dropping reader session", "path", ss.Path())
				ss.Close()
			}
		}
		in.playMu.Unlock()
	}
}

func (in *instance) lookup(path string) *profileStream {
	name := strings.Trim(path, "/")
	return in.streams[name]
}

type handler struct{ in *instance }

func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.in.s.log.Debug("conn opened", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.in.s.log.Debug("conn closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "error", ctx.Error)
}

func (h *handler) OnSessionOpen(_ *gortsplib.ServerHandlerOnSessionOpenCtx) {
	h.in.sessions.Add(1)
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.in.sessions.Add(-1)
	h.in.playMu.Lock()
	delete(h.in.playAt, ctx.Session)
	h.in.playMu.Unlock()
	h.in.admitMu.Lock()
	delete(h.in.admitted, ctx.Session)
	h.in.admitMu.Unlock()
	h.in.s.log.Debug("session closed", "path", ctx.Session.Path(), "error", ctx.Error)
}

// authorize checks the reader's credentials. It must run in DESCRIBE and in SETUP: gortsplib only
// creates the Digest nonce inside VerifyCredentials.
func (h *handler) authorize(c *gortsplib.ServerConn, req *base.Request) bool {
	cfg := h.in.s.cfg
	if cfg.Username == "" {
		return true
	}
	if c.VerifyCredentials(req, cfg.Username, cfg.Password) {
		return true
	}
	// The first request of a Digest exchange carries no credentials; say which case this is,
	// never what was sent.
	_, sent := req.Header["Authorization"]
	h.in.s.log.Debug("reader not authenticated", "remote", c.NetConn().RemoteAddr().String(),
		"method", string(req.Method), "credentials_sent", sent)
	return false
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !h.authorize(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	ps := h.in.lookup(ctx.Path)
	if ps == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ps.stream, nil
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !h.authorize(ctx.Conn, ctx.Request) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	ps := h.in.lookup(ctx.Path)
	if ps == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if !h.in.admit(ctx.Session) {
		h.in.s.log.Info("refusing a session beyond the stream cap", "path", ctx.Path, "max", h.in.s.cfg.MaxSessions)
		return &base.Response{StatusCode: base.StatusNotEnoughBandwidth}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ps.stream, nil
}

// admit counts a session against MaxSessions at its first SETUP; false
// when the cap is reached.
func (in *instance) admit(ss *gortsplib.ServerSession) bool {
	max := in.s.cfg.MaxSessions
	if max <= 0 {
		return true
	}
	in.admitMu.Lock()
	defer in.admitMu.Unlock()
	if _, ok := in.admitted[ss]; ok {
		return true
	}
	if len(in.admitted) >= max {
		return false
	}
	in.admitted[ss] = struct{}{}
	return true
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.in.playMu.Lock()
	h.in.playAt[ctx.Session] = time.Now()
	h.in.playMu.Unlock()
	proto := "unknown"
	if tr := ctx.Session.Transport(); tr != nil {
		proto = tr.Protocol.String()
	}
	h.in.s.log.Debug("reader playing", "path", ctx.Path, "transport", proto)
	return &base.Response{StatusCode: base.StatusOK}, nil
}
