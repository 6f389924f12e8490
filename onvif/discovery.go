package onvif

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/ipv4"
)

// WS-Discovery constants (SOAP-over-UDP, WS-Discovery 2005/04).
const (
	wsdPort        = 3702
	wsdGroup       = "239.255.255.250"
	typeNVT        = "dn:NetworkVideoTransmitter"
	typeDevice     = "tds:Device"
	defaultWindow  = 3 * time.Second
	noneInterfaces = "none"
)

var wsdGroupIP = net.IPv4(239, 255, 255, 250)

// Device is one camera found by discovery, merged over every reply,
// interface and probe that saw it.
type Device struct {
	URN                      string
	XAddrs                   []string
	Types                    []string
	Scopes                   []string
	Name, Hardware, Location string
	Interfaces               []string // interface names (or "unicast:HOST") that saw it
	Addr                     string   // source IP of the last reply
	// Addrs is every source IP replies naming this URN came from (the
	// first maxSourceAddrs): the URN is public, so more than one means
	// someone may be announcing another device's identity.
	Addrs    []string
	LastSeen time.Time // time of the last reply
}

// ProbeOptions configures Probe and NewWatcher.
type ProbeOptions struct {
	// Interfaces is an allow-list of interface names. Nil or empty means
	// every up, multicast-capable interface with an IPv4 address (loopback
	// only if it has the MULTICAST flag); ["none"] disables multicast.
	Interfaces []string
	// Targets are HOST or HOST:PORT (default port 3702) to probe by unicast,
	// for cameras on another subnet or VLAN.
	Targets    []string
	Window     time.Duration // how long Probe collects replies; default 3s
	MaxDevices int           // devices kept; default 4096
	Logger     hclog.Logger
}

func (o ProbeOptions) withDefaults() ProbeOptions {
	if o.Window <= 0 {
		o.Window = defaultWindow
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = defaultMaxDevice
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

func (o ProbeOptions) multicastDisabled() bool {
	return len(o.Interfaces) == 1 && strings.EqualFold(o.Interfaces[0], noneInterfaces)
}

// mcastIface is one interface we probe or listen on.
type mcastIface struct {
	ifi  net.Interface
	addr net.IP // its first IPv4 address: probes are sent from it
}

// selectInterfaces returns the interfaces to use for multicast. Allow-listed
// names that are missing or unusable are logged and skipped.
func selectInterfaces(allow []string, log hclog.Logger) ([]mcastIface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("onvif: list network interfaces: %w", err)
	}
	var out []mcastIface
	seen := map[string]bool{}
	for _, ifi := range all {
		if len(allow) > 0 && !slices.Contains(allow, ifi.Name) {
			continue
		}
		seen[ifi.Name] = true
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			if len(allow) > 0 {
				log.Warn("discovery interface is down or not multicast-capable", "interface", ifi.Name)
			}
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var ip net.IP
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				ip = n.IP.To4()
				break
			}
		}
		if ip == nil {
			if len(allow) > 0 {
				log.Warn("discovery interface has no IPv4 address", "interface", ifi.Name)
			}
			continue
		}
		out = append(out, mcastIface{ifi: ifi, addr: ip})
	}
	for _, name := range allow {
		if !seen[name] {
			log.Warn("discovery interface not found", "interface", name)
		}
	}
	return out, nil
}

// newMessageID returns a fresh urn:uuid (RFC 4122 v4) from crypto/rand.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// probeMessage builds a WS-Discovery Probe for one type.
func probeMessage(messageID, typ string) []byte {
	ns := `xmlns:dn="http://www.onvif.org/ver10/network/wsdl"`
	if strings.HasPrefix(typ, "tds:") {
		ns = `xmlns:tds="http://www.onvif.org/ver10/device/wsdl"`
	}
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" ` +
		`xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" ` +
		`xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" ` + ns + `>` +
		`<s:Header>` +
		`<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>` +
		`<a:MessageID>` + messageID + `</a:MessageID>` +
		`<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
		`<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>` +
		`</s:Header>` +
		`<s:Body><d:Probe><d:Types>` + typ + `</d:Types></d:Probe></s:Body>` +
		`</s:Envelope>`)
}

// probeSocket is one socket probes go out on and replies come back to.
type probeSocket struct {
	conn  *net.UDPConn
	label string       // interface name or "unicast:HOST"
	dst   *net.UDPAddr // nil for a connected (directed) socket
}

type probeReply struct {
	label   string
	addr    string
	matches []Match
}

// Probe sends WS-Discovery Probes (for dn:NetworkVideoTransmitter and
// tds:Device, a few times over the window) on every selected interface and
// to every directed target, and returns the devices whose replies answered
// one of our probes, deduplicated by URN and sorted by it. It returns when
// the window ends; if ctx ends first it returns what it found and ctx.Err().
func Probe(ctx context.Context, opts ProbeOptions) ([]Device, error) {
	opts = opts.withDefaults()
	log := opts.Logger

	// Every MessageID is chosen up front so the set readers consult is
	// immutable: no locking, and replies to a later round are recognised
	// even when they race its sending.
	type probe struct{ payload []byte }
	var rounds [][]probe
	sent := map[string]struct{}{}
	for range probeRounds(opts.Window) {
		var r []probe
		for _, typ := range []string{typeNVT, typeDevice} {
			id := newMessageID()
			sent[id] = struct{}{}
			r = append(r, probe{probeMessage(id, typ)})
		}
		rounds = append(rounds, r)
	}

	socks, err := openProbeSockets(ctx, opts)
	if err != nil {
		return nil, err
	}
	if len(socks) == 0 {
		return nil, nil
	}

	wctx, cancel := context.WithTimeout(ctx, opts.Window)
	defer cancel()
	replies := make(chan probeReply, 64)
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readReplies(wctx, s, sent, replies, log)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		for i, at := range probeRounds(opts.Window) {
			if d := time.Until(start.Add(at)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-wctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			for _, s := range socks {
				for _, p := range rounds[i] {
					var err error
					if s.dst != nil {
						_, err = s.conn.WriteToUDP(p.payload, s.dst)
					} else {
						_, err = s.conn.Write(p.payload)
					}
					if err != nil && wctx.Err() == nil {
						log.Debug("send probe failed", "via", s.label, "error", err)
					}
				}
			}
		}
	}()

	// This goroutine alone owns the device table.
	devices := map[string]*Device{}
	full := false
collect:
	for {
		select {
		case <-wctx.Done():
			break collect
		case r := <-replies:
			now := time.Now()
			for _, mt := range r.matches {
				d := devices[mt.URN]
				if d == nil {
					if len(devices) >= opts.MaxDevices {
						if !full {
							log.Warn("discovery device limit reached; ignoring new devices", "limit", opts.MaxDevices)
							full = true
						}
						continue
					}
					d = &Device{URN: mt.URN}
					devices[mt.URN] = d
				}
				d.merge(mt, r.label, r.addr, now)
			}
		}
	}
	for _, s := range socks {
		s.conn.Close()
	}
	wg.Wait()

	out := make([]Device, 0, len(devices))
	for _, d := range devices {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.URN, b.URN) })
	return out, ctx.Err()
}

// probeRounds is when each round of probes goes out: WS-Discovery repeats
// multicast UDP because datagrams get lost.
func probeRounds(window time.Duration) []time.Duration {
	out := []time.Duration{0}
	for _, at := range []time.Duration{window / 6, window / 2} {
		if at > 0 && at < window {
			out = append(out, at)
		}
	}
	return out
}

// openProbeSockets opens one socket per multicast interface and one per
// directed target.
func openProbeSockets(ctx context.Context, opts ProbeOptions) ([]probeSocket, error) {
	var socks []probeSocket
	fail := func(err error) ([]probeSocket, error) {
		for _, s := range socks {
			s.conn.Close()
		}
		return nil, err
	}
	if !opts.multicastDisabled() {
		ifaces, err := selectInterfaces(opts.Interfaces, opts.Logger)
		if err != nil {
			return fail(err)
		}
		for _, mi := range ifaces {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: mi.addr})
			if err != nil {
				opts.Logger.Warn("cannot open discovery socket", "interface", mi.ifi.Name, "error", err)
				continue
			}
			pc := ipv4.NewPacketConn(conn)
			ifi := mi.ifi
			if err := pc.SetMulticastInterface(&ifi); err != nil {
				opts.Logger.Warn("cannot select multicast interface", "interface", mi.ifi.Name, "error", err)
				conn.Close()
				continue
			}
			_ = pc.SetMulticastTTL(1)
			_ = pc.SetMulticastLoopback(true)
			_ = conn.SetReadBuffer(1 << 20)
			socks = append(socks, probeSocket{conn: conn, label: mi.ifi.Name, dst: &net.UDPAddr{IP: wsdGroupIP, Port: wsdPort}})
		}
		if len(socks) == 0 && len(opts.Targets) == 0 {
			return fail(errors.New("onvif: no usable multicast interface for discovery (check --discovery-interfaces)"))
		}
	}
	for _, t := range opts.Targets {
		addr, host, err := resolveTarget(ctx, t)
		if err != nil {
			return fail(err)
		}
		conn, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			return fail(fmt.Errorf("onvif: directed probe to %s: %w", t, err))
		}
		_ = conn.SetReadBuffer(1 << 20)
		socks = append(socks, probeSocket{conn: conn, label: "unicast:" + host})
	}
	return socks, nil
}

// resolveTarget parses HOST or HOST:PORT (IPv6 in brackets) and resolves it.
func resolveTarget(ctx context.Context, t string) (*net.UDPAddr, string, error) {
	t = strings.TrimSpace(t)
	host, port := t, strconv.Itoa(wsdPort)
	if h, p, err := net.SplitHostPort(t); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		host = t[1 : len(t)-1]
	}
	pn, ok := atoiSmall(port)
	if host == "" || !ok || pn < 1 || pn > 65535 {
		return nil, "", fmt.Errorf("onvif: invalid discovery target %q (want HOST or HOST:PORT)", textutil.Prefix(t, 128))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(pn))), host, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, "", fmt.Errorf("onvif: resolve discovery target %q: %v", textutil.Prefix(host, 128), err)
	}
	ip := ips[0]
	for _, c := range ips {
		if c.Is4() || c.Is4In6() {
			ip = c
			break
		}
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(pn))), host, nil
}

// readReplies reads one socket until it is closed, forwarding ProbeMatches
// that answer one of our probes. Everything else is dropped.
func readReplies(ctx context.Context, s probeSocket, sent map[string]struct{}, out chan<- probeReply, log hclog.Logger) {
	buf := make([]byte, maxDatagramRead)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Debug("discovery read failed", "via", s.label, "error", err)
			}
			return
		}
		msg, err := ParseMessage(buf[:n])
		if err != nil {
			log.Trace("ignoring datagram", "via", s.label, "from", from.String(), "error", err)
			continue
		}
		if msg.Kind != KindProbeMatches {
			continue
		}
		if _, ok := sent[msg.RelatesTo]; !ok {
			log.Trace("ignoring ProbeMatches for a probe we did not send", "via", s.label, "from", from.String())
			continue
		}
		select {
		case out <- probeReply{label: s.label, addr: from.Addr().Unmap().String(), matches: msg.Matches}:
		case <-ctx.Done():
			return
		}
	}
}

// merge folds one match into d, keeping every list bounded.
func (d *Device) merge(mt Match, label, addr string, now time.Time) {
	d.XAddrs = appendUnique(d.XAddrs, mt.XAddrs, maxXAddrs)
	d.Types = appendUnique(d.Types, mt.Types, maxTypes)
	d.Scopes = appendUnique(d.Scopes, mt.Scopes, maxScopes)
	if mt.Name != "" {
		d.Name = mt.Name
	}
	if mt.Hardware != "" {
		d.Hardware = mt.Hardware
	}
	if mt.Location != "" {
		d.Location = mt.Location
	}
	if label != "" && !slices.Contains(d.Interfaces, label) && len(d.Interfaces) < maxInterfaces {
		d.Interfaces = append(d.Interfaces, label)
		slices.Sort(d.Interfaces)
	}
	if addr != "" {
		d.Addr = addr
		d.Addrs = appendUnique(d.Addrs, []string{addr}, maxSourceAddrs)
	}
	d.LastSeen = now
}

func appendUnique(dst, src []string, max int) []string {
	for _, s := range src {
		if len(dst) >= max {
			break
		}
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func deviceFromMatch(mt Match, label, addr string, now time.Time) Device {
	d := Device{URN: mt.URN}
	d.merge(mt, label, addr, now)
	return d
}

// Merge folds o, a newer sighting of the same device (a Hello, another
// probe), into d with the bounds Probe applies. Devices with different
// URNs are left alone.
func (d *Device) Merge(o Device) {
	if d.URN != o.URN {
		return
	}
	d.XAddrs = appendUnique(d.XAddrs, o.XAddrs, maxXAddrs)
	d.Types = appendUnique(d.Types, o.Types, maxTypes)
	d.Scopes = appendUnique(d.Scopes, o.Scopes, maxScopes)
	d.Addrs = appendUnique(d.Addrs, o.Addrs, maxSourceAddrs)
	if o.Addr != "" {
		d.Addrs = appendUnique(d.Addrs, []string{o.Addr}, maxSourceAddrs)
	}
	for _, s := range []struct {
		dst *string
		v   string
	}{{&d.Name, o.Name}, {&d.Hardware, o.Hardware}, {&d.Location, o.Location}, {&d.Addr, o.Addr}} {
		if s.v != "" {
			*s.dst = s.v
		}
	}
	for _, l := range o.Interfaces {
		if !slices.Contains(d.Interfaces, l) && len(d.Interfaces) < maxInterfaces {
			d.Interfaces = append(d.Interfaces, l)
		}
	}
	slices.Sort(d.Interfaces)
	if o.LastSeen.After(d.LastSeen) {
		d.LastSeen = o.LastSeen
	}
}
