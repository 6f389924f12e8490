package apitype

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestCheckStreamURL(t *testing.T) {
	good := []string{"rtsp://127.0.0.1/s", "rtsps://cam.example:322/live?x=1", "rtsp://[::1]:554/a", "rtsp://cam-1.lan/ch0", "http://10.0.0.9/video.mjpg", "https://cam.lan:8443/video.cgi?res=1"}
	for _, u := range good {
		if err := CheckStreamURL(u); err != nil {
			t.Errorf("CheckStreamURL(%q) = %v", u, err)
		}
	}
	bad := map[string]string{
		"rtsp:///s":                 "no host",
		"rtsp://:554/s":             "no host",
		"rtsp://bad_host!/s":        "invalid host name",
		"rtsp://-cam/s":             "invalid host name",
		"rtsp://h:0/s":              "invalid port",
		"rtsp://h:99999/s":          "invalid port",
		"rtsp://h:/s":               "empty port",
		"ftp://h/s":                 "rtsp://, rtsps:// URL (or http://, https:// for an MJPEG camera)",
		"http://u:pw@h/video.mjpg":  CredentialsInURL,
		"rtsp://u:pw@h/s":           CredentialsInURL,
		"rtsp://u:p/w@h/s":          CredentialsInURL,
		"rtsp://u:se cret@[::1/":    CredentialsInURL,
		"rtsp://h/%zz":              "invalid stream URL",
		"rtsp://bad host with sp/x": "invalid",
		"rtsp://user#x:pw@h/s":      "must not hold a '#'",
	}
	for u, want := range bad {
		err := CheckStreamURL(u)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != CodeInvalid || !strings.Contains(ae.Message, want) {
			t.Errorf("CheckStreamURL(%q) = %v; want an invalid error with %q", u, err, want)
			continue
		}
		for _, secret := range []string{"pw", "p/w", "se cret"} {
			if strings.Contains(u, secret) && strings.Contains(ae.Message, secret) {
				t.Errorf("CheckStreamURL(%q) echoes %q: %v", u, secret, ae)
			}
		}
	}
}

func TestParseTransport(t *testing.T) {
	for in, want := range map[string]Transport{"": TransportAuto, "auto": TransportAuto, "tcp": TransportTCP, "udp": TransportUDP} {
		if got, err := ParseTransport(in); err != nil || got != want {
			t.Errorf("ParseTransport(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"TCP", "http", " tcp"} {
		if _, err := ParseTransport(in); err == nil {
			t.Errorf("ParseTransport(%q) accepted", in)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	s := func(v string) *string { return &v }
	dirSet := func(bindPassword string) DirectorySetRequest {
		return DirectorySetRequest{URL: "ldaps://dc1.test", BindDN: "cn=svc,dc=test", BaseDN: "dc=test", BindPassword: bindPassword}
	}
	yes := true
	cases := []struct {
		name string
		req  interface{ Validate() error }
		want string // "" = valid
	}{
		{"add ok", CameraAddRequest{Name: "cam1", URL: "rtsp://h/s"}, ""},
		{"add bad name", CameraAddRequest{Name: "Cam", URL: "rtsp://h/s"}, "invalid camera name"},
		{"add no url", CameraAddRequest{Name: "cam1"}, "--url is required"},
		{"add pw no user", CameraAddRequest{Name: "cam1", URL: "rtsp://h/s", Password: "x"}, "needs --user"},
		{"add bad transport", CameraAddRequest{Name: "cam1", URL: "rtsp://h/s", Transport: "x"}, "--transport"},
		{"adopt both", CameraAdoptRequest{Name: "cam1", DeviceURN: "urn:uuid:1", XAddr: "http://h/", User: "u"}, "exactly one"},
		{"adopt no user", CameraAdoptRequest{Name: "cam1", XAddr: "http://h/"}, "--user"},
		{"adopt xaddr creds", CameraAdoptRequest{Name: "cam1", XAddr: "http://u:p@h/", User: "u"}, CredentialsInURL},
		{"adopt xaddr no host", CameraAdoptRequest{Name: "cam1", XAddr: "http:///onvif", User: "u"}, "no host"},
		{"set nothing", CameraSetRequest{Name: "cam1", Stream: "main"}, "nothing to change"},
		{"set ok", CameraSetRequest{Name: "cam1", OnDemand: &yes}, ""},
		{"set bad url", CameraSetRequest{Name: "cam1", URL: s("rtsp:///x")}, "no host"},
		{"set bad stream", CameraSetRequest{Name: "cam1", Stream: "A", URL: s("rtsp://h/x")}, "invalid stream name"},
		{"user short pw", UserAddRequest{Name: "alice", Password: "1234567"}, "at least 8 characters"},
		{"user ok", UserAddRequest{Name: "alice", Password: "12345678"}, ""},
		{"passwd newline", UserPasswdRequest{Name: "alice", Password: "1234\n5678"}, "at least 8 characters"},
		{"directory ok, bind password kept", dirSet(""), ""},
		{"directory bind password NUL", dirSet("pass\x00word"), "the bind password must be 1 to 1024 bytes without NUL"},
		{"directory bind password long", dirSet(strings.Repeat("p", 1025)), "the bind password must be 1 to 1024 bytes"},
		{"directory test empty password", DirectoryTestRequest{User: "jdoe"}, "the password must be 1 to 1024 bytes"},
		{"directory test short password ok", DirectoryTestRequest{User: "jdoe", Password: "pw"}, ""},
		{"member bad", GroupMemberRequest{Group: "ops", User: "Bob"}, "invalid user name"},
		{"grant ok", Grant{Subject: "@ops", Action: "read", Pattern: "cam1/*"}, ""},
		{"grant bad subject", Grant{Subject: "Bob", Action: "read", Pattern: "*"}, "a group is written @name"},
		{"discover too long", DiscoverRequest{TimeoutMS: 31000}, "between 0 and 30s"},
		{"discover bad target", DiscoverRequest{Targets: []string{"a/b"}}, "invalid target"},
		{"audit limit", AuditListRequest{Limit: MaxAuditLimit + 1}, "at most"},
	}
	for _, c := range cases {
		err := c.req.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != CodeInvalid || !strings.Contains(ae.Message, c.want) {
			t.Errorf("%s: %v; want an invalid error with %q", c.name, err, c.want)
		}
	}
}

func TestRedactURLsInTextCoversUnescapedPasswords(t *testing.T) {
	msg := "connect rtsp://admin:pa/ss:w@rd@10.0.0.5/s failed\n\tSDP: \"o=- rtsp://u:p w@h\""
	got := RedactURLsInText(msg)
	if strings.Contains(got, "pa/ss") || strings.Contains(got, "w@rd") || !strings.Contains(got, "rtsp://10.0.0.5/s failed\n\tSDP:") {
		t.Errorf("RedactURLsInText = %q", got)
	}
}

// FuzzCheckStreamURL: whatever an admin pastes, the refusal never quotes a
// password from it.
func FuzzCheckStreamURL(f *testing.F) {
	f.Add("camuser", "p@ss:w/o%rd #1", "10.0.0.2:554", "/live")
	f.Add("", "hunter22", "[::1", "/")
	f.Fuzz(func(t *testing.T, user, pass, host, rest string) {
		raw := "rtsp://" + user + ":" + pass + "@" + host + rest
		err := CheckStreamURL(raw)
		if err == nil {
			if u, perr := url.Parse(raw); perr != nil || u.User != nil || u.Fragment != "" {
				t.Fatalf("CheckStreamURL(%q) accepted credentials", raw)
			}
			return
		}
		if len(pass) >= 4 && strings.Contains(err.Error(), pass) && !strings.Contains(CredentialsInURL+user+host+rest, pass) {
			t.Fatalf("CheckStreamURL(%q) = %v echoes the password", raw, err)
		}
	})
}
