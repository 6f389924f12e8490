package stream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// displayURL is the stream's URL as shown to admins: redacted, with the
// configured user name and a masked password when one is configured.
func displayURL(sp StreamSpec) string {
	raw := sp.URL
	if u, err := url.Parse(raw); err == nil && u.User == nil && sp.Username != "" && u.Host != "" {
		if sp.Password != nil {
			return u.Scheme + "://" + url.User(sp.Username).String() + ":***@" + strings.TrimPrefix(raw, u.Scheme+"://")
		}
		u.User = url.User(sp.Username)
		return u.String()
	}
	return apitype.RedactURL(raw)
}

// errIdle ends a connection because an on-demand stream lost its readers.
var errIdle = errors.New("no readers")

// runPuller keeps one connection to the camera stream: connect, serve, and
// on failure wait with exponential backoff and jitter. On-demand streams
// connect only while someone wants them.
func (p *path) runPuller(ctx context.Context) {
	log := p.s.log.With("path", p.name)
	attempt := 0
	for ctx.Err() == nil {
		if p.spec.OnDemand && !p.demand() {
			p.setState(StateIdle, "")
			for !p.demand() {
				select {
				case <-ctx.Done():
					return
				case <-p.notify:
				}
			}
		}
		p.setState(StateConnecting, "")
		liveAt, err := p.sourceOnce(ctx)
		if ctx.Err() != nil {
			p.goDown(StateIdle, "")
			return
		}
		if errors.Is(err, errIdle) {
			log.Info("on-demand stream stopped: no readers")
			p.goDown(StateIdle, "")
			attempt = 0
			continue
		}
		if !liveAt.IsZero() && time.Since(liveAt) >= p.s.cfg.HealthyAfter {
			attempt = 0
		}
		delay := backoff(p.s.cfg.BackoffMin, p.s.cfg.BackoffMax, attempt)
		attempt++
		p.mu.Lock()
		p.reconnects++
		p.mu.Unlock()
		msg := err.Error()
		log.Warn("camera stream failed; retrying", "error", msg, "retry_in", delay.Round(time.Millisecond))
		p.goDown(StateBackoff, msg)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			p.goDown(StateIdle, "")
			return
		case <-t.C:
		}
	}
}

// backoff returns min*2^attempt capped at max, with +-20% jitter.
func backoff(min, max time.Duration, attempt int) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	j := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * j)
}

// pullOnce runs one connection until it fails. liveAt is when it started
// serving (zero if it never did). Returned errors never hold the password.
func (p *path) pullOnce(ctx context.Context) (liveAt time.Time, err error) {
	sp := p.spec
	if isHTTPSource(sp.URL) {
		return p.pullMJPEGOnce(ctx)
	}
	u, err := base.ParseURL(sp.URL)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid camera URL %s", apitype.RedactURL(sp.URL))
	}
	user, pass, err := sp.credentials(ctx, (*url.URL)(u))
	if err != nil {
		return time.Time{}, err
	}
	defer func() {
		if err != nil && !errors.Is(err, errIdle) { // errIdle is no failure: keep it recognisable
			err = errors.New(scrub(err.Error(), pass))
		}
	}()
	u.User = nil
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}

	var rawSDP atomic.Value
	guard := &cameraGuard{camera: p.camera, host: u.Host, allowBasic: sp.AllowBasic, sawDigest: &p.sawDigest}
	// refused prefers the guard's reason: the client's own error for a
	// challenge it was not allowed to answer says only "no methods".
	refused := func(err error) error {
		if gerr := guard.err(); gerr != nil {
			return gerr
		}
		return err
	}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  p.s.cfg.ReadTimeout,
		WriteTimeout: p.s.cfg.WriteTimeout,
		OnResponse: func(res *base.Response) {
			guard.onResponse(res)
			if ct, ok := res.Header["Content-Type"]; ok && len(ct) == 1 && strings.HasPrefix(ct[0], "application/sdp") {
				rawSDP.Store(string(res.Body))
			}
		},
		OnPacketsLost: func(lost uint64) {
			p.mu.Lock()
			p.lost += lost
			p.mu.Unlock()
		},
		OnDecodeError: p.noteDecodeError,
	}
	switch sp.Transport {
	case "", apitype.TransportAuto: // gortsplib tries UDP, then falls back to TCP
		if p.udpTooBig.Load() {
			// The camera's packets do not fit UDP here (see checkSource).
			c.Protocol = new(gortsplib.ProtocolTCP)
		}
	case apitype.TransportTCP:
		c.Protocol = new(gortsplib.ProtocolTCP)
	case apitype.TransportUDP:
		c.Protocol = new(gortsplib.ProtocolUDP)
	default: // the daemon parsed it with apitype.ParseTransport; a bug if reached
		return time.Time{}, fmt.Errorf("unknown transport %q: use auto, tcp or udp", sp.Transport)
	}
	if err := c.Start(); err != nil {
		return time.Time{}, fmt.Errorf("connect %s: %w", apitype.RedactURL(sp.URL), err)
	}
	defer c.Close()
	// gortsplib's calls take no context: closing the client unblocks them.
	stopWatch := context.AfterFunc(ctx, c.Close)
	defer stopWatch()

	desc, _, err := c.Describe(u)
	if err != nil {
		if _, ok := errors.AsType[liberrors.ErrClientSDPInvalid](err); ok {
			raw, _ := rawSDP.Load().(string)
			return time.Time{}, fmt.Errorf("camera SDP rejected: %v; SDP: %q", err, truncate(scrub(raw, pass), 1024))
		}
		return time.Time{}, fmt.Errorf("describe: %w", refused(err))
	}
	var medias []*description.Media
	for _, m := range desc.Medias {
		if !m.IsBackChannel {
			medias = append(medias, m)
		}
	}
	if err := c.SetupAll(desc.BaseURL, medias); err != nil {
		return time.Time{}, fmt.Errorf("setup: %w", refused(err))
	}
	if err := p.goLive(desc); err != nil {
		raw, _ := rawSDP.Load().(string)
		return time.Time{}, fmt.Errorf("%v; SDP: %q", err, truncate(scrub(raw, pass), 1024))
	}
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		p.ingest(m, pkt)
	})
	if _, err := c.Play(nil); err != nil {
		return time.Time{}, fmt.Errorf("play: %w", refused(err))
	}
	liveAt = time.Now()
	p.markLive()
	proto := "?"
	if tr := c.Transport(); tr != nil && tr.Session != nil {
		proto = tr.Session.Protocol.String()
	}
	p.s.log.Info("camera stream live", "path", p.name, "url", displayURL(sp), "transport", proto)

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	var idle *time.Timer
	var idleC <-chan time.Time
	check := func() {
		if !p.spec.OnDemand {
			return
		}
		if p.demand() {
			if idle != nil {
				idle.Stop()
				idle, idleC = nil, nil
			}
		} else if idle == nil {
			idle = time.NewTimer(p.s.cfg.OnDemandCloseAfter)
			idleC = idle.C
		}
	}
	check()
	healthTick := time.NewTicker(badInputWindow / 2)
	defer healthTick.Stop()
	for {
		select {
		case now := <-healthTick.C:
			if err := p.checkSource(now); err != nil {
				raw, _ := rawSDP.Load().(string)
				return liveAt, fmt.Errorf("%v; reconnecting; SDP: %q", err, truncate(scrub(raw, pass), 1024))
			}
		case err := <-waitErr:
			if err == nil {
				err = errors.New("connection closed")
			}
			return liveAt, err
		case <-ctx.Done():
			return liveAt, ctx.Err()
		case <-p.notify:
			check()
		case <-idleC:
			if !p.demand() {
				return liveAt, errIdle
			}
			idle, idleC = nil, nil
			check()
		}
	}
}
