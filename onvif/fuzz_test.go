package onvif

import (
	"encoding/xml"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
)

func FuzzParseEnvelope(f *testing.F) {
	for _, name := range []string{"fault_notauthorized.xml", "fault_actionnotsupported.xml", "fault_soap11.xml",
		"getdeviceinformation_response.xml", "getprofiles_response.xml", "getcapabilities_response.xml",
		"getservices_response.xml", "getstreamuri_response.xml", "getstreamuri_0000_credentials.xml", "getsystemdateandtime_response.xml", "hello.xml"} {
		f.Add(readCapture(f, name))
	}
	f.Add([]byte(`<Envelope><Body><Fault><Code><Value>a:Sender</Value><Subcode><Value>b:NotAuthorized</Value><Subcode><Value>c:X</Value></Subcode></Subcode></Code></Fault></Body></Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		inner, err := parseEnvelope(data)
		var fault *Fault
		switch {
		case errors.As(err, &fault):
			if fault.Code == "" || len(fault.Subcodes) > 8 || len(fault.Reason) > 256 {
				t.Fatalf("fault %+v", fault)
			}
			_ = fault.Error()
			_ = IsNotAuthorized(err)
			_ = IsActionNotSupported(err)
		case err != nil:
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("untyped error %v", err)
			}
		default:
			// What we hand on must itself be well-formed XML.
			var anyElem struct{ XMLName xml.Name }
			if err := xml.Unmarshal(inner, &anyElem); err != nil {
				t.Fatalf("body element %q does not re-parse: %v", inner, err)
			}
		}
	})
}

func FuzzParseProfiles(f *testing.F) {
	body, err := parseEnvelope(readCapture(f, "getprofiles_response.xml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add([]byte(`<GetProfilesResponse><Profiles token="a"><VideoEncoderConfiguration><Resolution><Width>1e300</Width><Height>-5</Height></Resolution><RateControl><FrameRateLimit>NaN</FrameRateLimit></RateControl></VideoEncoderConfiguration></Profiles></GetProfilesResponse>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := parseProfiles(data)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(ps) > maxProfiles {
			t.Fatalf("%d profiles", len(ps))
		}
		names := make([]string, len(ps))
		for i, p := range ps {
			if p.Token == "" || p.Width < 0 || p.Height < 0 || p.FrameRate < 0 || p.BitrateKbps < 0 {
				t.Fatalf("profile %+v", p)
			}
			names[i] = p.Name
		}
		seen := map[string]bool{}
		for _, n := range UniqueStreamNames(names) {
			if n == "" || len(n) > maxNameLen || seen[n] || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
				t.Fatalf("bad stream name %q", n)
			}
			seen[n] = true
		}
	})
}

func FuzzFixStreamURI(f *testing.F) {
	for _, s := range []string{
		"rtsp://admin:secret@0.0.0.0:554/Streaming/Channels/101?transportmode=unicast",
		"rtsp://192.168.1.10/live.sdp",
		"rtsps://[fe80::1%25eth0]:322/x",
		"rtsp://u:p@[bad/",
		"http://0.0.0.0/onvif/media",
		"/relative",
	} {
		f.Add(s)
	}
	reached, _ := url.Parse("http://127.0.0.1:8080/onvif/device_service")
	f.Fuzz(func(t *testing.T, raw string) {
		su, err := fixStreamURI(raw, reached)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		u, perr := url.Parse(su.URI)
		if perr != nil {
			t.Fatalf("result %q does not parse: %v", su.URI, perr)
		}
		// Never another host, never credentials in the URI.
		if u.Hostname() != "127.0.0.1" || u.User != nil {
			t.Fatalf("%q -> %q", raw, su.URI)
		}
	})
}

func FuzzDigestChallenge(f *testing.F) {
	for _, s := range []string{
		`Digest realm="IP Camera(C1234)", nonce="6b1e0c", qop="auth", algorithm=MD5, opaque="x", stale=FALSE`,
		`Digest realm="a\"b", nonce=abc, algorithm=SHA-256-sess, qop="auth,auth-int"`,
		`Basic realm="x"`,
		`Digest nonce="`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseDigestChallenge(s)
		if err != nil {
			return
		}
		if c.Nonce == "" {
			t.Fatal("accepted challenge without nonce")
		}
		a := c.authorization("POST", "/onvif/device_service", "user", "pw-fuzz-secret", 1)
		if strings.Contains(a, "pw-fuzz-secret") || !strings.HasPrefix(a, "Digest ") {
			t.Fatalf("authorization %q", a)
		}
		// Our own header must parse back with the same nonce and realm.
		p, err := parseAuthParams(a[len("Digest "):])
		if err != nil || p["nonce"] != c.Nonce || p["realm"] != c.Realm {
			t.Fatalf("round trip %q: %v %q", a, err, p)
		}
	})
}

func FuzzParseNetworkAddresses(f *testing.F) {
	f.Add([]byte(`<tds:GetNetworkInterfacesResponse xmlns:tds="d" xmlns:tt="t"><tds:NetworkInterfaces token="eth0"><tt:Enabled>true</tt:Enabled>` +
		`<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual><tt:Address>10.0.0.7</tt:Address><tt:PrefixLength>24</tt:PrefixLength></tt:Manual>` +
		`<tt:FromDHCP><tt:Address>10.0.0.8</tt:Address></tt:FromDHCP><tt:DHCP>true</tt:DHCP></tt:Config></tt:IPv4></tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>`))
	f.Add([]byte(`<R><NetworkInterfaces><Enabled>false</Enabled><IPv4><Config><Manual><Address>1.2.3.4</Address></Manual></Config></IPv4></NetworkInterfaces></R>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		addrs, err := parseNetworkAddresses(data)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(addrs) > 64 {
			t.Fatalf("%d addresses", len(addrs))
		}
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip == nil || ip.To4() == nil || ip.String() != a {
				t.Fatalf("not a canonical IPv4 address: %q", a)
			}
		}
	})
}

func TestParseNetworkAddresses(t *testing.T) {
	got, err := parseNetworkAddresses([]byte(`<R><NetworkInterfaces><Enabled>true</Enabled><IPv4><Enabled>true</Enabled><Config>` +
		`<Manual><Address> 10.0.0.7 </Address></Manual><FromDHCP><Address>10.0.0.8</Address></FromDHCP><LinkLocal><Address>fe80::1</Address></LinkLocal>` +
		`</Config></IPv4></NetworkInterfaces><NetworkInterfaces><Enabled>false</Enabled><IPv4><Config><Manual><Address>1.2.3.4</Address></Manual></Config></IPv4></NetworkInterfaces></R>`))
	if err != nil || strings.Join(got, ",") != "10.0.0.7,10.0.0.8" {
		t.Fatalf("got %q %v", got, err)
	}
}

// FuzzParseRecorderResponses feeds one input to every parser of the
// recorder and Media2 answers (GetVideoSources, Media2 GetProfiles and
// GetStreamUri, GetServices) and groups what comes out into channels:
// never a panic, only typed errors, and every cap holds.
func FuzzParseRecorderResponses(f *testing.F) {
	f.Add([]byte(`<GetVideoSourcesResponse><VideoSources token="vs1"/><VideoSources token="vs1"/><VideoSources token=""/></GetVideoSourcesResponse>`))
	f.Add([]byte(`<GetProfilesResponse><Profiles token="p1"><Name>m</Name><Configurations><VideoSource><SourceToken>vs1</SourceToken><Name>Door</Name></VideoSource><VideoEncoder><Encoding>H265</Encoding><Resolution><Width>1e99</Width></Resolution></VideoEncoder></Configurations></Profiles></GetProfilesResponse>`))
	f.Add([]byte(`<GetStreamUriResponse><Uri>rtsp://a:b@0.0.0.0/x</Uri></GetStreamUriResponse>`))
	f.Add([]byte(`<GetServicesResponse><Service><Namespace>http://www.onvif.org/ver20/media/wsdl</Namespace><XAddr>/m2</XAddr></Service></GetServicesResponse>`))
	f.Add([]byte(`<x><Profiles token="a"><VideoSourceConfiguration><SourceToken>s</SourceToken></VideoSourceConfiguration><VideoEncoderConfiguration/></Profiles></x>`))
	typed := func(t *testing.T, err error) {
		if err != nil && !errors.Is(err, ErrBadResponse) {
			t.Fatalf("untyped error %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sources, err := parseVideoSources(data)
		typed(t, err)
		if len(sources) > MaxChannels {
			t.Fatalf("%d sources", len(sources))
		}
		seen := map[string]bool{}
		for _, s := range sources {
			if s == "" || seen[s] || len(s) > maxSourceTokenLen {
				t.Fatalf("source token %q", s)
			}
			seen[s] = true
		}
		p2, err := parseProfiles2(data)
		typed(t, err)
		p1, err := parseProfiles(data)
		typed(t, err)
		for _, ps := range [][]Profile{p1, p2} {
			if len(ps) > maxProfiles {
				t.Fatalf("%d profiles", len(ps))
			}
			toks := map[string]bool{}
			for _, p := range ps {
				if p.Token == "" || toks[p.Token] || len(p.SourceToken) > maxSourceTokenLen {
					t.Fatalf("profile %+v", p)
				}
				toks[p.Token] = true
			}
			chs := GroupChannels(sources, ps)
			if len(chs) > MaxChannels {
				t.Fatalf("%d channels", len(chs))
			}
			last := 0
			for _, ch := range chs {
				if ch.Number <= last || ch.Number > MaxChannels || len(ch.Profiles) == 0 || len(ch.Profiles) > maxChannelProfiles || ch.Name == "" {
					t.Fatalf("channel %+v after %d", ch, last)
				}
				last = ch.Number
			}
		}
		if u, err := parseStreamURI2(data); err == nil && u == "" {
			t.Fatal("empty URI without an error")
		} else {
			typed(t, err)
		}
		svcs, err := parseServices(data)
		typed(t, err)
		if len(svcs) > maxServices {
			t.Fatalf("%d services", len(svcs))
		}
	})
}
