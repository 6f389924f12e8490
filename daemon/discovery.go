package daemon

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

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
