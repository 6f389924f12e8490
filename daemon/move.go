package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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
		return onvif.AdoptResult{}, fmt.Sprintf("the new address presents a different TLS certificate (sha256 %s, pinned %s)", onvif.ShortFingerprint(fp), onvif.ShortFingerprint(pin))
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
