// Package camsim runs simulated ONVIF cameras for the demo, tests and
// benchmarks: one WS-Discovery responder shared by all cameras, and per camera
// a SOAP 1.2 device+media service (WS-UsernameToken or HTTP Digest) and an
// RTSP server (package media) serving two synthetic H.264 profiles.
//
// Everything binds Options.Addr (127.0.0.1 by default). Multicast discovery
// is joined only on the interfaces Options.DiscoveryInterfaces names; nil
// means "the interface owning Addr, if it has the MULTICAST flag" (on a normal
// host the loopback interface has not, so plain loopback runs answer unicast
// probes only), and []string{"none"} turns multicast off.
package camsim

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

// Auth modes of the SOAP services.
const (
	AuthWSSE   = "wsse"   // WS-UsernameToken PasswordDigest in the SOAP header
	AuthDigest = "digest" // HTTP Digest (RFC 2617, MD5, qop=auth)
)

// DefaultDiscoveryPort is the WS-Discovery port (unicast and multicast).
const DefaultDiscoveryPort = 3702

// Options configures a Sim. Zero values get the documented defaults.
type Options struct {
	Cameras int // number of cameras; default 1
	Addr    string
	// BasePort: camera i serves HTTP on BasePort+i and RTSP on
	// BasePort+Cameras+i; 0 = ephemeral ports. Restart always picks new
	// ephemeral ports.
	BasePort int
	// DiscoveryPort is the unicast WS-Discovery port on Addr (directed
	// probes). 0 = an ephemeral port, so parallel tests never collide; the
	// camsim command defaults to DefaultDiscoveryPort (3702). Multicast
	// probes are always received on 239.255.255.250:3702.
	DiscoveryPort       int
	DiscoveryInterfaces []string // nil = interface owning Addr if multicast capable; {"none"} = off
	Username, Password  string
	Auth                string        // "wsse" (default) or "digest"
	ClockSkew           time.Duration // added to the host clock to get each camera's clock
	Seed                string        // derives the stable urn:uuid of each camera; default "camsim"
	Logger              hclog.Logger
	Profiles            []media.Profile // nil = DefaultProfiles()
	// HTTPS serves the ONVIF services over TLS, each camera with its own
	// self-signed certificate (kept across Restart; a new Sim makes new
	// ones, so a second Sim with the same Seed is an impostor with the
	// right URN and the wrong certificate).
	HTTPS bool
	// RecorderChannels > 0 makes each camera a network recorder (NVR) with
	// this many video sources (channels, 1..256): every channel has its own
	// copy of the profiles, tokens "chNN_<profile>", served at RTSP paths
	// /chNN_<profile> of the recorder's one RTSP server. Nil Profiles then
	// default to RecorderProfiles (small, so 16 channels stay cheap).
	RecorderChannels int
	// MediaServices is which ONVIF media services the device offers:
	// MediaBoth (default), Media1Only or Media2Only.
	MediaServices string
	// Media2H265 reports the first profile of each channel as H.265 and,
	// as H.265 cameras do, only through Media2 (Media1 cannot describe
	// it). camsim has no H.265 encoder: the RTSP stream stays H.264.
	Media2H265 bool
	// MaxStreams caps the RTSP sessions each camera serves at once, as
	// recorders do; a SETUP beyond it is answered 453 Not Enough
	// Bandwidth. 0 = no cap.
	MaxStreams int
}

// Media services a camera can offer (Options.MediaServices).
const (
	MediaBoth  = "both"
	Media1Only = "media1"
	Media2Only = "media2"
)

// MaxRecorderChannels bounds Options.RecorderChannels.
const MaxRecorderChannels = 256

// RecorderProfiles are a recorder channel's default profiles: main
// 640x360@10 300 kbit/s and sub 320x180@5 100 kbit/s (recorders re-serve
// many channels; the sizes keep a 16-channel simulator light).
func RecorderProfiles() []media.Profile {
	return []media.Profile{
		{Name: "main", Width: 640, Height: 360, FPS: 10, BitrateKbps: 300, GOP: 2 * time.Second},
		{Name: "sub", Width: 320, Height: 180, FPS: 5, BitrateKbps: 100, GOP: 2 * time.Second},
	}
}

// DefaultProfiles are the two profiles every camera serves by default
// (media.DefaultProfiles: main 1920x1080@25 4000 kbit/s, sub 640x360@25
// 500 kbit/s, 2 s GOP).
func DefaultProfiles() []media.Profile {
	return media.DefaultProfiles()
}

// Sim is a set of simulated cameras and their discovery responder.
type Sim struct {
	opts Options
	log  hclog.Logger
	cams []*Camera
	// channels are the video sources every camera has (one for a camera,
	// RecorderChannels for a recorder); read-only after New.
	channels []*channel
	disc     atomic.Pointer[discovery]
	mu       sync.Mutex // serialises Start/Close
	state    int        // 0 new, 1 started, 2 closed
	cancel   context.CancelFunc
}

// New validates opts and builds the cameras; nothing listens until Start.
func New(opts Options) (*Sim, error) {
	if opts.Cameras == 0 {
		opts.Cameras = 1
	}
	if opts.Cameras < 0 || opts.Cameras > 1000 {
		return nil, fmt.Errorf("camsim: --cameras must be between 1 and 1000, got %d", opts.Cameras)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1"
	}
	ip := net.ParseIP(opts.Addr)
	if ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("camsim: --addr must be an IPv4 address, got %q", opts.Addr)
	}
	if opts.BasePort < 0 || opts.BasePort+2*opts.Cameras > 65535 {
		return nil, fmt.Errorf("camsim: --base-port %d leaves no room for %d cameras (HTTP and RTSP ports)", opts.BasePort, opts.Cameras)
	}
	if opts.DiscoveryPort < 0 || opts.DiscoveryPort > 65535 {
		return nil, fmt.Errorf("camsim: bad discovery port %d", opts.DiscoveryPort)
	}
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("camsim: a username and a password are required")
	}
	switch opts.Auth {
	case "":
		opts.Auth = AuthWSSE
	case AuthWSSE, AuthDigest:
	default:
		return nil, fmt.Errorf("camsim: auth must be %q or %q, got %q", AuthWSSE, AuthDigest, opts.Auth)
	}
	if opts.Seed == "" {
		opts.Seed = "camsim"
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.RecorderChannels < 0 || opts.RecorderChannels > MaxRecorderChannels {
		return nil, fmt.Errorf("camsim: --recorder-channels must be between 0 and %d, got %d", MaxRecorderChannels, opts.RecorderChannels)
	}
	switch opts.MediaServices {
	case "":
		opts.MediaServices = MediaBoth
	case MediaBoth, Media1Only, Media2Only:
	default:
		return nil, fmt.Errorf("camsim: media services must be %q, %q or %q, got %q", MediaBoth, Media1Only, Media2Only, opts.MediaServices)
	}
	if opts.MaxStreams < 0 {
		return nil, fmt.Errorf("camsim: --max-streams must not be negative, got %d", opts.MaxStreams)
	}
	if opts.Profiles == nil {
		opts.Profiles = DefaultProfiles()
		if opts.RecorderChannels > 0 {
			opts.Profiles = RecorderProfiles()
		}
	}
	if len(opts.Profiles) == 0 {
		return nil, errors.New("camsim: at least one profile is required")
	}
	seen := map[string]bool{}
	for _, p := range opts.Profiles {
		if p.Name == "" || seen[p.Name] || !tokenOK(p.Name) {
			return nil, fmt.Errorf("camsim: profile names must be unique and use [a-z0-9_-], got %q", p.Name)
		}
		seen[p.Name] = true
	}
	if opts.Media2H265 && opts.MediaServices == Media1Only {
		return nil, errors.New("camsim: H.265 profiles are offered through Media2 only: not with media1 only")
	}
	s := &Sim{opts: opts, log: opts.Logger, channels: buildChannels(opts)}
	for i := 0; i < opts.Cameras; i++ {
		c := newCamera(s, i)
		if opts.HTTPS {
			cert, err := SelfSignedCert(c.name, ip)
			if err != nil {
				return nil, fmt.Errorf("camsim: %s: certificate: %w", c.name, err)
			}
			c.cert = &cert
		}
		s.cams = append(s.cams, c)
	}
	return s, nil
}

func tokenOK(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Start opens the discovery sockets, starts every camera, and sends Hello for
// each on the multicast interfaces. On error everything started is closed.
func (s *Sim) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 0 {
		return errors.New("camsim: Start called twice or after Close")
	}
	s.state = 1
	// The servers outlive ctx (which only bounds start-up); Close stops them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	d, err := newDiscovery(s)
	if err != nil {
		cancel()
		return err
	}
	s.disc.Store(d)
	for _, c := range s.cams {
		if err := ctx.Err(); err != nil {
			s.closeLocked()
			return err
		}
		if err := c.start(runCtx); err != nil {
			s.closeLocked()
			return err
		}
	}
	// serve only starts the read loops; called here, not as a goroutine, so
	// their wg.Add happens before any Close can Wait.
	d.serve(runCtx)
	for _, c := range s.cams {
		d.announce(c, helloAction)
	}
	return nil
}

// Close sends Bye for every camera, then stops all servers. Safe to call twice.
func (s *Sim) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == 2 {
		return nil
	}
	wasStarted := s.state == 1
	s.state = 2
	if !wasStarted {
		return nil
	}
	return s.closeLocked()
}

func (s *Sim) closeLocked() error {
	var errs []error
	d := s.disc.Load()
	if d != nil {
		for _, c := range s.cams {
			if c.running() {
				d.announce(c, byeAction)
			}
		}
	}
	for _, c := range s.cams {
		errs = append(errs, c.stop())
	}
	if d != nil {
		errs = append(errs, d.close())
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.state = 2
	return errors.Join(errs...)
}

// Cameras returns the cameras in index order.
func (s *Sim) Cameras() []*Camera { return append([]*Camera(nil), s.cams...) }

// DiscoveryAddr is the unicast WS-Discovery address (for directed probes);
// nil before Start.
func (s *Sim) DiscoveryAddr() *net.UDPAddr {
	d := s.disc.Load()
	if d == nil {
		return nil
	}
	return d.unicastAddr()
}

// MulticastInterfaces lists the interfaces the responder joined the
// WS-Discovery group on (empty when multicast is off).
func (s *Sim) MulticastInterfaces() []string {
	d := s.disc.Load()
	if d == nil {
		return nil
	}
	var names []string
	for _, ifi := range d.ifaces {
		names = append(names, ifi.Name)
	}
	return names
}

func (s *Sim) discovery() *discovery { return s.disc.Load() }

// stableUUID derives an RFC 4122 version-5-style UUID from seed and index so a
// camera keeps its identity across runs.
func stableUUID(seed string, index int) string {
	h := sha1.Sum([]byte(fmt.Sprintf("camsim/%s/%d", seed, index)))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
