package daemon

import (
	"context"
	"net"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// maxDiscovered bounds the device list against a flood of fake Hellos.
const maxDiscovered = 4096

// discovery keeps the list of ONVIF devices current: a Hello/Bye watcher,
// a periodic multicast re-probe, and admin-requested probes all feed the
// loop goroutine, which alone touches devices.
type discovery struct {
	d   *Daemon
	log hclog.Logger

	devices     map[string]onvif.Device // by URN; loop-owned
	renumbering map[string]bool         // URNs being re-queried; loop-owned

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newDiscovery(d *Daemon) *discovery {
	return &discovery{d: d, log: d.log.Named("discovery"), devices: map[string]onvif.Device{}, renumbering: map[string]bool{}}
}

func discoveryOff(cfg Config) bool {
	return len(cfg.DiscoveryInterfaces) == 1 && cfg.DiscoveryInterfaces[0] == "none"
}

// restart (re)starts the background watcher and prober for cfg.
func (x *discovery) restart(cfg Config) {
	x.stop()
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
						x.d.publishDevices(x.devices)
						x.log.Info("device said Bye", "urn", ev.Device.URN)
					}
					return
				}
				x.merge([]onvif.Device{ev.Device})
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
			x.d.post(ctx, func() { x.merge(devs) })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// merge records devices (loop goroutine), publishes them in the snapshot
// and notices adopted cameras that answer from a new address.
func (x *discovery) merge(devs []onvif.Device) {
	defer x.d.publishDevices(x.devices)
	for _, dev := range devs {
		if dev.URN == "" {
			continue
		}
		old, known := x.devices[dev.URN]
		if !known && len(x.devices) >= maxDiscovered {
			continue
		}
		if known {
			dev.Interfaces = unionStrings(old.Interfaces, dev.Interfaces)
		}
		x.devices[dev.URN] = dev
		if !known {
			x.log.Info("device discovered", "urn", dev.URN, "name", dev.Name, "addr", dev.Addr)
		}
		x.checkRenumbered(dev)
	}
}

// sortedDevices returns the devices sorted by URN.
func sortedDevices(devices map[string]onvif.Device) []onvif.Device {
	out := make([]onvif.Device, 0, len(devices))
	for _, d := range devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URN < out[j].URN })
	return out
}

// reachableXAddr picks the device service address to use: the host is
// always the one the reply came from (cameras report 0.0.0.0, NAT or stale
// hosts); the reported port and path are kept.
func reachableXAddr(dev onvif.Device) string {
	for _, xa := range dev.XAddrs {
		u, err := url.Parse(xa)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		if dev.Addr != "" && u.Hostname() != dev.Addr {
			if port := u.Port(); port != "" {
				u.Host = net.JoinHostPort(dev.Addr, port)
			} else {
				u.Host = dev.Addr
			}
		}
		return u.String()
	}
	return ""
}

// checkRenumbered starts a re-query of an adopted camera seen at a device
// address other than the one stored (DHCP renumbering, a new port after a
// restart). Only that camera's pullers restart.
func (x *discovery) checkRenumbered(dev onvif.Device) {
	xaddr := reachableXAddr(dev)
	if xaddr == "" || x.renumbering[dev.URN] {
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
	if cam == nil || cam.ONVIF.XAddr == xaddr {
		return
	}
	x.renumbering[dev.URN] = true
	name, urn, oldXAddr := cam.Name, dev.URN, cam.ONVIF.XAddr
	x.log.Info("adopted camera answers at a new address; re-reading its stream addresses", "camera", name, "urn", urn, "old", oldXAddr, "new", xaddr)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := x.d.queryDevice(ctx, name, xaddr)
		x.d.post(context.Background(), func() {
			delete(x.renumbering, urn)
			if err != nil {
				x.log.Warn("re-reading a renumbered camera failed; keeping its old addresses", "camera", name, "error", err)
				return
			}
			if err := x.d.applyRenumber(name, urn, oldXAddr, xaddr, res); err != nil {
				x.log.Warn("updating a renumbered camera failed", "camera", name, "error", err)
			}
		})
	}()
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
