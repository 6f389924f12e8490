package camsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

// Camera is one simulated ONVIF camera.
type Camera struct {
	sim    *Sim
	index  int
	name   string
	urn    string
	serial string
	mac    string
	log    hclog.Logger
	cert   *tls.Certificate // HTTPS mode only
	// advertise overrides the announced XAddr (AdvertiseXAddr).
	advertise atomic.Pointer[string]

	nonces  *nonceCache  // WS-UsernameToken replay protection
	digests *digestCache // HTTP Digest nonces we issued

	// ep is the live endpoint set, swapped whole on Restart so handlers and
	// the discovery responder read a consistent snapshot without locks.
	ep       atomic.Pointer[endpoints]
	metaVer  atomic.Uint32 // WS-Discovery MetadataVersion, bumped on Restart
	lifeMu   sync.Mutex    // serialises start/stop/Restart
	runCtx   context.Context
	faultsMu sync.Mutex
	faults   media.Faults
}

type endpoints struct {
	httpSrv  *http.Server
	httpAddr *net.TCPAddr
	xaddr    string
	media    *media.Server
}

func newCamera(s *Sim, i int) *Camera {
	id := stableUUID(s.opts.Seed, i)
	c := &Camera{
		sim:     s,
		index:   i,
		name:    fmt.Sprintf("camsim-%d", i+1),
		urn:     "urn:uuid:" + id,
		serial:  serialNumber(s.opts.Seed, id, i),
		mac:     fmt.Sprintf("02:ca:%s:%s:%s:%s", id[0:2], id[2:4], id[4:6], id[6:8]),
		nonces:  newNonceCache(),
		digests: newDigestCache(),
	}
	c.log = s.log.Named(c.name)
	c.metaVer.Store(1)
	return c
}

// serialNumber is what GetDeviceInformation reports. Real devices have
// unique serials and the daemon refuses to adopt one device twice, so two
// Sims of different seeds must not share one: the default seed keeps the
// plain CS00000001, CS00000002, … and any other seed puts part of its URN
// in front of the index. A Sim with the same seed (an impostor) reports the
// same serial, as a cloned device would.
func serialNumber(seed, id string, i int) string {
	if seed == "camsim" {
		return fmt.Sprintf("CS%08X", i+1)
	}
	return fmt.Sprintf("CS%s%04X", strings.ToUpper(id[:4]), i+1)
}

// Serial is the serial number the camera reports.
func (c *Camera) Serial() string { return c.serial }

// Name is the camera's ONVIF name (also its /name/ scope).
func (c *Camera) Name() string { return c.name }

// URN is the stable WS-Discovery EndpointReference, urn:uuid:...
func (c *Camera) URN() string { return c.urn }

// Model is the ONVIF model (the /hardware/ scope).
func (c *Camera) Model() string { return "CamSim-1080" }

// XAddr is the device service URL, "" when the camera is not running.
func (c *Camera) XAddr() string {
	if ep := c.ep.Load(); ep != nil {
		return ep.xaddr
	}
	return ""
}

// RTSPURL is the stream URL of a profile (by token: the profile name for a
// camera, "chNN_<name>" for a recorder), without credentials; "" when the
// profile is unknown or the camera is not running.
func (c *Camera) RTSPURL(profile string) string {
	ep := c.ep.Load()
	if ep == nil || ep.media == nil || c.sim.profileByToken(profile) == nil {
		return ""
	}
	return ep.media.URL(profile)
}

// Profiles are the stream profiles the camera serves (tokens = names).
func (c *Camera) Profiles() []media.Profile {
	return append([]media.Profile(nil), c.sim.opts.Profiles...)
}

// Media is the camera's current RTSP server (it changes on Restart).
func (c *Camera) Media() *media.Server {
	if ep := c.ep.Load(); ep != nil {
		return ep.media
	}
	return nil
}

// SetFaults sets the RTSP fault switches; they survive Restart.
func (c *Camera) SetFaults(f media.Faults) {
	c.faultsMu.Lock()
	c.faults = f
	c.faultsMu.Unlock()
	if m := c.Media(); m != nil {
		m.SetFaults(f)
	}
}

// Now is the camera's clock: the host clock plus Options.ClockSkew.
func (c *Camera) Now() time.Time { return time.Now().Add(c.sim.opts.ClockSkew).UTC() }

func (c *Camera) running() bool { return c.ep.Load() != nil }

func (c *Camera) start(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	c.runCtx = ctx
	httpPort, rtspPort := 0, 0
	if bp := c.sim.opts.BasePort; bp != 0 {
		httpPort = bp + c.index
		rtspPort = bp + c.sim.opts.Cameras + c.index
	}
	ep, err := c.listen(ctx, ctx, httpPort, rtspPort)
	if err != nil {
		return err
	}
	c.ep.Store(ep)
	return nil
}

// listen starts a fresh HTTP service and RTSP server on the given ports;
// startCtx bounds the start-up, runCtx is the servers' lifetime.
func (c *Camera) listen(startCtx, runCtx context.Context, httpPort, rtspPort int) (*endpoints, error) {
	addr := c.sim.opts.Addr
	var lc net.ListenConfig
	ln, err := lc.Listen(startCtx, "tcp4", net.JoinHostPort(addr, strconv.Itoa(httpPort)))
	if err != nil {
		return nil, fmt.Errorf("camsim: %s: listen for ONVIF HTTP: %w", c.name, err)
	}
	ms, err := media.NewServer(media.Config{
		Addr:        net.JoinHostPort(addr, strconv.Itoa(rtspPort)),
		Username:    c.sim.opts.Username,
		Password:    c.sim.opts.Password,
		Profiles:    c.sim.mediaProfiles(),
		MaxSessions: c.sim.opts.MaxStreams,
		Logger:      c.log,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("camsim: %s: RTSP server: %w", c.name, err)
	}
	if err := ms.Start(startCtx); err != nil {
		ln.Close()
		return nil, fmt.Errorf("camsim: %s: start RTSP server: %w", c.name, err)
	}
	c.faultsMu.Lock()
	f := c.faults
	c.faultsMu.Unlock()
	ms.SetFaults(f)
	tcp := ln.Addr().(*net.TCPAddr)
	scheme := "http"
	if c.cert != nil {
		scheme = "https"
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*c.cert}, MinVersion: tls.VersionTLS12})
	}
	ep := &endpoints{
		httpAddr: tcp,
		xaddr:    scheme + "://" + tcp.String() + "/onvif/device_service",
		media:    ms,
	}
	ep.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(c.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          c.log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	go func() {
		if err := ep.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("ONVIF HTTP server stopped", "error", err)
		}
	}()
	c.log.Info("camera up", "xaddr", ep.xaddr, "rtsp", ms.Addr().String())
	return ep, nil
}

func (ep *endpoints) close() error {
	var errs []error
	if ep.httpSrv != nil {
		errs = append(errs, ep.httpSrv.Close())
	}
	if ep.media != nil {
		errs = append(errs, ep.media.Close())
	}
	return errors.Join(errs...)
}

func (c *Camera) stop() error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	ep := c.ep.Swap(nil)
	if ep == nil {
		return nil
	}
	return ep.close()
}

// Restart moves the camera to new ephemeral HTTP and RTSP ports (like a
// camera that rebooted and got a new port mapping): the new servers start, the
// snapshot is swapped, the old servers stop, and a Hello with the new XAddr
// and a bumped MetadataVersion goes out on the multicast interfaces.
func (c *Camera) Restart(ctx context.Context) error {
	c.lifeMu.Lock()
	old := c.ep.Load()
	if old == nil {
		c.lifeMu.Unlock()
		return fmt.Errorf("camsim: %s is not running", c.name)
	}
	if err := ctx.Err(); err != nil {
		c.lifeMu.Unlock()
		return err
	}
	ep, err := c.listen(ctx, c.runCtx, 0, 0)
	if err != nil {
		c.lifeMu.Unlock()
		return err
	}
	c.ep.Store(ep)
	c.metaVer.Add(1)
	err = old.close()
	c.lifeMu.Unlock()
	c.log.Info("camera restarted", "xaddr", ep.xaddr)
	if d := c.sim.discovery(); d != nil {
		d.announce(c, helloAction)
	}
	return err
}

// scopes are the camera's ONVIF scopes, as announced and returned by GetScopes.
func (c *Camera) scopes() []string {
	return []string{
		"onvif://www.onvif.org/type/video_encoder",
		"onvif://www.onvif.org/Profile/Streaming",
		"onvif://www.onvif.org/name/" + c.name,
		"onvif://www.onvif.org/hardware/" + c.Model(),
		"onvif://www.onvif.org/location/camsim",
	}
}
