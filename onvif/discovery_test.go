package onvif

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Discovery tests touch only a private network namespace: the parent test
// re-executes this test binary under `unshare -n` and does nothing else;
// the child brings up multicast on its own loopback and runs everything
// there. No datagram ever reaches a real interface.
const netnsEnv = "CAMWARDEN_ONVIF_TEST_NETNS"

// inPrivateNetns returns true in the namespaced child, which should then
// run the test body; in the parent it re-executes the test and returns
// false after checking the child passed.
func inPrivateNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		setupNamespace(t)
		return true
	}
	args := []string{"-n"}
	if os.Geteuid() != 0 {
		args = append(args, "-r") // a user namespace grants the rights to configure it
	}
	args = append(args, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=60s")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("namespaced child output:\n%s", out)
	if err != nil {
		t.Fatalf("namespaced child failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("namespaced child did not run %s", t.Name())
	}
	return false
}

func setupNamespace(t *testing.T) {
	t.Helper()
	// Guard: refuse to run anywhere but a fresh namespace (only loopback).
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Name != "lo" {
			t.Fatalf("not in a private network namespace (found %s); refusing to send multicast", ifi.Name)
		}
	}
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up", "multicast", "on"},
		{"ip", "route", "add", "224.0.0.0/4", "dev", "lo"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
}

func loopback(t *testing.T) *net.Interface {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return lo
}

func reuseListen(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// responder is a simulated camera's WS-Discovery side: for every Probe it
// receives, reply builds the datagrams to send back to the prober.
type responder struct {
	conn  *net.UDPConn
	reply func(probe Message) [][]byte
}

// startResponder listens on addr; with join it also joins the multicast
// group on lo (a camera on our subnet), without it is unicast-only.
func startResponder(t *testing.T, ctx context.Context, wg *sync.WaitGroup, addr string, join bool, reply func(Message) [][]byte) *responder {
	t.Helper()
	conn, err := reuseListen(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if join {
		if err := ipv4.NewPacketConn(conn).JoinGroup(loopback(t), &net.UDPAddr{IP: wsdGroupIP}); err != nil {
			t.Fatal(err)
		}
	}
	r := &responder{conn: conn, reply: reply}
	context.AfterFunc(ctx, func() { conn.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg, err := ParseMessage(buf[:n])
			if err != nil || msg.Kind != KindProbe {
				continue
			}
			out := reply(msg)
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Cameras wait a random 0..500 ms (APP_MAX_DELAY) before answering.
				select {
				case <-time.After(time.Duration(rand.IntN(300)) * time.Millisecond):
				case <-ctx.Done():
					return
				}
				for _, d := range out {
					_, _ = conn.WriteToUDP(d, from)
				}
			}()
		}
	}()
	return r
}

func probeMatches(relatesTo string, matches ...string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><SOAP-ENV:Header><wsa:MessageID>` + newMessageID() +
		`</wsa:MessageID><wsa:RelatesTo>` + relatesTo + `</wsa:RelatesTo><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches>` +
		strings.Join(matches, "") + `</d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`)
}

func matchXML(addr, xaddrs, scopes string) string {
	return `<d:ProbeMatch><wsa:EndpointReference><wsa:Address>` + addr + `</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>` +
		scopes + `</d:Scopes><d:XAddrs>` + xaddrs + `</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch>`
}

func helloXML(kind, addr, xaddrs string) []byte {
	return []byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header><a:MessageID>` + newMessageID() +
		`</a:MessageID><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/` + kind + `</a:Action></s:Header><s:Body><d:` + kind + `><a:EndpointReference><a:Address>` + addr +
		`</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/name/Yard%20Cam</d:Scopes><d:XAddrs>` + xaddrs + `</d:XAddrs></d:` + kind + `></s:Body></s:Envelope>`)
}

func camURN(i int) string { return fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012x", i) }

func TestDiscoveryMulticastProbe(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	const n = 50
	for i := 1; i <= n; i++ {
		addr := camURN(i)
		if i%2 == 0 {
			// Real cameras send bare, upper-case "uuid:" addresses.
			addr = strings.ToUpper(strings.TrimPrefix(addr, "urn:"))
		}
		xaddrs := fmt.Sprintf("http://127.0.0.1:%d/onvif/device_service http://10.9.9.%d/onvif/device_service", 8000+i, i)
		scopes := fmt.Sprintf("onvif://www.onvif.org/name/Cam%%20%d onvif://www.onvif.org/hardware/HW-%d", i, i)
		startResponder(t, ctx, &wg, "0.0.0.0:3702", true, func(p Message) [][]byte {
			return [][]byte{probeMatches(p.MessageID, matchXML(addr, xaddrs, scopes))}
		})
	}
	// Hostile and confused neighbours, all answering every probe:
	const (
		urnWrongRelates = "urn:uuid:bad00000-0000-4000-8000-000000000001"
		urnOversized    = "urn:uuid:bad00000-0000-4000-8000-000000000002"
		urnBadXAddrs    = "urn:uuid:bad00000-0000-4000-8000-000000000003"
		urnViaHello     = "urn:uuid:bad00000-0000-4000-8000-000000000004"
	)
	startResponder(t, ctx, &wg, "0.0.0.0:3702", true, func(p Message) [][]byte {
		good := matchXML(urnBadXAddrs, "http://[::1%zz/x http://:99/ http://127.0.0.1:70000/ ftp://127.0.0.1/ http://127.0.0.1:8099/onvif/device_service", "")
		return [][]byte{
			// answers somebody else's probe
			probeMatches(newMessageID(), matchXML(urnWrongRelates, "http://127.0.0.1:9001/onvif/device_service", "")),
			// no RelatesTo at all
			probeMatches("", matchXML(urnWrongRelates, "http://127.0.0.1:9001/onvif/device_service", "")),
			// right RelatesTo but over 32 KiB
			probeMatches(p.MessageID, matchXML(urnOversized, "http://127.0.0.1:9002/onvif/device_service", strings.Repeat("onvif://www.onvif.org/x ", 1500))),
			// malformed XML, binary junk, an unrelated Hello and a Probe
			[]byte(`<s:Envelope><s:Body><d:ProbeMatches><d:ProbeMatch>` + p.MessageID),
			{0xff, 0xfe, 0, 1, 2, 3},
			helloXML("Hello", urnViaHello, "http://127.0.0.1:9004/onvif/device_service"),
			probeMessage(newMessageID(), typeNVT),
			// right RelatesTo, mostly malformed XAddrs: kept, sanitised
			probeMatches(p.MessageID, good),
		}
	})

	start := time.Now()
	devs, err := Probe(context.Background(), ProbeOptions{}) // defaults: all multicast interfaces (lo here), 3 s
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if el < defaultWindow || el > defaultWindow+time.Second {
		t.Errorf("Probe took %v, window %v", el, defaultWindow)
	}
	seen := map[string]bool{}
	for i, d := range devs {
		if seen[d.URN] {
			t.Fatalf("duplicate %s", d.URN)
		}
		seen[d.URN] = true
		if i > 0 && devs[i-1].URN >= d.URN {
			t.Fatalf("not sorted: %s before %s", devs[i-1].URN, d.URN)
		}
	}
	for i := 1; i <= n; i++ {
		urn := camURN(i)
		j := slices.IndexFunc(devs, func(d Device) bool { return d.URN == urn })
		if j < 0 {
			t.Errorf("camera %d (%s) not found", i, urn)
			continue
		}
		d := devs[j]
		want := []string{fmt.Sprintf("http://127.0.0.1:%d/onvif/device_service", 8000+i), fmt.Sprintf("http://10.9.9.%d/onvif/device_service", i)}
		if !slices.Equal(d.XAddrs, want) || d.Name != fmt.Sprintf("Cam %d", i) || d.Hardware != fmt.Sprintf("HW-%d", i) ||
			!slices.Equal(d.Interfaces, []string{"lo"}) || d.Addr != "127.0.0.1" || d.LastSeen.Before(start) {
			t.Errorf("camera %d: %+v", i, d)
		}
	}
	for _, bad := range []string{urnWrongRelates, urnOversized, urnViaHello} {
		if seen[bad] {
			t.Errorf("%s should have been ignored", bad)
		}
	}
	j := slices.IndexFunc(devs, func(d Device) bool { return d.URN == urnBadXAddrs })
	if j < 0 || !slices.Equal(devs[j].XAddrs, []string{"http://127.0.0.1:8099/onvif/device_service"}) {
		t.Errorf("malformed-XAddr camera: %+v", devs)
	}
	if len(devs) != n+1 {
		t.Errorf("found %d devices, want %d", len(devs), n+1)
	}

	// A flood of distinct devices is capped.
	cancel()
	wg.Wait()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	startResponder(t, ctx2, &wg, "0.0.0.0:3702", true, func(p Message) [][]byte {
		var ms []string
		for i := range 60 {
			ms = append(ms, matchXML(camURN(1000+i+rand.IntN(1<<30)), "http://127.0.0.1/onvif/device_service", ""))
		}
		return [][]byte{probeMatches(p.MessageID, ms...)}
	})
	devs, err = Probe(context.Background(), ProbeOptions{Interfaces: []string{"lo"}, Window: 600 * time.Millisecond, MaxDevices: 25})
	if err != nil || len(devs) != 25 {
		t.Fatalf("capped probe: %d devices, %v", len(devs), err)
	}
}

func TestDiscoveryDirectedProbe(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	answer := func(urn string) func(Message) [][]byte {
		return func(p Message) [][]byte {
			return [][]byte{probeMatches(p.MessageID, matchXML(urn, "http://127.0.0.7/onvif/device_service", ""))}
		}
	}
	// Unicast-only cameras "on another subnet": one on the default port,
	// one on a custom port. Neither joins the multicast group.
	startResponder(t, ctx, &wg, "127.0.0.7:3702", false, answer(camURN(7)))
	other := startResponder(t, ctx, &wg, "127.0.0.8:0", false, answer(camURN(8)))
	// A multicast camera that a "none" probe must not find.
	startResponder(t, ctx, &wg, "0.0.0.0:3702", true, answer(camURN(9)))

	target2 := other.conn.LocalAddr().String()
	devs, err := Probe(context.Background(), ProbeOptions{
		Interfaces: []string{"none"},
		Targets:    []string{"127.0.0.7", target2},
		Window:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].URN != camURN(7) || devs[1].URN != camURN(8) {
		t.Fatalf("devices %+v", devs)
	}
	if !slices.Equal(devs[0].Interfaces, []string{"unicast:127.0.0.7"}) || devs[0].Addr != "127.0.0.7" ||
		!slices.Equal(devs[1].Interfaces, []string{"unicast:127.0.0.8"}) {
		t.Fatalf("devices %+v", devs)
	}

	// Multicast and directed together: the directed camera is seen once,
	// the multicast one too.
	devs, err = Probe(context.Background(), ProbeOptions{Targets: []string{"127.0.0.7:3702"}, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var urns []string
	for _, d := range devs {
		urns = append(urns, d.URN)
	}
	if !slices.Equal(urns, []string{camURN(7), camURN(9)}) {
		t.Fatalf("devices %v", urns)
	}

	if _, err := Probe(context.Background(), ProbeOptions{Interfaces: []string{"none"}, Targets: []string{"999.1.1.1:x"}}); err == nil {
		t.Fatal("bad target accepted")
	}
}

func TestDiscoveryWatcherHelloBye(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	w, err := NewWatcher(ProbeOptions{Interfaces: []string{"lo"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, 16)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, events) }()

	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	if err := ipv4.NewPacketConn(send).SetMulticastInterface(loopback(t)); err != nil {
		t.Fatal(err)
	}
	group := &net.UDPAddr{IP: wsdGroupIP, Port: wsdPort}
	const urn = "urn:uuid:1234abcd-0000-4000-8000-0000000000ab"

	// The consumer's view: Hello adds, Bye removes.
	known := map[string]Device{}
	apply := func(ev Event) {
		switch ev.Kind {
		case Hello:
			known[ev.Device.URN] = ev.Device
		case Bye:
			delete(known, ev.Device.URN)
		}
	}
	// Until the watcher has joined, datagrams are lost: repeat until seen
	// (cameras repeat Hello too). Junk goes first each time: it must not
	// produce events.
	waitEvent := func(kind EventKind, payload []byte) Event {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, junk := range [][]byte{
				[]byte("garbage"),
				probeMessage(newMessageID(), typeNVT),
				probeMatches(newMessageID(), matchXML(camURN(77), "http://127.0.0.1/x", "")),
				[]byte(strings.Repeat("<a>", 20000)),
			} {
				_, _ = send.WriteToUDP(junk, group)
			}
			if _, err := send.WriteToUDP(payload, group); err != nil {
				t.Fatal(err)
			}
			timeout := time.After(100 * time.Millisecond)
		drain:
			for {
				select {
				case ev := <-events:
					if ev.Device.URN != urn {
						t.Fatalf("unexpected event %v %+v", ev.Kind, ev.Device)
					}
					if ev.Kind == kind {
						return ev
					}
					apply(ev) // a late repeat of the previous announcement
				case <-timeout:
					break drain
				}
			}
		}
		t.Fatalf("no %v event", kind)
		return Event{}
	}

	ev := waitEvent(Hello, helloXML("Hello", strings.ToUpper("uuid:1234abcd-0000-4000-8000-0000000000ab"), "http://127.0.0.1:8080/onvif/device_service http://[bad"))
	apply(ev)
	d := known[urn]
	if d.Name != "Yard Cam" || !slices.Equal(d.XAddrs, []string{"http://127.0.0.1:8080/onvif/device_service"}) ||
		!slices.Equal(d.Interfaces, []string{"lo"}) || d.Addr != "127.0.0.1" {
		t.Fatalf("hello device %+v", d)
	}
	apply(waitEvent(Bye, helloXML("Bye", urn, "")))
	if len(known) != 0 {
		t.Fatalf("after Bye: %+v", known)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	none, _ := NewWatcher(ProbeOptions{Interfaces: []string{"none"}})
	if err := none.Run(context.Background(), events); err != ErrDiscoveryDisabled {
		t.Fatalf("disabled watcher: %v", err)
	}
}
