// The admin side of following a camera: camera move, applying a confirmed
// move, and how a pending move is shown.
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
		if diff := identityMismatch(c.Name, *c.ONVIF, res.Info); diff != "" {
			return apitype.Errorf(apitype.CodeConflict, "the device at %s reports %s: not moved. %s", hostPort(newXAddr), diff, replaceHint(c.Name))
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
			cams, err := tx.Cameras()
			if err != nil {
				return err
			}
			if other, ok := cameraUsingAddress(cams, newXAddr, func(o store.Camera) bool { return sameDeviceRecord(o, cam) }); ok {
				return apitype.Errorf(apitype.CodeConflict, "%s is the address of %s, already adopted: camera %q not moved. %s", hostPort(newXAddr), adoptedName(other), name, replaceHint(name))
			}
			names := []string{name}
			if cam.Recorder != "" {
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
	// Nothing is sent to an address that is another adopted camera's, nor
	// to one discovery saw announced by other devices only.
	var cams []store.Camera
	if err := d.store.View(ctx, func(tx *store.Tx) (err error) { cams, err = tx.Cameras(); return }); err != nil {
		return nil, toAPIError(err)
	}
	if other, ok := cameraUsingAddress(cams, xaddr, func(o store.Camera) bool { return sameDeviceRecord(o, cam) }); ok {
		d.auditFailure(ctx, c, "camera.move", req.Name, "refused: address in use")
		return nil, apitype.Errorf(apitype.CodeConflict, "%s is the address of %s, already adopted: camera %q was not moved; nothing was sent there. %s",
			hostPort(xaddr), adoptedName(other), req.Name, replaceHint(req.Name))
	}
	if urns := discoveredURNsAt(d.snap.Load().devices, xaddr); cam.ONVIF.URN != "" && len(urns) > 0 && !slices.Contains(urns, cam.ONVIF.URN) {
		d.auditFailure(ctx, c, "camera.move", req.Name, "refused: identity")
		return nil, apitype.Errorf(apitype.CodeConflict, "the device at %s announces itself as %s, camera %q was adopted as %s: not moved; nothing was sent there. %s",
			hostPort(xaddr), strings.Join(urns, ", "), req.Name, cam.ONVIF.URN, replaceHint(req.Name))
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
				"If the camera's certificate really changed, remove and re-adopt the camera", xaddr, onvif.ShortFingerprint(fp), onvif.ShortFingerprint(pin))
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
	if diff := identityMismatch(req.Name, *cam.ONVIF, res.Info); diff != "" {
		d.auditFailure(ctx, c, "camera.move", req.Name, "refused: identity")
		return nil, apitype.Errorf(apitype.CodeConflict, "the device at %s reports %s: not moved, nothing changed. %s",
			hostPort(xaddr), diff, replaceHint(req.Name))
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
	if err := apitype.CheckMoveTarget(to); err != nil {
		return "", err
	}
	to = strings.TrimSpace(to)
	if strings.Contains(to, "://") {
		u, err := url.Parse(to) // parses: CheckMoveTarget parsed it
		if err != nil {
			return "", invalid("invalid --to: %s", apitype.RedactParseError(err))
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/onvif/device_service"
		}
		return u.String(), nil
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
	host, port, err := net.SplitHostPort(to) // host and port were checked by CheckMoveTarget
	if err != nil {
		host, port = strings.Trim(to, "[]"), u.Port()
	}
	if port != "" {
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

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
