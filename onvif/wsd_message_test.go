package onvif

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readCapture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "onvif", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseProbeMatchesHikvision(t *testing.T) {
	m, err := ParseMessage(readCapture(t, "probematches_hikvision.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindProbeMatches || m.RelatesTo != "urn:uuid:6f1a6b2e-4f5b-4b7c-9a51-0d1e2f3a4b5c" {
		t.Fatalf("kind %v relatesTo %q", m.Kind, m.RelatesTo)
	}
	if len(m.Matches) != 1 {
		t.Fatalf("matches: %d", len(m.Matches))
	}
	mt := m.Matches[0]
	// Bare "uuid:" in upper case is normalised.
	if mt.URN != "urn:uuid:3f1b2c4d-1dd2-11b2-8a3b-bcad28d4e0f1" {
		t.Errorf("URN %q", mt.URN)
	}
	wantX := []string{"http://192.168.1.64/onvif/device_service", "http://[fe80::bead:28ff:fed4:e0f1]/onvif/device_service"}
	if !reflect.DeepEqual(mt.XAddrs, wantX) {
		t.Errorf("XAddrs %q", mt.XAddrs)
	}
	if mt.Name != "HIKVISION DS-2CD2143G0-I" || mt.Hardware != "DS-2CD2143G0-I" || mt.Location != "city/hangzhou" {
		t.Errorf("name %q hardware %q location %q", mt.Name, mt.Hardware, mt.Location)
	}
	if !reflect.DeepEqual(mt.Types, []string{"dn:NetworkVideoTransmitter", "tds:Device"}) {
		t.Errorf("types %q", mt.Types)
	}
	if len(mt.Scopes) != 7 {
		t.Errorf("scopes %d", len(mt.Scopes))
	}
}

func TestParseProbeMatchesAxis(t *testing.T) {
	m, err := ParseMessage(readCapture(t, "probematches_axis.xml"))
	if err != nil {
		t.Fatal(err)
	}
	mt := m.Matches[0]
	if mt.URN != "urn:uuid:5f5a69c2-e0ae-504f-829b-00408cabcdef" {
		t.Errorf("URN %q", mt.URN)
	}
	if len(mt.XAddrs) != 3 || mt.XAddrs[2] != "https://10.20.0.17:443/onvif/device_service" {
		t.Errorf("XAddrs %q", mt.XAddrs)
	}
	if mt.Name != "AXIS M3106-L Mk II" || mt.Location != "Entrée nord" {
		t.Errorf("name %q location %q", mt.Name, mt.Location)
	}
}

func TestParseMalformedXAddrs(t *testing.T) {
	m, err := ParseMessage(readCapture(t, "probematches_malformed_xaddr.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// The second ProbeMatch has an empty EndpointReference: dropped.
	if len(m.Matches) != 1 {
		t.Fatalf("matches %d", len(m.Matches))
	}
	mt := m.Matches[0]
	// Only the one well-formed http URL survives: bad IPv6 zone, no host,
	// ftp, embedded credentials, bad port, garbage.
	if !reflect.DeepEqual(mt.XAddrs, []string{"http://10.0.0.9:8000/onvif/device_service"}) {
		t.Errorf("XAddrs %q", mt.XAddrs)
	}
	// A badly escaped name is kept raw rather than lost; an empty hardware is ignored.
	if mt.Name != "Cheap%ZZCam" || mt.Hardware != "" {
		t.Errorf("name %q hardware %q", mt.Name, mt.Hardware)
	}
}

func TestParseHelloBye(t *testing.T) {
	h, err := ParseMessage(readCapture(t, "hello.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != KindHello || h.Matches[0].URN != "urn:uuid:1234abcd-0000-4000-8000-0000000000ab" ||
		h.Matches[0].Name != "Dock Camera" || len(h.Matches[0].XAddrs) != 1 {
		t.Fatalf("hello %+v", h)
	}
	b, err := ParseMessage(readCapture(t, "bye.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != KindBye || b.Matches[0].URN != h.Matches[0].URN {
		t.Fatalf("bye %+v", b)
	}
	p, err := ParseMessage(readCapture(t, "probe.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindProbe || !reflect.DeepEqual(p.Types, []string{"dn:NetworkVideoTransmitter"}) || p.MessageID == "" {
		t.Fatalf("probe %+v", p)
	}
}

func TestParseRejects(t *testing.T) {
	big := "<s:Envelope xmlns:s=\"x\"><s:Body><Hello><EndpointReference><Address>uuid:01</Address></EndpointReference><Scopes>" +
		strings.Repeat("a ", maxMessageBody) + "</Scopes></Hello></s:Body></s:Envelope>"
	for name, in := range map[string]string{
		"empty":       "",
		"not xml":     "\x00\x01garbage",
		"html":        "<html><body>hi</body></html>",
		"no body":     `<Envelope><Header/></Envelope>`,
		"other body":  `<Envelope><Body><GetStatus/></Body></Envelope>`,
		"hello noEPR": `<Envelope><Body><Hello><XAddrs>http://1.2.3.4/</XAddrs></Hello></Body></Envelope>`,
		"bad urn":     `<Envelope><Body><Bye><EndpointReference><Address>uuid:zz-not-hex</Address></EndpointReference></Bye></Body></Envelope>`,
		"truncated":   string(readCapture(t, "hello.xml")[:300]),
		"oversized":   big,
	} {
		if _, err := ParseMessage([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestNormaliseURN(t *testing.T) {
	for in, want := range map[string]string{
		"uuid:ABCDEF01-0000-4000-8000-000000000001":      "urn:uuid:abcdef01-0000-4000-8000-000000000001",
		"urn:uuid:abcdef01-0000-4000-8000-000000000001":  "urn:uuid:abcdef01-0000-4000-8000-000000000001",
		" URN:UUID:ABCDEF01-0000-4000-8000-000000000001": "urn:uuid:abcdef01-0000-4000-8000-000000000001",
		"urn:dev:ops:acme-cam-17":                        "urn:dev:ops:acme-cam-17",
	} {
		got, ok := NormaliseURN(in)
		if !ok || got != want {
			t.Errorf("NormaliseURN(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "uuid:", "uuid:xyz", "uuid:----", "noscheme", "urn:uuid:a\nb", strings.Repeat("a:", 200)} {
		if got, ok := NormaliseURN(in); ok {
			t.Errorf("NormaliseURN(%q) = %q, ok; want rejection", in, got)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, name := range []string{"probematches_hikvision.xml", "probematches_axis.xml", "probematches_malformed_xaddr.xml", "hello.xml", "bye.xml", "probe.xml"} {
		f.Add(readCapture(f, name))
	}
	f.Add([]byte(`<Envelope><Body><ProbeMatches><ProbeMatch><EndpointReference><Address>uuid:1</Address></EndpointReference><XAddrs>http://[::1%25/ http://a:0/</XAddrs></ProbeMatch></ProbeMatches></Body></Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(m.Matches) > maxMatches {
			t.Fatalf("%d matches", len(m.Matches))
		}
		for _, mt := range m.Matches {
			if _, ok := NormaliseURN(mt.URN); !ok {
				t.Fatalf("unnormalised URN %q", mt.URN)
			}
			if len(mt.XAddrs) > maxXAddrs || len(mt.Scopes) > maxScopes || len(mt.Types) > maxTypes {
				t.Fatalf("unbounded lists")
			}
			for _, x := range mt.XAddrs {
				if !validXAddr(x) {
					t.Fatalf("invalid XAddr kept: %q", x)
				}
			}
		}
	})
}

func TestDeviceMerge(t *testing.T) {
	now := time.Now()
	d := Device{URN: "urn:uuid:01", XAddrs: []string{"http://a/"}, Interfaces: []string{"eth1"}, Name: "old", LastSeen: now.Add(-time.Minute)}
	d.Merge(Device{URN: "urn:uuid:01", XAddrs: []string{"http://a/", "http://b/"}, Interfaces: []string{"eth0"}, Name: "new", Addr: "10.0.0.2", LastSeen: now})
	if !reflect.DeepEqual(d.XAddrs, []string{"http://a/", "http://b/"}) || !reflect.DeepEqual(d.Interfaces, []string{"eth0", "eth1"}) ||
		d.Name != "new" || d.Addr != "10.0.0.2" || !d.LastSeen.Equal(now) {
		t.Fatalf("%+v", d)
	}
	d.Merge(Device{URN: "urn:uuid:02", Name: "other"})
	if d.Name != "new" {
		t.Fatal("merged a different device")
	}
	many := Device{URN: "urn:uuid:01"}
	for i := range 100 {
		many.XAddrs = append(many.XAddrs, fmt.Sprintf("http://h%d/", i))
	}
	d.Merge(many)
	if len(d.XAddrs) != maxXAddrs {
		t.Fatalf("%d XAddrs", len(d.XAddrs))
	}
	// Every source is kept (the first ones), not only the last reply's.
	d.Merge(Device{URN: "urn:uuid:01", Addr: "10.0.0.66"})
	for i := range 40 {
		d.Merge(Device{URN: "urn:uuid:01", Addr: fmt.Sprintf("10.1.0.%d", i)})
	}
	if len(d.Addrs) != maxSourceAddrs || d.Addrs[0] != "10.0.0.2" || d.Addrs[1] != "10.0.0.66" {
		t.Fatalf("sources %q", d.Addrs)
	}
	pd := deviceFromMatch(Match{URN: "urn:uuid:03"}, "lo", "10.0.0.5", now)
	pd.merge(Match{URN: "urn:uuid:03"}, "lo", "10.0.0.66", now)
	if !reflect.DeepEqual(pd.Addrs, []string{"10.0.0.5", "10.0.0.66"}) {
		t.Fatalf("probe replies from two sources: %q", pd.Addrs)
	}
}
