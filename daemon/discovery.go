package daemon

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// maxDiscovered bounds the device list against a flood of fake Hellos;
// entries not seen for deviceTTL (at least minDeviceTTL) expire, and when
// the list is full the oldest entry of a device not adopted makes room.
const (
	maxDiscovered = 4096
	evictBatch    = maxDiscovered / 16
	minDeviceTTL  = 15 * time.Minute
)

// discovery keeps the list of ONVIF devices current: a Hello/Bye watcher,
// a periodic multicast re-probe, and admin-requested probes all feed the
// loop goroutine, which alone touches devices.
type discovery struct {
	d   *Daemon
	log hclog.Logger

	devices   map[string]onvif.Device // by URN; loop-owned
	following map[string]bool         // URNs whose pinned certificate is being checked; loop-owned
	held      map[string]holdBudget   // camera -> pending moves recorded this minute; loop-owned
	ttl       time.Duration           // entries not seen for this long expire; loop-owned
	shown     map[string]string       // URN -> the --device address the last discover answer showed; loop-owned
	expired   time.Time               // when expire last ran; loop-owned
	published time.Time               // when the device list was last published; loop-owned
	pending   bool                    // a delayed publish is scheduled; loop-owned

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newDiscovery(d *Daemon) *discovery {
	return &discovery{d: d, log: d.log.Named("discovery"), devices: map[string]onvif.Device{},
		following: map[string]bool{}, held: map[string]holdBudget{}, ttl: minDeviceTTL, shown: map[string]string{}}
}

func discoveryOff(cfg Config) bool {
	return len(cfg.DiscoveryInterfaces) == 1 && cfg.DiscoveryInterfaces[0] == "none"
}

// restart (re)starts the background watcher and prober for cfg.
func (x *discovery) restart(cfg Config) {
	x.stop()
	// A device answers every periodic probe: missing three means it is gone.
	x.ttl = max(3*cfg.DiscoveryInterval, minDeviceTTL)
	if discoveryOff(cfg) {
		x.log.Info("multicast discovery is off; directed probes (camwarden discover --target) still work")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	opts := onvif.ProbeOptions{Interfaces: cfg.DiscoveryInterfaces, Logger: x.log}
	x.wg.Add(2)
	go func() {
		defer x.wg.Done()
		x.watch(ctx, opts)
	}()
	go func() {
		defer x.wg.Done()
		x.probeEvery(ctx, opts, cfg.DiscoveryInterval)
	}()
}

func (x *discovery) stop() {
	if x.cancel != nil {
		x.cancel()
		x.wg.Wait()
		x.cancel = nil
	}
}

func (x *discovery) watch(ctx context.Context, opts onvif.ProbeOptions) {
	w, err := onvif.NewWatcher(opts)
	if err != nil {
		x.log.Warn("cannot listen for ONVIF Hello/Bye; relying on periodic probes", "error", err)
		return
	}
	events := make(chan onvif.Event, 64)
	go func() {
		if err := w.Run(ctx, events); err != nil && ctx.Err() == nil {
			x.log.Warn("Hello/Bye listener stopped", "error", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			x.d.post(ctx, func() {
				if ev.Kind == onvif.Bye {
					if _, ok := x.devices[ev.Device.URN]; ok {
						delete(x.devices, ev.Device.URN)
						delete(x.shown, ev.Device.URN)
						x.publish(false)
						x.log.Info("device said Bye", "urn", ev.Device.URN)
					}
					return
				}
				x.merge([]onvif.Device{ev.Device}, "hello")
			})
		}
	}
}

func (x *discovery) probeEvery(ctx context.Context, opts onvif.ProbeOptions, every time.Duration) {
	for {
		devs, err := onvif.Probe(ctx, opts)
		if err != nil && ctx.Err() == nil {
			x.log.Warn("discovery probe failed", "error", err)
		}
		if len(devs) > 0 {
			x.d.post(ctx, func() { x.merge(devs, "probe") })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// merge records devices (loop goroutine), publishes them in the snapshot
// and notices adopted cameras that answer from a new address. source says
// where the devices came from (hello, probe, discover) for the audit log.
func (x *discovery) merge(devs []onvif.Device, source string) {
	defer x.publish(source == "discover")
	if now := time.Now(); now.Sub(x.expired) > time.Second {
		x.expire(now)
		x.expired = now
	}
	var adopted map[string]bool
	for _, dev := range devs {
		if dev.URN == "" {
			continue
		}
		// An adopted camera's sighting is checked whether or not the
		// table has room for it.
		x.checkMoved(dev, source)
		old, known := x.devices[dev.URN]
		if !known && len(x.devices) >= maxDiscovered {
			if adopted == nil {
				adopted = x.adoptedURNs()
			}
			if !x.evictOldest(adopted) && !adopted[dev.URN] {
				continue
			}
		}
		merged := dev
		if known {
			// Merge, never overwrite: the URN is public, and a spoofer's
			// sighting must stay visible beside the camera's own.
			merged = old
			merged.Merge(dev)
		}
		x.devices[dev.URN] = merged
		if !known {
			x.log.Info("device discovered", "urn", dev.URN, "name", dev.Name, "addr", dev.Addr)
		} else if len(old.Addrs) == 1 && len(merged.Addrs) > 1 { // once, when it becomes ambiguous
			x.log.Warn("device announced from another source address; camera adopt --device refuses it until you give --xaddr",
				"urn", dev.URN, "sources", strings.Join(merged.Addrs, " "))
		}
	}
}

// publish swaps the device list into the snapshot (loop goroutine): at
// once when asked (a discover answer reads it), otherwise at most once a
// second, so a flood of Hellos does not copy a 4,096-entry map per message.
func (x *discovery) publish(now bool) {
	if now || time.Since(x.published) >= time.Second {
		x.published = time.Now()
		x.d.publishDevices(x.devices)
		return
	}
	if !x.pending {
		x.pending = true
		time.AfterFunc(time.Second, func() {
			x.d.post(context.Background(), func() {
				x.pending = false
				x.published = time.Now()
				x.d.publishDevices(x.devices)
			})
		})
	}
}

// expire drops devices not seen for x.ttl (loop goroutine).
func (x *discovery) expire(now time.Time) {
	for urn, dev := range x.devices {
		if !dev.LastSeen.IsZero() && now.Sub(dev.LastSeen) > x.ttl {
			delete(x.devices, urn)
			delete(x.shown, urn)
		}
	}
}

// evictOldest drops the least recently seen devices that are not adopted
// cameras, evictBatch of them so a flood of new URNs costs one scan per
// batch rather than one per message; false when there is none (loop
// goroutine).
func (x *discovery) evictOldest(adopted map[string]bool) bool {
	var cands []onvif.Device
	for urn, dev := range x.devices {
		if !adopted[urn] {
			cands = append(cands, dev)
		}
	}
	slices.SortFunc(cands, func(a, b onvif.Device) int { return a.LastSeen.Compare(b.LastSeen) })
	for _, dev := range cands[:min(evictBatch, len(cands))] {
		delete(x.devices, dev.URN)
		delete(x.shown, dev.URN)
	}
	return len(cands) > 0
}

// adoptedURNs are the URNs of the adopted cameras.
func (x *discovery) adoptedURNs() map[string]bool {
	out := map[string]bool{}
	_ = x.d.store.View(context.Background(), func(tx *store.Tx) error {
		cams, err := tx.Cameras()
		for _, c := range cams {
			if c.ONVIF != nil && c.ONVIF.URN != "" {
				out[c.ONVIF.URN] = true
			}
		}
		return err
	})
	return out
}

// sortedDevices returns the devices in the order of the names they report
// (camsim-2 before camsim-10), then by URN: the order an operator adopts
// them in, rather than the order of random URNs.
func sortedDevices(devices map[string]onvif.Device) []onvif.Device {
	out := make([]onvif.Device, 0, len(devices))
	for _, d := range devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return naturalLess(out[i].Name, out[j].Name)
		}
		return out[i].URN < out[j].URN
	})
	return out
}

// naturalLess compares strings with runs of digits compared as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// deviceXAddr is the one device service address camera adopt --device
// may use for dev, the address discover shows for it; ok is false with the
// reason when the sightings disagree. The address used is the address
// shown and confirmed: the host an XAddr names must be the host the
// message came from, and every message naming the URN must have come from
// that one host. A spoofer announcing a camera's URN (and the camera's own
// XAddr) from elsewhere makes --device refuse rather than pick.
func deviceXAddr(dev onvif.Device) (xaddr, why string) {
	var sources []string
	for _, a := range append(append([]string(nil), dev.Addrs...), dev.Addr) {
		if ip := net.ParseIP(a); a != "" && (ip == nil || !ip.IsUnspecified()) && !slices.Contains(sources, a) {
			sources = append(sources, a)
		}
	}
	var usable []string
	for _, xa := range dev.XAddrs {
		u, err := url.Parse(xa)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		u.User = nil
		if s := u.String(); !slices.Contains(usable, s) {
			usable = append(usable, s)
		}
	}
	if len(usable) == 0 {
		return "", "it announced no usable device service address"
	}
	if len(sources) > 1 {
		return "", fmt.Sprintf("it was announced from several addresses (%s): the URN is public, so one may be an impostor", strings.Join(sources, ", "))
	}
	hosts := map[string]bool{}
	for _, u := range usable {
		hosts[hostOf(u)] = true
	}
	if len(sources) == 1 {
		for h := range hosts {
			if h != sources[0] {
				return "", fmt.Sprintf("the announcement came from %s but names the address %s", sources[0], h)
			}
		}
	} else if len(hosts) != 1 || hosts["0.0.0.0"] {
		return "", "the announcement does not say where the device is"
	}
	return usable[0], ""
}

// showDevices records the --device address of each device a discover
// answer lists (loop goroutine): camera adopt --device goes only there.
func (x *discovery) showDevices(devs []onvif.Device) {
	for _, dev := range devs {
		if xa, _ := deviceXAddr(dev); xa != "" {
			x.shown[dev.URN] = xa
		} else {
			delete(x.shown, dev.URN)
		}
	}
}

// resolveDevice is the address camera adopt --device URN uses (loop
// goroutine): the one the last discover answer showed for the URN, the
// address the admin saw and confirmed, provided the device still resolves
// to it. Background Hellos alone never decide where credentials go.
func (x *discovery) resolveDevice(urn string) (string, error) {
	dev, found := x.devices[urn]
	if !found {
		return "", apitype.Errorf(apitype.CodeNotFound, "device %s has not been discovered: run camwarden discover (with --target HOST for another subnet) first, or use --xaddr", urn)
	}
	xa, why := deviceXAddr(dev)
	if why != "" {
		return "", apitype.Errorf(apitype.CodeConflict, "device %s cannot be adopted by --device: %s; nothing was sent. Check on the camera which address is its own and adopt it with --xaddr URL (candidates: %s)",
			urn, why, strings.Join(deviceCandidates(dev), ", "))
	}
	shown := x.shown[urn]
	if shown == "" {
		return "", apitype.Errorf(apitype.CodeConflict, "device %s has not been listed by camwarden discover yet: run it, check the address it shows (%s), then adopt; nothing was sent", urn, xa)
	}
	if shown != xa {
		return "", apitype.Errorf(apitype.CodeConflict, "device %s is now announced at %s, not %s as camwarden discover showed: run discover again and check the address; nothing was sent", urn, xa, shown)
	}
	return xa, nil
}

// deviceCandidates are the addresses an ambiguous device may be at: those
// its XAddrs name and those with each source host, for the admin to check.
func deviceCandidates(dev onvif.Device) []string {
	var out []string
	for _, xa := range dev.XAddrs {
		if u, err := url.Parse(xa); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" {
			if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsUnspecified() {
				u.User = nil
				out = append(out, u.String())
			}
		}
	}
	return unionStrings(out, reachableXAddrs(dev))
}

// reachableXAddrs is every usable device service address of dev with the
// host replaced by each source the replies came from (cameras report
// 0.0.0.0, NAT or stale hosts); the reported port and path are kept.
// Replies naming the same URN are merged, so a spoofed one and the real
// camera's can both be here: these are hints, never where --device goes.
func reachableXAddrs(dev onvif.Device) []string {
	sources := append([]string(nil), dev.Addrs...)
	if dev.Addr != "" && !slices.Contains(sources, dev.Addr) {
		sources = append(sources, dev.Addr)
	}
	if len(sources) == 0 {
		sources = []string{""}
	}
	var out []string
	for _, src := range sources {
		for _, xa := range dev.XAddrs {
			u, err := url.Parse(xa)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				continue
			}
			// An unspecified source (0.0.0.0: multicast looped back inside a
			// namespace) says nothing about where the device is.
			if ip := net.ParseIP(src); ip != nil && !ip.IsUnspecified() && u.Hostname() != src {
				if port := u.Port(); port != "" {
					u.Host = net.JoinHostPort(src, port)
				} else {
					u.Host = src
				}
			}
			u.User = nil // never carried on: a device's userinfo is nothing we send
			if s := u.String(); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func unionStrings(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
