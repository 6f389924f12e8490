package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// Following a camera to a new address.
//
// WS-Discovery is unauthenticated and a camera's URN is public (it
// multicasts it in every Hello), so a Hello or ProbeMatch naming an adopted
// camera's URN at another address proves nothing. It becomes a pending move
// on the camera record, shown by camera show/list and stream list and
// audited, and nothing at all is sent to that address until an admin runs
// camwarden camera move NAME --to ADDR. The one exception: a camera adopted
// over HTTPS has its certificate pinned, and if the new address presents
// that same certificate in a bare TLS handshake (no request, no credential)
// the camera has proved who it is; its credentials then go only through
// that pinned TLS, and it must also report the new address as its own
// (GetNetworkInterfaces), which a relay in front of the real camera cannot
// arrange. Then the move is applied at once ("camera.follow").

// A stream of spoofed messages naming ever new addresses rewrites (and
// audits) one camera's pending move at most holdBurst times a holdWindow.
const (
	holdWindow = time.Minute
	holdBurst  = 5
)

// holdBudget counts one camera's pending-move records in the current window
// and what was announced beyond them.
type holdBudget struct {
	start   time.Time
	n       int
	dropped int  // addresses announced beyond the budget this window
	marked  bool // the pending move is marked truncated and a Warn logged
}

// checkMoved handles an adopted camera seen at a device address other than
// its own (loop goroutine).
func (x *discovery) checkMoved(dev onvif.Device, source string) {
	candidates := reachableXAddrs(dev)
	if len(candidates) == 0 || x.following[dev.URN] {
		return
	}
	var cam *store.Camera
	_ = x.d.store.View(context.Background(), func(tx *store.Tx) error {
		cams, err := tx.Cameras()
		for i := range cams {
			if cams[i].ONVIF != nil && cams[i].ONVIF.URN == dev.URN {
				cam = &cams[i]
				break
			}
		}
		return err
	})
	if cam == nil || slices.Contains(candidates, cam.ONVIF.XAddr) {
		return // not adopted, or still (also) answering where it was adopted
	}
	// Addresses not yet recorded: replies naming the URN are merged, so a
	// spoofer's and the real camera's can arrive together, and a pending
	// move keeps every address it has seen so neither hides the other.
	var fresh []string
	for _, c := range candidates {
		if pm := cam.PendingMove; pm == nil || (pm.XAddr != c && !slices.Contains(pm.Others, c)) {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) == 0 {
		return // already pending; nothing new to say
	}
	name, urn, pin := cam.Name, dev.URN, cam.ONVIF.CertSHA256
	if pin == "" {
		x.holdMove(name, urn, fresh, source, "discovery messages are unauthenticated and the camera has no pinned certificate")
		return
	}
	var tls, plain []string
	for _, c := range fresh {
		if strings.HasPrefix(c, "https://") {
			tls = append(tls, c)
		} else {
			plain = append(plain, c)
		}
	}
	if len(plain) > 0 {
		x.holdMove(name, urn, plain, source, "the camera was adopted over HTTPS and the new address is plain HTTP")
	}
	if len(tls) == 0 {
		return
	}
	x.following[urn] = true
	oldXAddr := cam.ONVIF.XAddr
	x.log.Info("adopted camera announced at a new address; checking its pinned certificate before anything else", "camera", name, "urn", urn, "old", oldXAddr, "new", strings.Join(tls, " "))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var res onvif.AdoptResult
		var proven, reason string
		for _, xaddr := range tls {
			r, why := x.d.proveIdentity(ctx, name, xaddr, pin)
			if why == "" {
				res, proven = r, xaddr
				break
			}
			if reason == "" {
				reason = why
			}
		}
		x.d.post(context.Background(), func() {
			delete(x.following, urn)
			if proven == "" {
				x.holdMove(name, urn, tls, source, reason)
				return
			}
			if _, err := x.d.applyMove(context.Background(), systemCaller(), "camera.follow", name, urn, oldXAddr, proven, res); err != nil {
				x.log.Warn("following a camera with a proven identity failed; keeping its old addresses", "camera", name, "error", err)
			}
		})
	}()
}

// proveIdentity checks that the device at xaddr is the pinned camera and
// re-reads its streams there; a non-empty reason says why not. The first
// contact is a TLS handshake that sends nothing; credentials travel only
// inside a TLS session whose certificate is the pinned one.
func (d *Daemon) proveIdentity(ctx context.Context, name, xaddr, pin string) (onvif.AdoptResult, string) {
	fp, err := onvif.FetchCertFingerprint(ctx, xaddr)
	if err != nil {
		return onvif.AdoptResult{}, fmt.Sprintf("no TLS handshake with the new address (%v)", err)
	}
	if fp != pin {
		return onvif.AdoptResult{}, fmt.Sprintf("the new address presents a different TLS certificate (sha256 %s, pinned %s)", shortFP(fp), shortFP(pin))
	}
	opts, err := d.cameraClientOptions(ctx, name)
	if err != nil {
		return onvif.AdoptResult{}, fmt.Sprintf("cannot read the camera's credentials (%v)", err)
	}
	cl, err := onvif.NewClient(xaddr, opts)
	if err != nil {
		return onvif.AdoptResult{}, err.Error()
	}
	addrs, err := cl.GetNetworkAddresses(ctx)
	host := hostOf(xaddr)
	if err != nil {
		return onvif.AdoptResult{}, fmt.Sprintf("the camera did not say which addresses it has (%v)", err)
	}
	if !slices.Contains(addrs, host) {
		return onvif.AdoptResult{}, fmt.Sprintf("the camera reports its addresses as %s, not %s (a relay in front of it, or NAT)", strings.Join(addrs, ","), host)
	}
	res, err := onvif.Adopt(ctx, xaddr, opts)
	if err != nil {
		return onvif.AdoptResult{}, fmt.Sprintf("re-reading the camera's streams failed (%v)", err)
	}
	return res, ""
}

// holdMove records a pending move (loop goroutine): audited, logged, and no
// configuration change, so nothing restarts and nothing is sent anywhere.
func (x *discovery) holdMove(name, urn string, xaddrs []string, source, reason string) {
	b := x.held[name]
	if time.Since(b.start) > holdWindow {
		if b.dropped > 0 {
			x.log.Warn("more addresses were announced for an adopted camera than were recorded; its pending move is marked truncated, verify its address out of band",
				"camera", name, "urn", urn, "not_recorded", b.dropped)
		}
		b = holdBudget{start: time.Now()}
	}
	if b.n >= holdBurst {
		// Never silent: the addresses already kept stay, the move says the
		// list is incomplete (one write a window), and the log says so.
		b.dropped += len(xaddrs)
		if !b.marked {
			b.marked = true
			x.markTruncated(name, urn)
			x.log.Warn("too many addresses announced for an adopted camera this minute; keeping the first ones and marking its pending move truncated (verify out of band)",
				"camera", name, "urn", urn, "first_not_recorded", strings.Join(xaddrs, " "))
		}
		x.held[name] = b
		return
	}
	b.n++
	x.held[name] = b
	var pm store.PendingMove
	_, err := x.d.mutateLocked(context.Background(), mutation{
		caller: systemCaller(), action: "camera.move_pending", target: name,
		args: map[string]string{"urn": urn, "xaddr": strings.Join(xaddrs, " "), "source": source, "reason": reason},
		apply: func(tx *store.Tx, ch *changeSet) error {
			c, err := tx.Camera(name)
			if err != nil {
				return err
			}
			if c.PendingMove != nil {
				pm = *c.PendingMove
				for _, xa := range xaddrs {
					if xa != pm.XAddr && !slices.Contains(pm.Others, xa) {
						pm.Others = append(pm.Others, xa)
					}
				}
				pm.Reason = reason
			} else {
				pm = store.PendingMove{XAddr: xaddrs[0], Others: xaddrs[1:], SeenAt: time.Now().UTC(), Source: source, Reason: reason}
			}
			return tx.SetCameraPendingMove(name, &pm)
		},
	})
	if err != nil {
		x.log.Warn("cannot record a camera's pending move", "camera", name, "error", err)
		return
	}
	x.log.Warn("adopted camera announced at another address; not followed, nothing sent there",
		"camera", name, "urn", urn, "seen_at", strings.Join(xaddrs, " "), "source", source, "reason", reason,
		"confirm", "camwarden camera move "+name+" --to "+hostPort(xaddrs[0]))
}

// markTruncated flags a camera's pending move as incomplete (loop
// goroutine): more addresses were announced than recorded.
func (x *discovery) markTruncated(name, urn string) {
	_, err := x.d.mutateLocked(context.Background(), mutation{
		caller: systemCaller(), action: "camera.move_pending", target: name,
		args: map[string]string{"urn": urn, "truncated": "true"},
		apply: func(tx *store.Tx, ch *changeSet) error {
			c, err := tx.Camera(name)
			if err != nil || c.PendingMove == nil || c.PendingMove.Truncated {
				return err
			}
			pm := *c.PendingMove
			pm.Truncated = true
			return tx.SetCameraPendingMove(name, &pm)
		},
	})
	if err != nil {
		x.log.Warn("cannot mark a camera's pending move truncated", "camera", name, "error", err)
	}
}

// cameraClientOptions are the ONVIF client options for a stored camera:
// its credentials and, when it has one, its pinned certificate.
func (d *Daemon) cameraClientOptions(ctx context.Context, name string) (onvif.ClientOptions, error) {
	opts := onvif.ClientOptions{Logger: d.log.Named("onvif")}
	err := d.store.View(ctx, func(tx *store.Tx) error {
		c, err := tx.Camera(name)
		if err != nil {
			return err
		}
		opts.Username = c.Username
		if c.ONVIF != nil {
			opts.CertSHA256 = c.ONVIF.CertSHA256
		}
		if c.HasPassword {
			opts.Password, err = tx.CameraPassword(name)
		}
		return err
	})
	return opts, err
}

// applyMove points an adopted camera at newXAddr with the stream addresses
// read there, records the certificate seen, and clears any pending move
// (loop goroutine). Only that camera's pullers restart. A recorder's
// channel moves with every other channel of its recorder (one device, one
// address), each taking its own channel's stream addresses.
func (d *Daemon) applyMove(ctx context.Context, caller api.Caller, action, name, urn, oldXAddr, newXAddr string, res onvif.AdoptResult) (apitype.MutationResult, error) {
	streamsOf := func(channel int) map[string]string {
		byName := map[string]string{}
		streams := res.Streams
		if channel > 0 {
			streams = nil
			for _, ch := range res.Channels {
				if ch.Number == channel {
					streams = ch.Streams
				}
			}
		}
		for _, s := range streams {
			byName[s.Name] = s.URI.URI
		}
		return byName
	}
	move := func(c *store.Camera) error {
		if c.ONVIF == nil || c.ONVIF.URN != urn {
			return apitype.Errorf(apitype.CodeConflict, "camera %q is no longer the device %s", c.Name, orNone(urn))
		}
		if c.ONVIF.XAddr != oldXAddr {
			return apitype.Errorf(apitype.CodeConflict, "camera %q changed address meanwhile; try again", c.Name)
		}
		c.ONVIF.XAddr = newXAddr
		c.ONVIF.CertSHA256 = res.CertSHA256
		c.PendingMove = nil
		byName := streamsOf(c.Channel)
		for i := range c.Streams {
			if u, ok := byName[c.Streams[i].Name]; ok {
				c.Streams[i].URL = u
			}
		}
		return nil
	}
	out, err := d.mutateLocked(ctx, mutation{
		caller: caller, action: action, target: name,
		args: map[string]string{"urn": urn, "old_xaddr": oldXAddr, "new_xaddr": newXAddr, "cert_sha256": res.CertSHA256},
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			cam, err := tx.Camera(name)
			if err != nil {
				return err
			}
			names := []string{name}
			if cam.Recorder != "" {
				cams, err := tx.Cameras()
				if err != nil {
					return err
				}
				names = names[:0]
				for _, c := range cams {
					if c.Recorder == cam.Recorder {
						names = append(names, c.Name)
					}
				}
			}
			for _, n := range names {
				if err := tx.UpdateCamera(n, move); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err == nil {
		d.log.Info("camera moved; only its pullers restart", "camera", name, "urn", urn, "xaddr", newXAddr, "action", action)
	}
	return out, err
}

// CameraMove is camwarden camera move NAME --to ADDR: the admin confirms
// the camera's new address, which then gets its credentials.
func (b backend) CameraMove(ctx context.Context, c api.Caller, req apitype.CameraMoveRequest) (*apitype.MutationResult, error) {
	d := b.d
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var cam store.Camera
	if err := d.store.View(ctx, func(tx *store.Tx) (err error) { cam, err = tx.Camera(req.Name); return }); err != nil {
		return nil, toAPIError(err)
	}
	if cam.ONVIF == nil || cam.ONVIF.XAddr == "" {
		return nil, invalid("camera %q was added by RTSP URL, not adopted: change its address with camwarden camera set %s --url", req.Name, req.Name)
	}
	xaddr, err := moveTarget(cam, req.To)
	if err != nil {
		return nil, err
	}
	// Moving to the camera's current address is allowed: it re-reads the
	// streams there and dismisses a pending move the admin found bogus.
	if pin := cam.ONVIF.CertSHA256; pin != "" {
		if !strings.HasPrefix(xaddr, "https://") {
			return nil, invalid("camera %q was adopted over HTTPS with a pinned certificate: moving it to plain HTTP would send its credentials unprotected; give an https:// address, or remove and re-adopt the camera", req.Name)
		}
		fp, err := onvif.FetchCertFingerprint(ctx, xaddr)
		if err != nil {
			d.auditFailure(ctx, c, "camera.move", req.Name, "failed: unreachable")
			return nil, apitype.Errorf(apitype.CodeUnavailable, "cannot reach %s: %v", xaddr, err)
		}
		if fp != pin {
			d.auditFailure(ctx, c, "camera.move", req.Name, "failed: certificate")
			return nil, apitype.Errorf(apitype.CodeConflict, "the device at %s presents a different TLS certificate (sha256 %s, pinned %s); nothing was sent to it. "+
				"If the camera's certificate really changed, remove and re-adopt the camera", xaddr, shortFP(fp), shortFP(pin))
		}
	}
	opts, err := d.cameraClientOptions(ctx, req.Name)
	if err != nil {
		return nil, toAPIError(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	res, err := onvif.Adopt(qctx, xaddr, opts)
	cancel()
	if err != nil {
		d.auditFailure(ctx, c, "camera.move", req.Name, adoptCode(err))
		if errors.Is(err, onvif.ErrCertMismatch) {
			return nil, apitype.Errorf(apitype.CodeConflict, "the device at %s presents a different TLS certificate; nothing was sent to it", xaddr)
		}
		return nil, adoptError(err, xaddr)
	}
	var out apitype.MutationResult
	var merr error
	if err := d.do(ctx, func() {
		out, merr = d.applyMove(ctx, c, "camera.move", req.Name, cam.ONVIF.URN, cam.ONVIF.XAddr, xaddr, res)
	}); err != nil {
		return nil, apitype.Errorf(apitype.CodeUnavailable, "daemon busy or stopping: %v", err)
	}
	if merr != nil {
		return nil, merr
	}
	return b.cameraResult(ctx, out, req.Name)
}

// moveTarget turns camera move --to into a device service URL: a full
// http(s) URL as given; HOST[:PORT] naming the pending move's address takes
// that address whole; otherwise the stored scheme, port and path are kept
// with the new host (and port).
func moveTarget(cam store.Camera, to string) (string, error) {
	to = strings.TrimSpace(to)
	if to == "" {
		return "", invalid("give the camera's new address: --to HOST[:PORT] or --to http(s)://HOST[:PORT]/PATH")
	}
	if strings.Contains(to, "://") {
		u, err := url.Parse(to)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
			return "", invalid("invalid --to %q: use HOST[:PORT] or http(s)://HOST[:PORT]/onvif/device_service without credentials", apitype.RedactURL(to))
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/onvif/device_service"
		}
		return u.String(), nil
	}
	if strings.ContainsAny(to, "/@ ?#") {
		return "", invalid("invalid --to %q: use HOST[:PORT] or a full http(s):// URL", apitype.RedactURL(to))
	}
	if pm := cam.PendingMove; pm != nil {
		for _, xa := range append([]string{pm.XAddr}, pm.Others...) {
			if hostPort(xa) == to || hostOf(xa) == to {
				return xa, nil
			}
		}
	}
	u, err := url.Parse(cam.ONVIF.XAddr)
	if err != nil {
		return "", invalid("the camera's stored address is unusable; give a full http(s):// URL")
	}
	host, port, err := net.SplitHostPort(to)
	if err != nil {
		host, port = strings.Trim(to, "[]"), u.Port()
	}
	if host == "" {
		return "", invalid("invalid --to %q: no host", to)
	}
	if port != "" {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return "", invalid("invalid --to %q: bad port", to)
		}
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	} else {
		u.Host = host
	}
	return u.String(), nil
}

// pendingMoveView is what admins see of a pending move, with the command
// that confirms it.
func pendingMoveView(camera string, pm *store.PendingMove) *apitype.PendingMove {
	if pm == nil {
		return nil
	}
	addr := hostPort(pm.XAddr)
	v := &apitype.PendingMove{XAddr: apitype.StripUserinfo(pm.XAddr), Addr: addr, SeenAt: pm.SeenAt, Source: pm.Source, Reason: pm.Reason,
		Hint: fmt.Sprintf("moved? seen at %s, confirm with `camwarden camera move %s --to %s`", addr, camera, addr)}
	for _, o := range pm.Others {
		v.Also = append(v.Also, hostPort(o))
	}
	if len(v.Also) > 0 {
		v.Hint += fmt.Sprintf(" (also announced at %s: only one of these can be the camera)", strings.Join(v.Also, ", "))
	}
	if pm.Truncated {
		v.Truncated = true
		v.Hint += "; more addresses announced than listed: verify the camera's address out of band"
	}
	return v
}

func hostOf(xaddr string) string {
	u, err := url.Parse(xaddr)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// hostPort is the HOST:PORT of a URL, the default port of its scheme
// filled in.
func hostPort(xaddr string) string {
	u, err := url.Parse(xaddr)
	if err != nil {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
