package camsim

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const getDeviceInformation = `<tds:GetDeviceInformation/>`

func TestDeviceInformationWithCorrectCredentials(t *testing.T) {
	s, _ := startSim(t, Options{Cameras: 2})
	for i, c := range s.Cameras() {
		resp, data := post(t, c.XAddr(), envelope(wsseHeader(testUser, testPass, time.Now(), nil), getDeviceInformation), nil)
		wantOK(t, resp, data)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/soap+xml") {
			t.Errorf("Content-Type %q", ct)
		}
		var env struct {
			Info struct {
				Manufacturer, Model, SerialNumber string
			} `xml:"Body>GetDeviceInformationResponse"`
		}
		if err := xml.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		if env.Info.Model != "CamSim-1080" || env.Info.SerialNumber != fmt.Sprintf("CS%08X", i+1) || env.Info.Manufacturer == "" {
			t.Errorf("camera %d: device information %+v", i, env.Info)
		}
	}
	a, b := s.Cameras()[0], s.Cameras()[1]
	if a.XAddr() == b.XAddr() || a.URN() == b.URN() {
		t.Errorf("cameras share an address or identity: %s %s", a.XAddr(), a.URN())
	}
}

func TestIdentityIsStablePerSeedAndIndex(t *testing.T) {
	s1, err := New(Options{Cameras: 2, Username: "u", Password: "p", Seed: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := New(Options{Cameras: 2, Username: "u", Password: "p", Seed: "lab"})
	s3, _ := New(Options{Cameras: 2, Username: "u", Password: "p", Seed: "other"})
	u := s1.Cameras()[1].URN()
	if u != s2.Cameras()[1].URN() || u == s3.Cameras()[1].URN() || u == s1.Cameras()[0].URN() {
		t.Fatalf("urns not stable per seed+index: %s %s %s", u, s2.Cameras()[1].URN(), s3.Cameras()[1].URN())
	}
	if !strings.HasPrefix(u, "urn:uuid:") || len(u) != len("urn:uuid:")+36 || u[len("urn:uuid:")+14] != '5' {
		t.Fatalf("not a version-5 style urn:uuid: %s", u)
	}
}

func TestWrongCredentialsAreNotAuthorized(t *testing.T) {
	s, logs := startSim(t, Options{})
	c := s.Cameras()[0]
	cases := map[string]string{
		"wrong password": wsseHeader(testUser, "nope", time.Now(), nil),
		"wrong user":     wsseHeader("root", testPass, time.Now(), nil),
		"no token":       "",
		"old token":      wsseHeader(testUser, testPass, time.Now().Add(-6*time.Minute), nil),
		"future token":   wsseHeader(testUser, testPass, time.Now().Add(6*time.Minute), nil),
		"text password": strings.Replace(wsseHeader(testUser, testPass, time.Now(), nil),
			"#PasswordDigest", "#PasswordText", 1),
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			resp, data := post(t, c.XAddr(), envelope(hdr, getDeviceInformation), nil)
			wantFault(t, resp, data, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized")
		})
	}
	// The media service is protected the same way.
	resp, data := post(t, c.XAddr(), envelope("", `<trt:GetProfiles/>`), nil)
	wantFault(t, resp, data, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized")
	if !strings.Contains(logs.String(), "wrong username or password digest") {
		t.Errorf("rejections are not logged with a reason:\n%s", logs)
	}
}

func TestReplayedNonceIsRejected(t *testing.T) {
	s, _ := startSim(t, Options{})
	c := s.Cameras()[0]
	hdr := wsseHeader(testUser, testPass, time.Now(), []byte("0123456789abcdef"))
	resp, data := post(t, c.XAddr(), envelope(hdr, getDeviceInformation), nil)
	wantOK(t, resp, data)
	resp, data = post(t, c.XAddr(), envelope(hdr, getDeviceInformation), nil)
	wantFault(t, resp, data, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized")
	// A fresh nonce works again.
	resp, data = post(t, c.XAddr(), envelope(wsseHeader(testUser, testPass, time.Now(), nil), getDeviceInformation), nil)
	wantOK(t, resp, data)
}

func cameraTime(t *testing.T, xaddr string) time.Time {
	t.Helper()
	resp, data := post(t, xaddr, envelope("", `<tds:GetSystemDateAndTime/>`), nil)
	wantOK(t, resp, data)
	var v struct {
		T struct {
			Hour   int `xml:"Time>Hour"`
			Minute int `xml:"Time>Minute"`
			Second int `xml:"Time>Second"`
			Year   int `xml:"Date>Year"`
			Month  int `xml:"Date>Month"`
			Day    int `xml:"Date>Day"`
		} `xml:"Body>GetSystemDateAndTimeResponse>SystemDateAndTime>UTCDateTime"`
	}
	if err := xml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	d := v.T
	if d.Year == 0 {
		t.Fatalf("no UTCDateTime in:\n%s", data)
	}
	return time.Date(d.Year, time.Month(d.Month), d.Day, d.Hour, d.Minute, d.Second, 0, time.UTC)
}

func TestSkewedClock(t *testing.T) {
	const skew = 8760 * time.Hour
	s, _ := startSim(t, Options{ClockSkew: skew})
	c := s.Cameras()[0]
	// GetSystemDateAndTime needs no auth and tells the camera's clock.
	camNow := cameraTime(t, c.XAddr())
	if off := camNow.Sub(time.Now().Add(skew)); off > 3*time.Second || off < -3*time.Second {
		t.Fatalf("camera clock %s is %s off host+skew", camNow, off)
	}
	// A token stamped with the host clock is a year off the camera's: rejected.
	resp, data := post(t, c.XAddr(), envelope(wsseHeader(testUser, testPass, time.Now(), nil), getDeviceInformation), nil)
	wantFault(t, resp, data, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized")
	// A token stamped with the camera's clock (as a client computes it from the offset) is accepted.
	offset := time.Until(camNow)
	resp, data = post(t, c.XAddr(), envelope(wsseHeader(testUser, testPass, time.Now().Add(offset), nil), getDeviceInformation), nil)
	wantOK(t, resp, data)
}

func TestUnknownActionAndMalformedRequests(t *testing.T) {
	s, _ := startSim(t, Options{})
	x := s.Cameras()[0].XAddr()
	hdr := func() string { return wsseHeader(testUser, testPass, time.Now(), nil) }

	resp, data := post(t, x, envelope(hdr(), `<tds:SystemReboot/>`), nil)
	wantFault(t, resp, data, http.StatusInternalServerError, "env:Receiver", "ter:ActionNotSupported")
	// Unknown actions are refused before authentication, like real devices do.
	resp, data = post(t, x, envelope("", `<PullMessages xmlns="http://www.onvif.org/ver10/events/wsdl"/>`), nil)
	wantFault(t, resp, data, http.StatusInternalServerError, "env:Receiver", "ter:ActionNotSupported")

	resp, data = post(t, x, `<s:Envelope xmlns:s="`+nsEnv+`"><s:Body><broken`, nil)
	wantFault(t, resp, data, http.StatusBadRequest, "env:Sender", "ter:WellFormed")

	soap11 := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><tds:GetSystemDateAndTime xmlns:tds="` + nsTDS + `"/></s:Body></s:Envelope>`
	resp, data = post(t, x, soap11, nil)
	wantFault(t, resp, data, http.StatusInternalServerError, "env:VersionMismatch")

	resp, _ = post(t, x, "", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty body: HTTP %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, x, nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d", r.StatusCode)
	}
}

type ttProfile struct {
	Token string `xml:"token,attr"`
	Name  string `xml:"http://www.onvif.org/ver10/schema Name"`
	VSC   struct {
		Token       string `xml:"token,attr"`
		SourceToken string `xml:"http://www.onvif.org/ver10/schema SourceToken"`
	} `xml:"http://www.onvif.org/ver10/schema VideoSourceConfiguration"`
	VEC struct {
		Token      string `xml:"token,attr"`
		Encoding   string `xml:"http://www.onvif.org/ver10/schema Encoding"`
		Resolution struct {
			Width  int `xml:"http://www.onvif.org/ver10/schema Width"`
			Height int `xml:"http://www.onvif.org/ver10/schema Height"`
		} `xml:"http://www.onvif.org/ver10/schema Resolution"`
		RateControl struct {
			FrameRateLimit int `xml:"http://www.onvif.org/ver10/schema FrameRateLimit"`
			BitrateLimit   int `xml:"http://www.onvif.org/ver10/schema BitrateLimit"`
		} `xml:"http://www.onvif.org/ver10/schema RateControl"`
	} `xml:"http://www.onvif.org/ver10/schema VideoEncoderConfiguration"`
}

func TestMediaProfilesStreamURIsAndSources(t *testing.T) {
	s, _ := startSim(t, Options{})
	c := s.Cameras()[0]
	x := c.XAddr()
	call := func(body string) []byte {
		t.Helper()
		resp, data := post(t, x, envelope(wsseHeader(testUser, testPass, time.Now(), nil), body), nil)
		wantOK(t, resp, data)
		return data
	}

	// The media XAddr comes from GetCapabilities, as clients find it.
	var caps struct {
		Media string `xml:"Body>GetCapabilitiesResponse>Capabilities>Media>XAddr"`
		Dev   string `xml:"Body>GetCapabilitiesResponse>Capabilities>Device>XAddr"`
	}
	if err := xml.Unmarshal(call(`<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>`), &caps); err != nil {
		t.Fatal(err)
	}
	if caps.Dev != x || !strings.HasSuffix(caps.Media, "/onvif/media_service") {
		t.Fatalf("capabilities: %+v", caps)
	}
	x = caps.Media

	var profiles struct {
		P []ttProfile `xml:"Body>GetProfilesResponse>Profiles"`
	}
	if err := xml.Unmarshal(call(`<trt:GetProfiles/>`), &profiles); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v", profiles.P)
	if len(profiles.P) != 2 {
		t.Fatalf("profiles: %s", got)
	}
	main, sub := profiles.P[0], profiles.P[1]
	if main.Token != "main" || main.VEC.Encoding != "H264" || main.VEC.Resolution.Width != 1920 ||
		main.VEC.Resolution.Height != 1080 || main.VEC.RateControl.FrameRateLimit != 25 ||
		main.VEC.RateControl.BitrateLimit != 4000 || main.VSC.SourceToken != "vs0" {
		t.Errorf("main profile: %+v", main)
	}
	if sub.Token != "sub" || sub.VEC.Resolution.Width != 640 || sub.VEC.Resolution.Height != 360 ||
		sub.VEC.RateControl.BitrateLimit != 500 {
		t.Errorf("sub profile: %+v", sub)
	}

	for _, p := range []string{"main", "sub"} {
		var su struct {
			URI string `xml:"Body>GetStreamUriResponse>MediaUri>Uri"`
		}
		body := `<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>` + p + `</trt:ProfileToken></trt:GetStreamUri>`
		if err := xml.Unmarshal(call(body), &su); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(su.URI)
		if err != nil || u.Scheme != "rtsp" || u.User != nil || u.Path != "/"+p || su.URI != c.RTSPURL(p) {
			t.Errorf("stream uri %q for %s (camera says %q)", su.URI, p, c.RTSPURL(p))
		}
		// The RTSP server really listens there.
		conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
		if err != nil {
			t.Fatalf("RTSP server at %s: %v", u.Host, err)
		}
		conn.Close()
	}
	resp, data := post(t, x, envelope(wsseHeader(testUser, testPass, time.Now(), nil),
		`<trt:GetStreamUri><trt:ProfileToken>nope</trt:ProfileToken></trt:GetStreamUri>`), nil)
	wantFault(t, resp, data, http.StatusBadRequest, "env:Sender", "ter:InvalidArgVal", "ter:NoProfile")

	var vsEnv struct {
		V *struct {
			Token string `xml:"token,attr"`
			W     int    `xml:"Resolution>Width"`
		} `xml:"Body>GetVideoSourcesResponse>VideoSources"`
	}
	if err := xml.Unmarshal(call(`<trt:GetVideoSources/>`), &vsEnv); err != nil || vsEnv.V == nil || vsEnv.V.Token != "vs0" || vsEnv.V.W != 1920 {
		t.Errorf("video sources: %+v %v", vsEnv.V, err)
	}
	var enc struct {
		C []struct {
			Token string `xml:"token,attr"`
		} `xml:"Body>GetVideoEncoderConfigurationsResponse>Configurations"`
	}
	if err := xml.Unmarshal(call(`<trt:GetVideoEncoderConfigurations/>`), &enc); err != nil || len(enc.C) != 2 || enc.C[0].Token != "vec_main" {
		t.Errorf("encoder configurations: %+v %v", enc, err)
	}
	// Device service odds and ends clients call.
	var scopes struct {
		Items []string `xml:"Body>GetScopesResponse>Scopes>ScopeItem"`
	}
	if err := xml.Unmarshal(call(`<tds:GetScopes/>`), &scopes); err != nil {
		t.Fatal(err)
	}
	if !contains(scopes.Items, "onvif://www.onvif.org/name/"+c.Name()) || !contains(scopes.Items, "onvif://www.onvif.org/hardware/CamSim-1080") {
		t.Errorf("scopes: %v", scopes.Items)
	}
	var svcs struct {
		S []struct {
			Namespace, XAddr string
		} `xml:"Body>GetServicesResponse>Service"`
	}
	if err := xml.Unmarshal(call(`<tds:GetServices><tds:IncludeCapability>true</tds:IncludeCapability></tds:GetServices>`), &svcs); err != nil || len(svcs.S) != 3 || svcs.S[1].Namespace != nsTRT || svcs.S[1].XAddr != x ||
		svcs.S[2].Namespace != nsTR2 || !strings.HasSuffix(svcs.S[2].XAddr, "/onvif/media2_service") {
		t.Errorf("services: %+v %v", svcs, err)
	}
	var host struct {
		Name string `xml:"Body>GetHostnameResponse>HostnameInformation>Name"`
	}
	if err := xml.Unmarshal(call(`<tds:GetHostname/>`), &host); err != nil || host.Name != c.Name() {
		t.Errorf("hostname %q %v", host.Name, err)
	}
	var nics struct {
		Addr string `xml:"Body>GetNetworkInterfacesResponse>NetworkInterfaces>IPv4>Config>Manual>Address"`
	}
	if err := xml.Unmarshal(call(`<tds:GetNetworkInterfaces/>`), &nics); err != nil || nics.Addr != "127.0.0.1" {
		t.Errorf("network interfaces %q %v", nics.Addr, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// digestAuthorization answers a challenge the way an RFC 2617 client does.
func digestAuthorization(t *testing.T, challenge, user, pass, uri string, nc int) string {
	t.Helper()
	p, ok := parseDigestAuth(challenge)
	if !ok || p["nonce"] == "" || p["qop"] != "auth" || p["realm"] == "" {
		t.Fatalf("bad challenge %q", challenge)
	}
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(user + ":" + p["realm"] + ":" + pass)
	ha2 := h("POST:" + uri)
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(ha1 + ":" + p["nonce"] + ":" + ncs + ":abcdef:auth:" + ha2)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", qop=auth, nc=%s, cnonce="abcdef", response="%s", algorithm=MD5`,
		user, p["realm"], p["nonce"], uri, ncs, resp)
}

func TestHTTPDigestMode(t *testing.T) {
	s, _ := startSim(t, Options{Auth: AuthDigest})
	x := s.Cameras()[0].XAddr()
	u, _ := url.Parse(x)
	body := envelope("", getDeviceInformation)

	// The clock is readable without credentials in digest mode too.
	cameraTime(t, x)

	resp, _ := post(t, x, body, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: HTTP %d, want 401", resp.StatusCode)
	}
	ch := resp.Header.Get("WWW-Authenticate")
	// A WS-Security token does not replace HTTP Digest in this mode.
	resp, _ = post(t, x, envelope(wsseHeader(testUser, testPass, time.Now(), nil), getDeviceInformation), nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wsse in digest mode: HTTP %d, want 401", resp.StatusCode)
	}

	auth := digestAuthorization(t, ch, testUser, testPass, u.RequestURI(), 1)
	resp, data := post(t, x, body, http.Header{"Authorization": {auth}})
	wantOK(t, resp, data)
	// The same nonce count again is a replay.
	resp, _ = post(t, x, body, http.Header{"Authorization": {auth}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed digest: HTTP %d, want 401", resp.StatusCode)
	}
	// The next count on the same nonce is fine.
	resp, data = post(t, x, body, http.Header{"Authorization": {digestAuthorization(t, ch, testUser, testPass, u.RequestURI(), 2)}})
	wantOK(t, resp, data)

	resp, _ = post(t, x, body, nil)
	bad := digestAuthorization(t, resp.Header.Get("WWW-Authenticate"), testUser, "wrong", u.RequestURI(), 1)
	resp, _ = post(t, x, body, http.Header{"Authorization": {bad}})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("wrong password: HTTP %d, want a fresh 401 challenge", resp.StatusCode)
	}
	// A nonce we never issued.
	forged := digestAuthorization(t, `Digest realm="camsim", qop="auth", nonce="00112233"`, testUser, testPass, u.RequestURI(), 1)
	resp, _ = post(t, x, body, http.Header{"Authorization": {forged}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged nonce: HTTP %d", resp.StatusCode)
	}
}

func TestRestartMovesPortsAndKeepsIdentity(t *testing.T) {
	s, _ := startSim(t, Options{})
	c := s.Cameras()[0]
	oldX, oldRTSP, urn := c.XAddr(), c.RTSPURL("main"), c.URN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.XAddr() == oldX || c.RTSPURL("main") == oldRTSP || c.URN() != urn || c.RTSPURL("main") == "" {
		t.Fatalf("after restart: %s %s %s", c.XAddr(), c.RTSPURL("main"), c.URN())
	}
	resp, data := post(t, c.XAddr(), envelope(wsseHeader(testUser, testPass, time.Now(), nil), getDeviceInformation), nil)
	wantOK(t, resp, data)
	old, _ := url.Parse(oldX)
	if conn, err := net.DialTimeout("tcp", old.Host, time.Second); err == nil {
		conn.Close()
		t.Fatalf("old HTTP port %s still accepts connections", old.Host)
	}
	if c.metaVer.Load() != 2 {
		t.Errorf("MetadataVersion %d after one restart, want 2", c.metaVer.Load())
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []Options{
		{Username: "u"},
		{Username: "u", Password: "pw-XYZZY", Auth: "basic"},
		{Username: "u", Password: "pw-XYZZY", Addr: "::1"},
		{Username: "u", Password: "pw-XYZZY", Cameras: -1},
		{Username: "u", Password: "pw-XYZZY", BasePort: 65530, Cameras: 4},
	}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		} else if o.Password != "" && strings.Contains(err.Error(), o.Password) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestNonceCacheExpiresAfterTheWindow(t *testing.T) {
	n := newNonceCache()
	t0 := time.Unix(1_800_000_000, 0)
	if !n.add("a", t0) || n.add("a", t0.Add(time.Minute)) {
		t.Fatal("replay within the window accepted")
	}
	// Past twice the Created window a replay is rejected by the clock
	// check anyway, so the nonce may be forgotten.
	if !n.add("b", t0.Add(2*tokenWindow+2*time.Minute)) || len(n.seen) != 1 {
		t.Fatalf("expired nonces kept: %d", len(n.seen))
	}
}
