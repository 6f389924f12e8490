package camsim

import (
	"context"
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// probeMsg is a Probe as ONVIF clients send it (onvif npm's layout).
func probeMsg(id, types, scopes string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">` +
		`<Header><wsa:MessageID xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">` + id + `</wsa:MessageID>` +
		`<wsa:To xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>` +
		`<wsa:Action xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action></Header>` +
		`<Body><Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">` +
		`<Types>` + types + `</Types><Scopes>` + scopes + `</Scopes></Probe></Body></Envelope>`)
}

// wsdMsg is the part of a ProbeMatches/Hello/Bye message the tests check.
type wsdMsg struct {
	Action    string
	RelatesTo string
	MsgNumber int
	Address   string
	Types     string
	Scopes    string
	XAddrs    string
	MetaVer   int
}

func parseWSD(t *testing.T, data []byte) wsdMsg {
	t.Helper()
	type target struct {
		Address string `xml:"http://schemas.xmlsoap.org/ws/2004/08/addressing EndpointReference>Address"`
		Types   string `xml:"Types"`
		Scopes  string `xml:"Scopes"`
		XAddrs  string `xml:"XAddrs"`
		MetaVer int    `xml:"MetadataVersion"`
	}
	var env struct {
		XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
		Header  struct {
			Action    string `xml:"http://schemas.xmlsoap.org/ws/2004/08/addressing Action"`
			RelatesTo string `xml:"http://schemas.xmlsoap.org/ws/2004/08/addressing RelatesTo"`
			Seq       struct {
				N int `xml:"MessageNumber,attr"`
			} `xml:"http://schemas.xmlsoap.org/ws/2005/04/discovery AppSequence"`
		} `xml:"Header"`
		Body struct {
			Match *target `xml:"http://schemas.xmlsoap.org/ws/2005/04/discovery ProbeMatches>ProbeMatch"`
			Hello *target `xml:"http://schemas.xmlsoap.org/ws/2005/04/discovery Hello"`
			Bye   *target `xml:"http://schemas.xmlsoap.org/ws/2005/04/discovery Bye"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(data, &env); err != nil {
		t.Fatalf("bad WS-Discovery message: %v\n%s", err, data)
	}
	m := wsdMsg{Action: env.Header.Action, RelatesTo: env.Header.RelatesTo, MsgNumber: env.Header.Seq.N}
	for _, tg := range []*target{env.Body.Match, env.Body.Hello, env.Body.Bye} {
		if tg != nil {
			m.Address, m.Types, m.Scopes, m.XAddrs, m.MetaVer = tg.Address, tg.Types, tg.Scopes, tg.XAddrs, tg.MetaVer
		}
	}
	return m
}

func readWSD(t *testing.T, c *net.UDPConn, d time.Duration) wsdMsg {
	t.Helper()
	buf := make([]byte, maxDatagram)
	c.SetReadDeadline(time.Now().Add(d))
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no WS-Discovery message within %s: %v", d, err)
	}
	return parseWSD(t, buf[:n])
}

// readMatches reads n ProbeMatches for probe id and returns them by URN.
func readMatches(t *testing.T, c *net.UDPConn, id string, n int) map[string]wsdMsg {
	t.Helper()
	out := map[string]wsdMsg{}
	for len(out) < n {
		m := readWSD(t, c, 5*time.Second)
		if m.Action == probeAction {
			continue // our own multicast probe looped back
		}
		if m.Action != matchesAction || m.RelatesTo != id {
			t.Fatalf("got %s relating to %q, want ProbeMatches for %q", m.Action, m.RelatesTo, id)
		}
		if _, dup := out[m.Address]; dup {
			t.Fatalf("two ProbeMatches for %s", m.Address)
		}
		out[m.Address] = m
	}
	return out
}

func checkMatches(t *testing.T, s *Sim, got map[string]wsdMsg) {
	t.Helper()
	for _, c := range s.Cameras() {
		m, ok := got[c.URN()]
		if !ok {
			t.Fatalf("no ProbeMatch for %s (%s)", c.Name(), c.URN())
		}
		if m.XAddrs != c.XAddr() || m.Types != "dn:NetworkVideoTransmitter tds:Device" || m.MetaVer < 1 {
			t.Errorf("%s: %+v", c.Name(), m)
		}
		for _, want := range []string{"onvif://www.onvif.org/name/" + c.Name(), "onvif://www.onvif.org/hardware/CamSim-1080",
			"onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/location/"} {
			if !strings.Contains(m.Scopes, want) {
				t.Errorf("%s: scopes %q lack %q", c.Name(), m.Scopes, want)
			}
		}
	}
}

func TestUnicastProbe(t *testing.T) {
	s, _ := startSim(t, Options{Cameras: 3, DiscoveryPort: 0})
	dst := s.DiscoveryAddr()
	if dst == nil || !dst.IP.Equal(net.IPv4(127, 0, 0, 1)) || dst.Port == 0 {
		t.Fatalf("discovery address %v", dst)
	}
	if len(s.MulticastInterfaces()) != 0 {
		t.Fatalf("multicast joined on %v with interfaces=none", s.MulticastInterfaces())
	}
	cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	send := func(b []byte) {
		t.Helper()
		if _, err := cl.WriteToUDP(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage and probes for other device types get no answer: the first
	// answer must relate to the good probe sent after them (loopback UDP
	// keeps order and one goroutine answers).
	send([]byte("not xml at all"))
	send(probeMsg("urn:uuid:bad-type", "dn:NetworkVideoDisplay", ""))
	send(probeMsg("urn:uuid:probe-nvt", "dn:NetworkVideoTransmitter", ""))
	checkMatches(t, s, readMatches(t, cl, "urn:uuid:probe-nvt", 3))

	send(probeMsg("uuid:probe-device", "tds:Device", ""))
	checkMatches(t, s, readMatches(t, cl, "uuid:probe-device", 3))

	send(probeMsg("urn:uuid:probe-empty", "", ""))
	checkMatches(t, s, readMatches(t, cl, "urn:uuid:probe-empty", 3))

	// A scope narrows the answer to one camera.
	send(probeMsg("urn:uuid:probe-scope", "dn:NetworkVideoTransmitter", "onvif://www.onvif.org/name/camsim-2"))
	got := readMatches(t, cl, "urn:uuid:probe-scope", 1)
	if _, ok := got[s.Cameras()[1].URN()]; !ok {
		t.Fatalf("scope probe answered by %v", got)
	}
	send(probeMsg("urn:uuid:probe-after", "", "onvif://www.onvif.org/name/camsim-3"))
	readMatches(t, cl, "urn:uuid:probe-after", 1)
}

func TestDirectedProbeOverHTTP(t *testing.T) {
	s, _ := startSim(t, Options{Cameras: 2})
	c := s.Cameras()[1]
	resp, data := post(t, c.XAddr(), string(probeMsg("urn:uuid:http-probe", "dn:NetworkVideoTransmitter", "")), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, data)
	}
	m := parseWSD(t, data)
	if m.Action != matchesAction || m.RelatesTo != "urn:uuid:http-probe" || m.Address != c.URN() || m.XAddrs != c.XAddr() {
		t.Fatalf("directed probe answer: %+v", m)
	}
	_, data = post(t, c.XAddr(), string(probeMsg("urn:uuid:http-probe-2", "dn:NetworkVideoDisplay", "")), nil)
	if m := parseWSD(t, data); m.Address != "" || m.RelatesTo != "urn:uuid:http-probe-2" {
		t.Fatalf("non-matching directed probe answered with a match: %+v", m)
	}
}

// TestMulticastDiscoveryInNetns re-runs itself inside a private network
// namespace (unshare -n, as root in CI) where lo is made multicast capable,
// so multicast never touches a real LAN.
func TestMulticastDiscoveryInNetns(t *testing.T) {
	if reexecInNetns(t) {
		return
	}

	// A listener on the WS-Discovery group, like a client watching Hello/Bye.
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
	}}
	// Go binds this as 0.0.0.0:3702 with SO_REUSEADDR, as many clients do.
	pc, err := lc.ListenPacket(context.Background(), "udp4", "239.255.255.250:3702")
	if err != nil {
		t.Fatal(err)
	}
	watch := pc.(*net.UDPConn)
	defer watch.Close()
	if err := ipv4.NewPacketConn(watch).JoinGroup(lo, &net.UDPAddr{IP: net.ParseIP(wsdGroup)}); err != nil {
		t.Fatal(err)
	}

	// Default interfaces, port 3702: multicast on lo,
	// the interface owning --addr, because it is multicast capable here.
	s, err := New(Options{Cameras: 2, Username: testUser, Password: testPass, DiscoveryPort: DefaultDiscoveryPort})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.MulticastInterfaces(); len(got) != 1 || got[0] != "lo" {
		t.Fatalf("multicast interfaces %v, want [lo]", got)
	}
	if s.DiscoveryAddr().Port != 3702 {
		t.Fatalf("unicast discovery on %v, want port 3702", s.DiscoveryAddr())
	}

	hellos := map[string]wsdMsg{}
	for len(hellos) < 2 {
		m := readWSD(t, watch, 5*time.Second)
		if m.Action != helloAction {
			t.Fatalf("got %s before the Hellos", m.Action)
		}
		hellos[m.Address] = m
	}
	for _, c := range s.Cameras() {
		if h := hellos[c.URN()]; h.XAddrs != c.XAddr() || h.MetaVer != 1 || !strings.Contains(h.Scopes, "/name/"+c.Name()) {
			t.Errorf("hello for %s: %+v", c.Name(), h)
		}
	}

	// A multicast Probe, as discovery clients send it, is answered unicast.
	cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.WriteToUDP(probeMsg("urn:uuid:mcast-probe", "dn:NetworkVideoTransmitter", ""),
		&net.UDPAddr{IP: net.ParseIP(wsdGroup), Port: wsdPort}); err != nil {
		t.Fatal(err)
	}
	checkMatches(t, s, readMatches(t, cl, "urn:uuid:mcast-probe", 2))

	// Restart: a Hello with the new XAddr and a bumped MetadataVersion.
	c0 := s.Cameras()[0]
	old := c0.XAddr()
	if err := c0.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var h wsdMsg
	for {
		h = readWSD(t, watch, 5*time.Second)
		if h.Action == helloAction {
			break
		}
	}
	if h.Address != c0.URN() || h.XAddrs == old || h.XAddrs != c0.XAddr() || h.MetaVer != 2 {
		t.Fatalf("hello after restart: %+v (old xaddr %s)", h, old)
	}

	// Close: a Bye per camera.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var byes []string
	for len(byes) < 2 {
		m := readWSD(t, watch, 5*time.Second)
		if m.Action == byeAction {
			byes = append(byes, m.Address)
		}
	}
	sort.Strings(byes)
	want := []string{s.Cameras()[0].URN(), s.Cameras()[1].URN()}
	sort.Strings(want)
	if strings.Join(byes, " ") != strings.Join(want, " ") {
		t.Fatalf("byes %v, want %v", byes, want)
	}
	// The responder released its unicast port (the watcher, bound to
	// 0.0.0.0:3702, would block a plain bind: close it first).
	watch.Close()
	again, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3702})
	if err != nil {
		t.Fatalf("127.0.0.1:3702 still bound after Close: %v", err)
	}
	again.Close()
}

// reexecInNetns runs the calling test again inside `unshare -n` with lo up
// and multicast capable, and reports true; inside the namespace it reports
// false and the test body runs there.
func reexecInNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("CAMSIM_IN_NETNS") == "1" {
		return false
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", "sh", "-c",
		`ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && exec "$@"`,
		"sh", exe, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CAMSIM_IN_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a private network namespace (needs root, unshare and iproute2): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the namespaced run did not pass:\n%s", out)
	}
	t.Logf("namespaced run:\n%s", out)
	return true
}

func TestExplicitDiscoveryInterfaceMustBeMulticastCapable(t *testing.T) {
	_, err := multicastInterfaces("127.0.0.1", []string{"no-such-if0"})
	if err == nil || !strings.Contains(err.Error(), "no-such-if0") {
		t.Fatalf("unknown interface: %v", err)
	}
	if ifs, err := multicastInterfaces("127.0.0.1", []string{"none"}); err != nil || len(ifs) != 0 {
		t.Fatalf("none: %v %v", ifs, err)
	}
}
