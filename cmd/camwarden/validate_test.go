package main

import (
	"strings"
	"testing"

	"github.com/camwarden/camwarden/daemon/api"
)

// Bad values are refused by the CLI itself (exit 2, nothing sent) with the
// same rules the daemon applies (apitype's Validate methods).
func TestBadValuesAreUsageErrors(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	const pw = "long-enough-password"
	for _, tc := range []struct {
		stdin  string
		args   []string
		stderr string
	}{
		{"", []string{"camera", "add", "Lobby Cam", "--url", "rtsp://127.0.0.1/s"}, `invalid camera name "Lobby Cam"`},
		{"", []string{"camera", "add", "cam1", "--stream", "Main", "--url", "rtsp://127.0.0.1/s"}, `invalid stream name "Main"`},
		{"", []string{"camera", "add", "cam1", "--url", "rtsp:///s"}, "stream URL has no host"},
		{"", []string{"camera", "add", "cam1", "--url", "rtsp://bad_host!/s"}, "invalid host name"},
		{"", []string{"camera", "add", "cam1", "--url", "rtsp://127.0.0.1:99999/s"}, "invalid port"},
		{"", []string{"camera", "add", "cam1", "--url", "ftp://127.0.0.1/s"}, "rtsp://, rtsps:// URL (or http://, https:// for an MJPEG camera)"},
		{"", []string{"camera", "set", "cam1", "--transport", "carrier"}, "--transport must be auto, tcp or udp"},
		{"", []string{"camera", "set", "cam1", "--url", "rtsp:///x"}, "no host"},
		{"", []string{"camera", "show", "CAM"}, `invalid camera name "CAM"`},
		{"", []string{"camera", "remove", "../x"}, `invalid camera name`},
		{"", []string{"camera", "adopt", "cam1", "--xaddr", "ftp://127.0.0.1/onvif", "--user", "admin", "--password-stdin"}, "invalid --xaddr"},
		{pw + "\n", []string{"user", "add", "Alice", "--password-stdin"}, `invalid user name "Alice"`},
		{"short\n", []string{"user", "add", "alice", "--password-stdin"}, "at least 8 characters"},
		{"short\n", []string{"user", "passwd", "alice", "--password-stdin"}, "at least 8 characters"},
		{"", []string{"user", "disable", "a b"}, "invalid user name"},
		{"", []string{"group", "add", "Ops!"}, `invalid group name "Ops!"`},
		{"", []string{"group", "member", "add", "ops", "Bob"}, `invalid user name "Bob"`},
		{"", []string{"grant", "alice", "write", "cam1/*"}, `unknown action "write"`},
		{"", []string{"grant", "alice", "read", "cam1"}, `invalid pattern "cam1"`},
		{"", []string{"grant", "@Ops", "read", "*"}, `invalid group name "Ops"`},
		{"", []string{"revoke", "Alice", "read", "*"}, `invalid user name "Alice"`},
		{"", []string{"grants", "@"}, "invalid group name"},
		{"", []string{"discover", "--timeout", "10m"}, "--timeout must be between 0 and 30s"},
		{"", []string{"discover", "--target", "user@host"}, "invalid target"},
		{"", []string{"audit", "list", "--limit", "20000"}, "--limit must be at most 10000"},
		{"", []string{"issuer", "add", "portal", "--jwks-url", "http://portal.test/jwks", "--audience", "box-1"}, "add --insecure-http to accept that"},
		{"", []string{"directory", "set", "--url", "ldap://dc1.test", "--bind-dn", "cn=svc", "--base-dn", "dc=test"}, "add --insecure-ldap to accept that"},
		{"", []string{"camera", "move", "cam1", "--to", "http://x y"}, "invalid --to"},
		{"", []string{"camera", "move", "cam1", "--to", "ftp://10.0.0.2/"}, "invalid --to"},
		{"", []string{"camera", "move", "cam1", "--to", "10.0.0.2:99999"}, "port 1-65535"},
		{"", []string{"camera", "move", "cam1", "--to", "bad_host!"}, "not a host name or IP address"},
		{"", []string{"camera", "adopt", "cam1", "--device", "urn:uuid:not-hex!", "--user", "admin", "--password-stdin"}, "a uuid is hex digits and dashes"},
		{"", []string{"camera", "adopt", "cam1", "--device", "urn:uuid:", "--user", "admin", "--password-stdin"}, "invalid --device"},
		{"", []string{"camera", "adopt", "cam1", "--device", "lobby", "--user", "admin", "--password-stdin"}, "invalid --device"},
	} {
		res := r.run(t, tc.stdin, tc.args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.stderr) || !strings.Contains(res.stderr, "usage: camwarden") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, res.code, res.stderr, tc.stderr)
		}
		if calls := r.takeCalls(); len(calls) != 0 {
			t.Errorf("%v reached the daemon: %+v", tc.args, calls)
		}
	}
}

// Plain http JWKS and plain ldap are accepted to loopback, with StartTLS,
// or when the admin says so.
func TestPlainIdentityTransportsAllowed(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	for _, args := range [][]string{
		{"issuer", "add", "portal", "--jwks-url", "http://127.0.0.1:8080/jwks", "--audience", "box-1"},
		{"issuer", "add", "portal", "--jwks-url", "http://localhost/jwks", "--audience", "box-1"},
		{"issuer", "add", "portal", "--jwks-url", "http://portal.test/jwks", "--audience", "box-1", "--insecure-http"},
		{"directory", "set", "--url", "ldap://127.0.0.1:3389", "--bind-dn", "cn=svc", "--base-dn", "dc=test"},
		{"directory", "set", "--url", "ldap://[::1]:3389", "--bind-dn", "cn=svc", "--base-dn", "dc=test"},
		{"directory", "set", "--url", "ldap://dc1.test", "--start-tls", "--bind-dn", "cn=svc", "--base-dn", "dc=test"},
		{"directory", "set", "--url", "ldap://dc1.test", "--insecure-ldap", "--bind-dn", "cn=svc", "--base-dn", "dc=test"},
	} {
		if res := r.run(t, "", args...); res.code != 0 {
			t.Errorf("%v: exit %d, %s", args, res.code, res.stderr)
		}
	}
	if calls := r.takeCalls(); len(calls) != 7 {
		t.Errorf("%d calls reached the daemon, want 7", len(calls))
	}
}
