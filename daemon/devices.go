// The discovered-device table as an operator sees it: order, the one
// address --device uses, and the addresses a move may be hinted at.
package daemon

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
)

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
