package daemon

import (
	"context"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/onvif"
)

// maxDiscovered bounds the device list against a flood of fake Hellos.
const maxDiscovered = 4096

// discovery keeps the list of ONVIF devices current: a Hello/Bye watcher,
// a periodic multicast re-probe, and admin-requested probes all feed the
// loop goroutine, which alone touches devices.
type discovery struct {
	d   *Daemon
	log hclog.Logger

	devices   map[string]onvif.Device // by URN; loop-owned
	following map[string]bool         // URNs whose pinned certificate is being checked; loop-owned
	held      map[string]holdBudget   // camera -> pending moves recorded this minute; loop-owned

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newDiscovery(d *Daemon) *discovery {
	return &discovery{d: d, log: d.log.Named("discovery"), devices: map[string]onvif.Device{},
		following: map[string]bool{}, held: map[string]holdBudget{}}
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
		x.checkMoved(dev, source)
	}
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

// reachableXAddr picks the device service address to use: the host is
// always the one the reply came from (cameras report 0.0.0.0, NAT or stale
// hosts); the reported port and path are kept.
func reachableXAddr(dev onvif.Device) string {
	if all := reachableXAddrs(dev); len(all) > 0 {
		return all[0]
	}
	return ""
}

// reportedHosts are the distinct hosts dev's XAddrs name (0.0.0.0 aside).
func reportedHosts(dev onvif.Device) []string {
	var out []string
	for _, xa := range dev.XAddrs {
		u, err := url.Parse(xa)
		if err != nil || u.Hostname() == "" {
			continue
		}
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
			continue
		}
		if !slices.Contains(out, u.Hostname()) {
			out = append(out, u.Hostname())
		}
	}
	return out
}

// reachableXAddrs is every usable device service address of dev, fixed up
// like reachableXAddr. Replies naming the same URN are merged, so a spoofed
// one and the real camera's can both be here.
func reachableXAddrs(dev onvif.Device) []string {
	var out []string
	for _, xa := range dev.XAddrs {
		u, err := url.Parse(xa)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		// An unspecified source (0.0.0.0: multicast looped back inside a
		// namespace) says nothing about where the device is.
		if ip := net.ParseIP(dev.Addr); ip != nil && !ip.IsUnspecified() && u.Hostname() != dev.Addr {
			if port := u.Port(); port != "" {
				u.Host = net.JoinHostPort(dev.Addr, port)
			} else {
				u.Host = dev.Addr
			}
		}
		u.User = nil // never carried on: a device's userinfo is nothing we send
		if s := u.String(); !slices.Contains(out, s) {
			out = append(out, s)
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
