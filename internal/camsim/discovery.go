package camsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// WS-Discovery (2005/04, as ONVIF uses it).
const (
	wsdGroup      = "239.255.255.250"
	wsdPort       = 3702
	wsdTo         = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
	wsaAnonymous  = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
	probeAction   = nsWSD + "/Probe"
	matchesAction = nsWSD + "/ProbeMatches"
	helloAction   = nsWSD + "/Hello"
	byeAction     = nsWSD + "/Bye"
	maxDatagram   = 64 << 10
)

// discovery is the one WS-Discovery responder of a Sim, answering for all
// of its cameras: on a unicast socket (Addr:DiscoveryPort, directed probes)
// and, when interfaces are configured, on the multicast group.
type discovery struct {
	sim        *Sim
	uc         *net.UDPConn     // unicast; also sends every reply and announcement
	ucp        *ipv4.PacketConn // uc with per-packet outgoing interface
	mc         *net.UDPConn     // multicast group socket, nil when multicast is off
	ifaces     []net.Interface
	instanceID uint32
	msgNum     atomic.Uint32
	closed     atomic.Bool
	wg         sync.WaitGroup
}

func newDiscovery(s *Sim) (*discovery, error) {
	d := &discovery{sim: s, instanceID: uint32(time.Now().Unix())}
	ifaces, err := multicastInterfaces(s.opts.Addr, s.opts.DiscoveryInterfaces)
	if err != nil {
		return nil, err
	}
	uaddr := &net.UDPAddr{IP: net.ParseIP(s.opts.Addr).To4(), Port: s.opts.DiscoveryPort}
	// An ephemeral port must stay exclusive: with SO_REUSEADDR the kernel
	// may hand out a port another reusing socket already holds.
	d.uc, err = listenUDPReuse(uaddr, uaddr.Port != 0)
	if err != nil {
		return nil, fmt.Errorf("camsim: WS-Discovery unicast socket %s: %w (choose another --discovery-port, or 0)", uaddr, err)
	}
	d.ucp = ipv4.NewPacketConn(d.uc)
	if len(ifaces) > 0 {
		d.mc, err = listenUDPReuse(&net.UDPAddr{IP: net.ParseIP(wsdGroup).To4(), Port: wsdPort}, true)
		if err != nil {
			d.uc.Close()
			return nil, fmt.Errorf("camsim: WS-Discovery multicast socket: %w", err)
		}
		p := ipv4.NewPacketConn(d.mc)
		group := &net.UDPAddr{IP: net.ParseIP(wsdGroup)}
		for i := range ifaces {
			if err := p.JoinGroup(&ifaces[i], group); err != nil {
				d.uc.Close()
				d.mc.Close()
				return nil, fmt.Errorf("camsim: join %s on %s: %w", wsdGroup, ifaces[i].Name, err)
			}
		}
		d.ifaces = ifaces
		// Hello/Bye must reach clients on this host too.
		_ = d.ucp.SetMulticastLoopback(true)
		_ = d.ucp.SetMulticastTTL(1)
	}
	names := make([]string, 0, len(ifaces))
	for _, ifi := range ifaces {
		names = append(names, ifi.Name)
	}
	s.log.Info("WS-Discovery responder", "unicast", d.uc.LocalAddr().String(), "multicast_interfaces", strings.Join(names, ","))
	return d, nil
}

// multicastInterfaces resolves Options.DiscoveryInterfaces: nil picks the
// interface owning addr when it is up and multicast capable (none otherwise);
// {"none"} turns multicast off; names must exist and be multicast capable.
func multicastInterfaces(addr string, names []string) ([]net.Interface, error) {
	if len(names) == 1 && names[0] == "none" {
		return nil, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("camsim: list interfaces: %w", err)
	}
	usable := func(ifi net.Interface) bool {
		return ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0
	}
	if names == nil {
		ip := net.ParseIP(addr)
		for _, ifi := range all {
			addrs, err := ifi.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
					if usable(ifi) {
						return []net.Interface{ifi}, nil
					}
					return nil, nil
				}
			}
		}
		return nil, nil
	}
	var out []net.Interface
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("camsim: discovery interface %q: %w", name, err)
		}
		if !usable(*ifi) {
			return nil, fmt.Errorf("camsim: discovery interface %q is down or not multicast capable", name)
		}
		out = append(out, *ifi)
	}
	return out, nil
}

// listenUDPReuse binds exactly addr with SO_REUSEADDR. Go's own listeners
// bind a multicast address as 0.0.0.0, which would also receive unicast; and
// SO_REUSEADDR lets clients on this host that bind 0.0.0.0:3702 (as Go's
// ListenMulticastUDP does) coexist with us.
func listenUDPReuse(addr *net.UDPAddr, reuse bool) (*net.UDPConn, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, syscall.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	if reuse {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			syscall.Close(fd)
			return nil, err
		}
	}
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	f := os.NewFile(uintptr(fd), "udp:"+addr.String())
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func (d *discovery) unicastAddr() *net.UDPAddr { return d.uc.LocalAddr().(*net.UDPAddr) }

func (d *discovery) serve(ctx context.Context) {
	conns := []*net.UDPConn{d.uc}
	if d.mc != nil {
		conns = append(conns, d.mc)
	}
	for _, c := range conns {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.readLoop(ctx, c)
		}()
	}
}

func (d *discovery) readLoop(ctx context.Context, c *net.UDPConn) {
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := c.ReadFromUDP(buf)
		if err != nil {
			if d.closed.Load() || ctx.Err() != nil {
				return
			}
			d.sim.log.Warn("WS-Discovery read failed", "error", err)
			continue
		}
		p, err := parseProbe(buf[:n])
		if err != nil {
			d.sim.log.Debug("ignored WS-Discovery datagram", "from", src.String(), "error", err)
			continue
		}
		d.answer(p, src)
	}
}

func (d *discovery) answer(p *probe, src *net.UDPAddr) {
	for _, c := range d.sim.cams {
		ep := c.ep.Load()
		if ep == nil || !p.matches(c) {
			continue
		}
		msg := d.message(matchesAction, wsaAnonymous, p.MessageID,
			`<d:ProbeMatches><d:ProbeMatch>`+c.discoveryBody(ep)+`</d:ProbeMatch></d:ProbeMatches>`)
		if _, err := d.uc.WriteToUDP(msg, src); err != nil {
			d.sim.log.Warn("WS-Discovery reply failed", "to", src.String(), "error", err)
			return
		}
		d.sim.log.Debug("ProbeMatch sent", "camera", c.name, "to", src.String())
	}
}

// announce multicasts Hello or Bye for c on every joined interface.
func (d *discovery) announce(c *Camera, action string) {
	if d == nil || len(d.ifaces) == 0 || d.closed.Load() {
		return
	}
	ep := c.ep.Load()
	if ep == nil {
		return
	}
	var body string
	switch action {
	case helloAction:
		body = `<d:Hello>` + c.discoveryBody(ep) + `</d:Hello>`
	case byeAction:
		body = `<d:Bye><wsa:EndpointReference><wsa:Address>` + c.urn + `</wsa:Address></wsa:EndpointReference></d:Bye>`
	}
	msg := d.message(action, wsdTo, "", body)
	dst := &net.UDPAddr{IP: net.ParseIP(wsdGroup), Port: wsdPort}
	for _, ifi := range d.ifaces {
		if _, err := d.ucp.WriteTo(msg, &ipv4.ControlMessage{IfIndex: ifi.Index}, dst); err != nil {
			d.sim.log.Warn("WS-Discovery announce failed", "interface", ifi.Name, "error", err)
		}
	}
	d.sim.log.Debug("WS-Discovery announce", "camera", c.name, "action", action[len(nsWSD)+1:])
}

func (d *discovery) close() error {
	d.closed.Store(true)
	err := d.uc.Close()
	if d.mc != nil {
		err = errors.Join(err, d.mc.Close())
	}
	d.wg.Wait()
	return err
}

func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (d *discovery) message(action, to, relatesTo, body string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<env:Envelope xmlns:env="` + nsEnv + `" xmlns:wsa="` + nsWSA + `" xmlns:d="` + nsWSD +
		`" xmlns:dn="` + nsDN + `" xmlns:tds="` + nsTDS + `"><env:Header>`)
	b.WriteString(`<wsa:MessageID>` + newMessageID() + `</wsa:MessageID>`)
	if relatesTo != "" {
		b.WriteString(`<wsa:RelatesTo>` + esc(relatesTo) + `</wsa:RelatesTo>`)
	}
	b.WriteString(`<wsa:To env:mustUnderstand="true">` + to + `</wsa:To>`)
	b.WriteString(`<wsa:Action env:mustUnderstand="true">` + action + `</wsa:Action>`)
	fmt.Fprintf(&b, `<d:AppSequence InstanceId="%d" MessageNumber="%d"/>`, d.instanceID, d.msgNum.Add(1))
	b.WriteString(`</env:Header><env:Body>` + body + `</env:Body></env:Envelope>`)
	return b.Bytes()
}

// discoveryBody is the part shared by ProbeMatch and Hello.
func (c *Camera) discoveryBody(ep *endpoints) string {
	scopes := c.scopes()
	for i, s := range scopes {
		scopes[i] = esc(s)
	}
	return `<wsa:EndpointReference><wsa:Address>` + c.urn + `</wsa:Address></wsa:EndpointReference>` +
		`<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>` +
		`<d:Scopes>` + strings.Join(scopes, " ") + `</d:Scopes>` +
		`<d:XAddrs>` + esc(c.advertisedXAddr(ep)) + `</d:XAddrs>` +
		`<d:MetadataVersion>` + strconv.FormatUint(uint64(c.metaVer.Load()), 10) + `</d:MetadataVersion>`
}

// probe is a parsed WS-Discovery Probe.
type probe struct {
	MessageID string
	Types     []xml.Name // namespace resolved; Space "" when the prefix was unknown
	Scopes    []string
	MatchBy   string
}

// parseProbe parses a Probe. Types are QNames in character data, so the
// prefixes are resolved against the xmlns declarations in scope.
func parseProbe(data []byte) (*probe, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	type frame struct {
		name xml.Name
		ns   map[string]string
	}
	var stack []frame
	var p probe
	var text strings.Builder
	sawProbe := false
	lookup := func(prefix string) (string, bool) {
		for i := len(stack) - 1; i >= 0; i-- {
			if u, ok := stack[i].ns[prefix]; ok {
				return u, true
			}
		}
		return "", false
	}
	path := func() string {
		var parts []string
		for _, f := range stack {
			parts = append(parts, f.name.Local)
		}
		return strings.Join(parts, "/")
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed WS-Discovery message: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= 32 {
				return nil, errors.New("WS-Discovery message nested too deep")
			}
			f := frame{name: t.Name, ns: map[string]string{}}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					f.ns[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					f.ns[""] = a.Value
				}
			}
			if len(stack) == 0 && (t.Name.Space != nsEnv || t.Name.Local != "Envelope") {
				return nil, errors.New("not a SOAP 1.2 envelope")
			}
			stack = append(stack, f)
			text.Reset()
			switch path() {
			case "Envelope/Body/Probe":
				if t.Name.Space != nsWSD {
					return nil, fmt.Errorf("body is %s, not a WS-Discovery Probe", t.Name.Space)
				}
				sawProbe = true
			case "Envelope/Body/Probe/Scopes":
				for _, a := range t.Attr {
					if a.Name.Local == "MatchBy" {
						p.MatchBy = a.Value
					}
				}
			}
		case xml.CharData:
			if text.Len()+len(t) > 16<<10 {
				return nil, errors.New("WS-Discovery element too long")
			}
			text.Write(t)
		case xml.EndElement:
			switch path() {
			case "Envelope/Header/MessageID":
				p.MessageID = strings.TrimSpace(text.String())
			case "Envelope/Body/Probe/Types":
				for _, q := range strings.Fields(text.String()) {
					prefix, local, ok := strings.Cut(q, ":")
					if !ok {
						prefix, local = "", q
					}
					ns, _ := lookup(prefix)
					p.Types = append(p.Types, xml.Name{Space: ns, Local: local})
				}
			case "Envelope/Body/Probe/Scopes":
				p.Scopes = strings.Fields(text.String())
			}
			stack = stack[:len(stack)-1]
			text.Reset()
		}
	}
	if !sawProbe {
		return nil, errors.New("not a WS-Discovery Probe")
	}
	return &p, nil
}

// matches reports whether camera c satisfies every Type and Scope of p.
func (p *probe) matches(c *Camera) bool {
	for _, t := range p.Types {
		switch {
		case t.Local == "NetworkVideoTransmitter" && (t.Space == nsDN || t.Space == ""):
		case t.Local == "Device" && (t.Space == nsTDS || t.Space == ""):
		default:
			return false
		}
	}
	if p.MatchBy != "" && p.MatchBy != "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986" {
		return len(p.Scopes) == 0
	}
	for _, want := range p.Scopes {
		want = strings.TrimSuffix(want, "/")
		found := false
		for _, have := range c.scopes() {
			if have == want || strings.HasPrefix(have, want+"/") {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// advertisedXAddr is the XAddr announced and answered: the camera's own,
// unless AdvertiseXAddr set another.
func (c *Camera) advertisedXAddr(ep *endpoints) string {
	if x := c.advertise.Load(); x != nil {
		return *x
	}
	return ep.xaddr
}

// AdvertiseXAddr makes the camera announce and answer probes with xaddr
// instead of its own address ("" restores its own). With a Sim sharing a
// real camera's Seed (and so its URN) this is the spoofing attacker of the
// discovery tests: anyone on the LAN can send such a Hello.
func (c *Camera) AdvertiseXAddr(xaddr string) {
	if xaddr == "" {
		c.advertise.Store(nil)
		return
	}
	c.advertise.Store(&xaddr)
}

// Announce multicasts a Hello for the camera now (on the joined interfaces).
func (c *Camera) Announce() {
	if d := c.sim.discovery(); d != nil {
		d.announce(c, helloAction)
	}
}
