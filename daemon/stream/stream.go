// Package stream pulls each configured camera stream once and restreams it
// over RTSP to any number of authenticated, authorised readers.
//
// Ownership: the Server's mu guards the path table, the camera specs and the
// session registry; each path's mu serialises everything on its ingest side
// (the served gortsplib stream, the forwarders, the GOP cache, the stats).
// Lock order is Server.mu before path.mu; neither is held across network I/O.
package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/apitype"
)

// Authenticator checks reader credentials; it is implemented by the daemon.
type Authenticator interface {
	// CachedBasic answers from memory of recent successful checks, without
	// hashing; hit=false means only VerifyBasic can tell (not that the
	// password is wrong).
	CachedBasic(user, password string) (credVersion uint64, hit bool)
	// VerifyBasic reports whether password is user's current password (enabled user) and its credential version.
	// It is the expensive check (argon2id); the Server bounds and schedules these calls.
	VerifyBasic(user, password string) (credVersion uint64, ok bool)
	// DigestSecret returns the user's secret for Digest checking, unsealed on demand; ok=false for unknown/disabled.
	DigestSecret(user string) (secret string, credVersion uint64, ok bool)
}

// Config configures a Server. Zero tunables take their defaults.
type Config struct {
	RTSPAddress string       // TCP, e.g. ":8554" or "127.0.0.1:0"; ignored when Listener != nil
	Listener    net.Listener // optional socket-activated listener
	// RTSPS (optional): TLS readers on a second address, served by the
	// same server (TCP-interleaved only). TLS is required for it.
	RTSPSAddress   string       // e.g. ":8322"; ignored when RTSPSListener != nil
	RTSPSListener  net.Listener // optional socket-activated listener ("rtsps")
	TLS            *tls.Config
	UDPRTPAddress  string // "" disables UDP for readers (then only TCP)
	UDPRTCPAddress string
	Logger         hclog.Logger
	Auth           Authenticator
	Policy         func() *access.Policy
	External       External // optional: token holders and directory users (#13)
	// BasicAuth says where a password or token may come in clear form
	// (Basic, a token as the password or in ?token=): "tls-only" (the
	// default), "always" or "never". Read at every login.
	BasicAuth func() string

	BackoffMin           time.Duration // first reconnect delay (1 s)
	BackoffMax           time.Duration // reconnect delay cap (30 s)
	HealthyAfter         time.Duration // live this long resets the backoff (30 s)
	OnDemandStartTimeout time.Duration // a reader waits this long for an on-demand source (10 s)
	OnDemandCloseAfter   time.Duration // an on-demand source stops this long after its last reader (10 s)
	StalledReaderTimeout time.Duration // a reader whose socket takes nothing this long while bytes wait is evicted (5 s)
	ReadTimeout          time.Duration // camera and reader read timeout (10 s)
	WriteTimeout         time.Duration // reader write timeout (10 s)
	WriteQueueSize       int           // power of two (1024); the GOP cache replays up to 7/8 of it in packets of 1500 bytes
	// Writers is the number of fan-out writer goroutines (0: one less
	// than GOMAXPROCS, at least one).
	Writers            int
	ReaderBudget       int           // bytes queued for one reader at most; past it the reader skips to the next keyframe (4 MiB)
	ThrottleFailures   int           // failed authentications per window before refusing (5)
	ThrottleWindow     time.Duration // (1 min)
	ThrottleBase       time.Duration // first refusal period, doubled each time (1 min, cap 1 h)
	ThrottleMaxEntries int           // addresses tracked at most (10000)
	BasicChecksAtOnce  int           // expensive Basic checks (argon2id, ~20 MB each) running at once (2)
	BasicCheckQueue    int           // Basic checks waiting at most; more are answered 503 at once (16)
	AuthTimeout        time.Duration // a connection that has not authenticated this long is closed (30 s)
	MaxUnauthPerAddr   int           // unauthenticated connections from one address; more are closed at once (64: a VMS starting many streams at once is one address)
	MaxUnauth          int           // unauthenticated connections in total; the oldest is closed to make room (1024)
	GOPCacheDisabled   bool          // do not send new readers the packets since the last keyframe
	Observer           Observer      // optional: hears of closed sessions, first frames, failed logins
}

func (c *Config) setDefaults() {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&c.BackoffMin, time.Second)
	d(&c.BackoffMax, 30*time.Second)
	d(&c.HealthyAfter, 30*time.Second)
	d(&c.OnDemandStartTimeout, 10*time.Second)
	d(&c.OnDemandCloseAfter, 10*time.Second)
	d(&c.StalledReaderTimeout, 5*time.Second)
	d(&c.ReadTimeout, 10*time.Second)
	d(&c.WriteTimeout, 10*time.Second)
	d(&c.ThrottleWindow, time.Minute)
	d(&c.ThrottleBase, time.Minute)
	d(&c.AuthTimeout, 30*time.Second)
	if c.MaxUnauthPerAddr <= 0 {
		c.MaxUnauthPerAddr = 64
	}
	if c.BasicChecksAtOnce <= 0 {
		c.BasicChecksAtOnce = 2
	}
	if c.BasicCheckQueue <= 0 {
		c.BasicCheckQueue = 16
	}
	if c.MaxUnauth <= 0 {
		c.MaxUnauth = 1024
	}
	if c.WriteQueueSize <= 0 {
		c.WriteQueueSize = 1024
	}
	if c.ReaderBudget <= 0 {
		c.ReaderBudget = 4 << 20
	}
	if c.ThrottleFailures <= 0 {
		c.ThrottleFailures = 5
	}
	if c.ThrottleMaxEntries <= 0 {
		c.ThrottleMaxEntries = 10000
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Policy == nil {
		c.Policy = func() *access.Policy { return nil }
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.BasicAuth == nil {
		c.BasicAuth = func() string { return BasicTLSOnly }
	}
}

// CameraSpec is one configured camera and its streams.
type CameraSpec struct {
	Name    string
	Streams []StreamSpec
}

// StreamSpec is one stream of a camera.
type StreamSpec struct {
	Name, URL, Username string
	Transport           apitype.Transport // parsed once by the daemon; "" = auto
	OnDemand            bool
	// AllowBasic lets the puller answer a Basic challenge (the camera
	// password in clear on the wire); otherwise only Digest is answered.
	AllowBasic bool
	// Exec, when set, is the argv of a command that publishes the stream to
	// OutputPlaceholder (an exec source); URL is then only shown to admins.
	Exec     []string
	Revision string                                    // changes whenever the source (URL, exec, creds, transport, on-demand, allow-basic) changes
	Password func(ctx context.Context) (string, error) // unseals the camera password; nil = no password
}

// Stream states.
const (
	StateIdle       = "idle"
	StateConnecting = "connecting"
	StateLive       = "live"
	StateBackoff    = "backoff"
)

// StreamStatus is a snapshot of one path. URL is redacted.
type StreamStatus struct {
	Camera, Stream, Path, URL, State string
	Since                            time.Time
	Codecs                           []string
	Width, Height                    int
	BitrateBps                       float64
	FPS                              float64
	PacketsLost                      uint64
	Readers                          int
	LastError                        string
	Published                        bool
	SourcePID                        int // an exec source's running command (0 = none)
	// Since the path was created (counters for metrics):
	BytesReceived, PacketsReceived, Frames uint64
	Reconnects                             uint64    // source connections that failed and were retried
	LastFrame                              time.Time // zero until the first video frame
	// Tracks lists every media of the camera's last description (back channels included, not served).
	Tracks []TrackStatus
}

// SessionInfo describes one authenticated RTSP session.
type SessionInfo struct {
	ID, User, Path, Action, RemoteAddr, Transport string
	Since                                         time.Time
	BytesSent, BytesReceived                      uint64
}

// Server is the ingest + restream server.
type Server struct {
	cfg  Config
	log  hclog.Logger
	rtsp *gortsplib.Server
	thr  *throttle
	fan  *fanEngine // the readers' data path (fanout.go)
	// unauth bounds connections that have not authenticated yet.
	unauth *unauthGate
	// checks schedules the expensive Basic checks fairly across addresses.
	checks  *checkQueue
	flights *basicFlights
	busy    busyNotes
	counts  securityCounters // for metrics (observe.go)
	// dirLogins bounds directory logins in flight; dirNotes logs refusals.
	dirLogins chan struct{}
	dirNotes  directoryNotes
	// clearNotes logs Basic logins and tokens refused without TLS.
	clearNotes directoryNotes

	mu       sync.Mutex
	paths    map[string]*path // "cam/stream"
	sessions map[*session]struct{}
	conns    map[*gortsplib.ServerConn]*connState
	started  bool
	closed   bool

	tlsAddr atomic.Pointer[addrBox] // the RTSPS listener's address

	serveDone chan struct{} // closed when gortsplib's server stops
	serveErr  error         // why; read only after serveDone is closed

	ctx    context.Context
	cancel context.CancelFunc
}

// New validates cfg and returns an unstarted Server.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Auth == nil {
		return nil, errors.New("stream: Config.Auth is required")
	}
	if cfg.Listener == nil && cfg.RTSPAddress == "" {
		return nil, errors.New("stream: Config.RTSPAddress or Config.Listener is required")
	}
	if cfg.TLS != nil && cfg.RTSPSListener == nil && cfg.RTSPSAddress == "" {
		return nil, errors.New("stream: RTSPS needs Config.RTSPSAddress or Config.RTSPSListener")
	}
	if cfg.WriteQueueSize&(cfg.WriteQueueSize-1) != 0 {
		return nil, fmt.Errorf("stream: WriteQueueSize %d must be a power of two", cfg.WriteQueueSize)
	}
	if (cfg.UDPRTPAddress == "") != (cfg.UDPRTCPAddress == "") {
		return nil, errors.New("stream: UDPRTPAddress and UDPRTCPAddress go together")
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		paths:    map[string]*path{},
		sessions: map[*session]struct{}{},
		conns:    map[*gortsplib.ServerConn]*connState{},
	}
	s.flights = newBasicFlights()
	s.dirLogins = make(chan struct{}, directoryLoginsAtOnce)
	s.checks = newCheckQueue(cfg.BasicChecksAtOnce, cfg.BasicCheckQueue, basicChecksPerAddr)
	s.unauth = newUnauthGate(cfg.MaxUnauthPerAddr, cfg.MaxUnauth, cfg.AuthTimeout)
	s.thr = newThrottle(cfg.ThrottleFailures, cfg.ThrottleWindow, cfg.ThrottleBase, cfg.ThrottleMaxEntries, cfg.Logger)
	s.fan = newFanEngine(cfg.Writers, cfg.ReaderBudget, cfg.StalledReaderTimeout, cfg.Logger)
	return s, nil
}

// Start binds the listeners and starts serving; it returns once they are bound.
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("stream: already started")
	}
	s.started = true
	s.mu.Unlock()

	addr := s.cfg.RTSPAddress
	if s.cfg.Listener != nil {
		addr = s.cfg.Listener.Addr().String()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var udpConns []net.PacketConn
	srv := &gortsplib.Server{
		Handler:        &handler{s: s},
		RTSPAddress:    addr,
		UDPRTPAddress:  s.cfg.UDPRTPAddress,
		UDPRTCPAddress: s.cfg.UDPRTCPAddress,
		ReadTimeout:    s.cfg.ReadTimeout,
		WriteTimeout:   s.cfg.WriteTimeout,
		// Readers' media go through the fan-out engine, not gortsplib's
		// per-session queue, which is left with RTCP to publishers.
		WriteQueueSize:           16,
		DisableRTCPSenderReports: true, // the engine sends them, shared by all readers
		Listen: func(network, address string) (net.Listener, error) {
			plain := s.cfg.Listener
			if plain == nil {
				ln, err := net.Listen(network, address)
				if err != nil {
					return nil, err
				}
				plain = ln
			}
			if s.cfg.TLS == nil {
				return fanListener{plain, s.cfg.ReadTimeout}, nil
			}
			secure := s.cfg.RTSPSListener
			if secure == nil {
				ln, err := net.Listen(network, s.cfg.RTSPSAddress)
				if err != nil {
					plain.Close()
					return nil, fmt.Errorf("RTSPS on %s: %w", s.cfg.RTSPSAddress, err)
				}
				secure = ln
			}
			s.tlsAddr.Store(&addrBox{secure.Addr()})
			return newMergedListener(fanListener{plain, s.cfg.ReadTimeout}, tlsListener{secure, s.cfg.TLS, s.cfg.ReadTimeout}), nil
		},
		// gortsplib opens the RTP socket, then the RTCP one; the engine
		// sends readers' datagrams from them (the ports SETUP announced).
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			pc, err := net.ListenPacket(network, address)
			if err == nil {
				udpConns = append(udpConns, pc)
			}
			return pc, err
		},
	}
	if err := srv.Start(); err != nil {
		s.cancel()
		return fmt.Errorf("stream: start RTSP server on %s: %w", addr, err)
	}
	if len(udpConns) == 2 {
		s.fan.udpRTP, s.fan.udpRTCP = newUDPSender(udpConns[0]), newUDPSender(udpConns[1])
	}
	s.fan.start()
	s.mu.Lock()
	s.rtsp = srv
	s.serveDone = s.watchServe(srv)
	for _, p := range s.paths {
		if !p.published {
			p.start()
		}
	}
	s.mu.Unlock()
	s.log.Info("RTSP server listening", "addr", srv.NetListener().Addr().String(), "udp", s.cfg.UDPRTPAddress != "")
	if a := s.RTSPSAddr(); a != nil {
		s.log.Info("RTSPS server listening", "addr", a.String())
	}
	return nil
}

type addrBox struct{ net.Addr }

// RTSPSAddr returns the bound RTSPS address (nil without RTSPS or before Start).
func (s *Server) RTSPSAddr() net.Addr {
	if b := s.tlsAddr.Load(); b != nil {
		return b.Addr
	}
	return nil
}

// Addr returns the bound TCP address (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	srv := s.rtsp
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.NetListener().Addr()
}

// SetCameras applies a new camera set: new streams start, streams whose
// Revision changed restart, removed ones stop (closing their readers).
// Streams that did not change are not touched. It returns how many
// streams restarted (present before and after, with a new Revision).
func (s *Server) SetCameras(ctx context.Context, cams []CameraSpec) (restarted int) {
	want := map[string]struct {
		cam string
		sp  StreamSpec
	}{}
	for _, c := range cams {
		for _, sp := range c.Streams {
			if !access.ValidName(c.Name) || !access.ValidName(sp.Name) {
				s.log.Warn("ignoring stream with invalid name", "camera", c.Name, "stream", sp.Name)
				continue
			}
			want[c.Name+"/"+sp.Name] = struct {
				cam string
				sp  StreamSpec
			}{c.Name, sp}
		}
	}
	var stop []*path
	var start []*path
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0
	}
	for name, p := range s.paths {
		if p.published {
			continue
		}
		w, ok := want[name]
		if !ok || w.sp.Revision != p.spec.Revision {
			delete(s.paths, name)
			stop = append(stop, p)
			if ok {
				restarted++
			}
		}
	}
	for name, w := range want {
		if old, ok := s.paths[name]; ok {
			if old.published {
				// A configured camera takes the path over from a publisher.
				delete(s.paths, name)
				stop = append(stop, old)
			} else {
				continue
			}
		}
		p := newCameraPath(s, w.cam, w.sp)
		s.paths[name] = p
		start = append(start, p)
	}
	running := s.rtsp != nil
	if running {
		// Pullers start at once; before Start they wait for it.
		for _, p := range start {
			p.start()
		}
	}
	s.mu.Unlock()
	for _, p := range stop {
		p.stop(ctx)
	}
	return restarted
}

// Streams returns the status of every path, sorted by path.
func (s *Server) Streams() []StreamStatus {
	s.mu.Lock()
	ps := make([]*path, 0, len(s.paths))
	for _, p := range s.paths {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	out := make([]StreamStatus, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Close stops every puller, closes every session and the listeners.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.rtsp
	ps := make([]*path, 0, len(s.paths))
	for _, p := range s.paths {
		ps = append(ps, p)
	}
	s.paths = map[string]*path{}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range ps {
		p.stop(ctx)
	}
	s.mu.Lock()
	var handed []*playConn
	for se := range s.sessions {
		if pc := se.play.Load(); pc != nil {
			handed = append(handed, pc)
		}
	}
	s.mu.Unlock()
	for _, pc := range handed { // any a path did not close
		pc.end(CloseStopped, true)
	}
	if srv != nil {
		srv.Close()
		s.fan.stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
	return nil
}

func (s *Server) lookupPath(name string) *path {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths[name]
}
