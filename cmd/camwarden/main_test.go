package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/api/apitest"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/internal/testutil"
	"golang.org/x/sys/unix"
)

// cliBin is the camwarden binary built for these tests, in a directory any
// uid can reach (the permission test runs it as uid 65534).
var cliBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "camwarden-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	cliBin = filepath.Join(dir, "camwarden")
	build := exec.Command("go", "build", "-o", cliBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building camwarden:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// secret is fed on stdin; it must reach the backend and appear in no output.
const secret = "S3cret-pw-7f2a!"

type call struct {
	op  string
	req any
}

// rig is the real admin API (daemon/api) on a real Unix socket with a fake
// backend behind it.
type rig struct {
	sock string
	mu   sync.Mutex
	// calls the backend got, in order
	calls []call
}

func newRig(t *testing.T, opts api.Options, handle func(op string, req any) (any, error)) *rig {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	r := &rig{sock: filepath.Join(dir, "admin.sock")}
	fake := &apitest.Fake{Handle: func(ctx context.Context, op string, c api.Caller, req any) (any, error) {
		r.mu.Lock()
		r.calls = append(r.calls, call{op, req})
		r.mu.Unlock()
		if handle != nil {
			return handle(op, req)
		}
		return nil, nil
	}}
	opts.Backend = fake
	ln, err := net.Listen("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(r.sock, 0o666)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop")
		}
	})
	return r
}

func (r *rig) takeCalls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the built binary with stdin from a pipe (not a terminal).
func runCLI(t *testing.T, sock, stdin string, prefix []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{}, prefix...)
	argv = append(argv, cliBin, "--socket", sock)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("running %v: %v", args, err)
	}
	if strings.Contains(res.stdout+res.stderr, secret) {
		t.Errorf("%v: the secret appears in the output:\n%s\n%s", args, res.stdout, res.stderr)
	}
	return res
}

func (r *rig) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCLI(t, r.sock, stdin, nil, args...)
}

// richBackend answers with a little data so tables have rows.
func richBackend(op string, req any) (any, error) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	switch op {
	case "Status":
		return &apitype.Status{Version: "0.1.0", PID: 42, StartedAt: now, RTSPAddr: ":8554", Cameras: 1, Streams: 2, StreamsUp: 1}, nil
	case "Discover":
		return &apitype.DiscoverResult{Devices: []apitype.Device{{URN: "urn:uuid:1", Name: "cam", XAddrs: []string{"http://127.0.0.1:8080/onvif/device_service"}, DeviceXAddr: "http://127.0.0.1:8080/onvif/device_service"}}}, nil
	case "CameraList":
		return &apitype.CameraList{Cameras: []apitype.Camera{{Name: "cam1", User: "admin", HasPassword: true, Streams: []apitype.Stream{{Name: "main", URL: "rtsp://127.0.0.1:554/s", Transport: "auto"}}}}}, nil
	case "CameraShow":
		return &apitype.Camera{Name: req.(string), User: "admin", HasPassword: true, ONVIF: &apitype.ONVIFIdentity{URN: "urn:uuid:1"}, Streams: []apitype.Stream{{Name: "main", URL: "rtsp://127.0.0.1:554/s", Transport: "tcp"}}}, nil
	case "StreamList":
		return &apitype.StreamList{Streams: []apitype.StreamStatus{{Camera: "cam1", Stream: "main", Path: "cam1/main", State: "live", Codec: "H264", BitrateKbps: 4000, FPS: 25, Readers: 3, LastError: "EOF",
			Tracks: []apitype.Track{
				{Media: "video", Codec: "H265", Width: 320, Height: 240, FPS: 10, BitrateKbps: 358, Repacketised: true},
				{Media: "audio", Codec: "AAC", SampleRate: 16000, Channels: 1, BitrateKbps: 9},
				{Media: "audio", Codec: "PCMU", SampleRate: 8000, Channels: 1, BackChannel: true},
			}}}}, nil
	case "UserList":
		return &apitype.UserList{Users: []apitype.User{{Name: "alice", Created: now, Groups: []string{"ops"}}}}, nil
	case "GroupList":
		return &apitype.GroupList{Groups: []apitype.Group{{Name: "ops", Members: []string{"alice"}}}}, nil
	case "Grants":
		return &apitype.GrantList{Grants: []apitype.Grant{{Subject: "@ops", Action: "read", Pattern: "cam1/*"}}}, nil
	case "SessionList":
		return &apitype.SessionList{Sessions: []apitype.Session{{ID: "s1", User: "alice", Action: "read", Path: "cam1/main", Remote: "127.0.0.1:5000", Started: now}}}, nil
	case "AuditList":
		return &apitype.AuditList{Entries: []apitype.AuditEntry{{Seq: 1, Time: now, Actor: "uid=0", Action: "user.add", Target: "alice"}}}, nil
	case "AuditVerify":
		return &apitype.AuditVerify{OK: true, Entries: 1}, nil
	case "KeyRotate":
		return &apitype.KeyRotate{KeyID: "k2", Resealed: 3}, nil
	case "UserDisable", "Revoke":
		return &apitype.MutationResult{Changed: true, ClosedSessions: 3}, nil
	case "IssuerList":
		return &apitype.IssuerList{Issuers: []apitype.Issuer{{Name: "portal", Issuer: "https://portal.test/", Audience: "box-1",
			JWKSURL: "https://portal.test/jwks", SubjectClaim: "sub", GroupsClaim: "groups", Keys: 2, LastRefresh: now}}}, nil
	case "GroupMapList":
		return &apitype.GroupMapList{Mappings: []apitype.GroupMapping{{Group: "ops", Issuer: "portal", ClaimValue: "guards"},
			{Group: "ops", DirectoryGroup: "cn=guards,dc=test"}}}, nil
	case "TokenCheck":
		return &apitype.TokenCheckResult{Issuer: "portal", Subject: "alice", Groups: []string{"guards"}, Expiry: now, MappedGroups: []string{"ops"}}, nil
	case "DirectoryTest":
		return &apitype.DirectoryTestResult{User: "alice", DN: "uid=alice,dc=test", Groups: []string{"cn=guards,dc=test"}, MappedGroups: []string{"ops"}}, nil
	case "DirectoryShow":
		return &apitype.Directory{Configured: true, URL: "ldaps://dc1.test", BindDN: "cn=svc,dc=test", HasBindPassword: true, BaseDN: "dc=test"}, nil
	}
	if strings.HasPrefix(op, "Camera") || strings.HasPrefix(op, "User") || strings.HasPrefix(op, "Group") || op == "Grant" || op == "SessionKick" ||
		strings.HasPrefix(op, "Issuer") || strings.HasPrefix(op, "Directory") || op == "TokenRevoke" {
		return &apitype.MutationResult{Changed: true}, nil
	}
	return nil, nil
}

// argsFor gives each command of the table a valid invocation and its stdin.
func argsFor(c *command) ([]string, string) {
	switch c.path {
	case "discover":
		return []string{"--target", "127.0.0.1:3702", "--timeout", "1500ms"}, ""
	case "camera add":
		return []string{"cam1", "--url", "rtsp://127.0.0.1:554/s", "--user", "admin", "--password-stdin", "--transport", "tcp", "--on-demand"}, secret + "\n"
	case "camera adopt":
		return []string{"cam1", "--device", "urn:uuid:1", "--user", "admin", "--password-stdin"}, secret + "\n"
	case "camera set":
		return []string{"cam1", "--password-stdin"}, secret + "\r\n"
	case "camera move":
		return []string{"cam1", "--to", "10.0.0.23:80"}, ""
	case "user add", "user passwd":
		return []string{"alice", "--password-stdin"}, secret
	case "grant", "revoke":
		return []string{"@ops", "read", "cam1/*"}, ""
	case "audit list":
		return []string{"--since", "2026-11-25T09:00:00Z", "--limit", "5"}, ""
	case "issuer add":
		return []string{"portal", "--jwks-url", "https://portal.test/jwks", "--audience", "box-1", "--iss", "https://portal.test/", "--groups-claim", "roles"}, ""
	case "group map", "group unmap":
		return []string{"ops", "--issuer", "portal", "--claim-value", "guards"}, ""
	case "directory set":
		return []string{"--url", "ldaps://dc1.test", "--bind-dn", "cn=svc,dc=test", "--base-dn", "dc=test", "--password-stdin", "--sync-interval", "2s"}, secret + "\n"
	case "token check":
		return []string{"--token-stdin"}, secret + "\n"
	case "directory test":
		return []string{"alice", "--password-stdin"}, secret + "\n"
	case "token revoke":
		return []string{"jti-1", "--until", "2026-12-01T18:00:00Z"}, ""
	}
	var a []string
	for i := 0; i < c.minArgs; i++ {
		a = append(a, fmt.Sprintf("x%d", i+1))
	}
	return a, ""
}

// Every command works, in human and --json form, and passwords given on
// stdin reach the backend exactly and are printed nowhere.
func TestEveryCommand(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	for i := range commands {
		c := &commands[i]
		if c.path == "completion bash" {
			continue
		}
		args, stdin := argsFor(c)
		words := strings.Fields(c.path)
		for _, jsonOut := range []bool{false, true} {
			argv := append(append([]string{}, words...), args...)
			if jsonOut {
				argv = append([]string{"--json"}, argv...)
			}
			res := r.run(t, stdin, argv...)
			if res.code != 0 {
				t.Errorf("%v: exit %d: %s", argv, res.code, res.stderr)
				continue
			}
			if strings.TrimSpace(res.stdout) == "" {
				t.Errorf("%v: no output", argv)
			}
			if jsonOut && !json.Valid([]byte(res.stdout)) {
				t.Errorf("%v: --json output is not JSON: %s", argv, res.stdout)
			}
			calls := r.takeCalls()
			if len(calls) != 1 {
				t.Errorf("%v: backend calls %+v, want one", argv, calls)
				continue
			}
			var pw string
			switch req := calls[0].req.(type) {
			case apitype.CameraAddRequest:
				pw = req.Password
				if req.URL != "rtsp://127.0.0.1:554/s" || req.User != "admin" || req.Transport != "tcp" || !req.OnDemand || req.Stream != "main" {
					t.Errorf("camera add request %+v", req)
				}
			case apitype.CameraAdoptRequest:
				pw = req.Password
				if req.DeviceURN != "urn:uuid:1" || req.User != "admin" || req.XAddr != "" {
					t.Errorf("camera adopt request %+v", req)
				}
			case apitype.DiscoverRequest:
				if req.TimeoutMS != 1500 || len(req.Targets) != 1 || req.Targets[0] != "127.0.0.1:3702" {
					t.Errorf("discover request %+v", req)
				}
			case apitype.Grant:
				if req != (apitype.Grant{Subject: "@ops", Action: "read", Pattern: "cam1/*"}) {
					t.Errorf("%s request %+v", calls[0].op, req)
				}
			case apitype.AuditListRequest:
				if req.Limit != 5 || !req.Since.Equal(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)) {
					t.Errorf("audit list request %+v", req)
				}
			case apitype.CameraSetRequest:
				if req.Password != nil {
					pw = *req.Password
				}
			case apitype.UserAddRequest:
				pw = req.Password
			case apitype.UserPasswdRequest:
				pw = req.Password
			case apitype.TokenCheckRequest:
				pw = req.Token
			case apitype.DirectoryTestRequest:
				pw = req.Password
			case apitype.DirectorySetRequest:
				pw = req.BindPassword
				if req.URL != "ldaps://dc1.test" || req.BindDN != "cn=svc,dc=test" || req.BaseDN != "dc=test" || req.SyncIntervalMS != 2000 {
					t.Errorf("directory set request %+v", req)
				}
			case apitype.IssuerAddRequest:
				if req != (apitype.IssuerAddRequest{Name: "portal", Issuer: "https://portal.test/", Audience: "box-1", JWKSURL: "https://portal.test/jwks", GroupsClaim: "roles"}) {
					t.Errorf("issuer add request %+v", req)
				}
			case apitype.GroupMapping:
				if req != (apitype.GroupMapping{Group: "ops", Issuer: "portal", ClaimValue: "guards"}) {
					t.Errorf("%s request %+v", calls[0].op, req)
				}
			case apitype.TokenRevokeRequest:
				if req.JTI != "jti-1" || !req.Until.Equal(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)) {
					t.Errorf("token revoke request %+v", req)
				}
			}
			if stdin != "" && pw != secret {
				t.Errorf("%v: backend got password %q, want the stdin line without its newline", argv, pw)
			}
		}
	}
	// --json after the command works too, and is the response as sent.
	res := r.run(t, "", "user", "disable", "alice", "--json")
	var mr map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &mr); err != nil || mr["closed_sessions"] != float64(3) {
		t.Errorf("user disable --json: %s (%v)", res.stdout, err)
	}
	res = r.run(t, "", "user", "disable", "alice")
	if !strings.Contains(res.stdout, "closed 3 session(s)") {
		t.Errorf("user disable: %q", res.stdout)
	}
	res = r.run(t, "", "stream", "list")
	if !regexp.MustCompile(`PATH\s+STATE\s+CODEC\s+KBIT/S\s+FPS\s+READERS\s+LAST ERROR`).MatchString(res.stdout) ||
		!regexp.MustCompile(`cam1/main\s+live\s+H264\s+4000\s+25\.0\s+3\s+EOF`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "  track 0: video, H265, 320x240, 10.0 fps, 358 kbit/s, re-packetised\n") ||
		!strings.Contains(res.stdout, "  track 1: audio, AAC, 16000 Hz, 1 ch, 9 kbit/s\n") ||
		!strings.Contains(res.stdout, "  track 2: audio, PCMU, 8000 Hz, 1 ch, back channel, not restreamed\n") {
		t.Errorf("stream list table:\n%s", res.stdout)
	}
	// Camera listings say whether a password is set, never what it is.
	res = r.run(t, "", "--json", "camera", "show", "cam1")
	if !strings.Contains(res.stdout, `"has_password": true`) || strings.Contains(res.stdout, `"password"`) {
		t.Errorf("camera show --json: %s", res.stdout)
	}
}

func TestCameraSetSendsOnlyGivenFields(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	res := r.run(t, "", "camera", "set", "cam1", "--url", "rtsp://127.0.0.1/new", "--stream", "sub", "--transport", "udp", "--on-demand=false")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	calls := r.takeCalls()
	if len(calls) != 1 {
		t.Fatalf("calls %+v", calls)
	}
	req := calls[0].req.(apitype.CameraSetRequest)
	if req.Name != "cam1" || req.Stream != "sub" || req.URL == nil || *req.URL != "rtsp://127.0.0.1/new" ||
		req.Transport == nil || *req.Transport != "udp" || req.OnDemand == nil || *req.OnDemand ||
		req.User != nil || req.Password != nil {
		t.Errorf("request %+v", req)
	}
}

func TestExitCodes(t *testing.T) {
	r := newRig(t, api.Options{}, func(op string, req any) (any, error) {
		switch op {
		case "CameraShow":
			return nil, apitype.Errorf(apitype.CodeNotFound, "no camera %q: see camwarden camera list", req)
		case "AuditVerify":
			return &apitype.AuditVerify{OK: false, Entries: 9, FirstBad: 4, Message: "hash mismatch"}, nil
		}
		return richBackend(op, req)
	})
	usage := []struct {
		args   []string
		stdin  string
		stderr string
	}{
		{nil, "", "usage: camwarden"},
		{[]string{"bogus"}, "", `unknown command "bogus"`},
		{[]string{"camera"}, "", "needs a subcommand"},
		{[]string{"--nosuchflag", "status"}, "", "flag provided but not defined"},
		{[]string{"status", "extra"}, "", "wrong number of arguments"},
		{[]string{"camera", "add"}, "", "wrong number of arguments"},
		{[]string{"camera", "add", "cam1"}, "", "--url is required"},
		{[]string{"camera", "add", "cam1", "--url", "rtsp://admin:" + secret + "@127.0.0.1/s"}, "", "put credentials in --user/--password-stdin, not the URL"},
		{[]string{"camera", "add", "cam1", "--url", "rtsp://127.0.0.1/s", "--transport", "carrier"}, "", "--transport must be auto, tcp or udp"},
		{[]string{"camera", "add", "cam1", "--url", "rtsp://127.0.0.1/s", "--user", "admin"}, "", "--password-stdin"},
		{[]string{"camera", "adopt", "cam1", "--user", "admin", "--password-stdin"}, secret, "exactly one of --device and --xaddr"},
		{[]string{"camera", "set", "cam1"}, "", "nothing to change"},
		{[]string{"camera", "set", "cam1", "--url", "rtsp://u:" + secret + "@h/"}, "", "not the URL"},
		{[]string{"camera", "add", "cam1", "--exec", "ffmpeg -i rtsp://admin:" + secret + "@127.0.0.1/s -f rtsp {output}"}, "", "CAMWARDEN_USER/CAMWARDEN_PASSWORD, never in argv"},
		{[]string{"camera", "set", "cam1", "--exec", "ffmpeg -i rtsp://admin:" + secret + "@127.0.0.1/s -f rtsp {output}"}, "", "put credentials in --user/--password-stdin"},
		{[]string{"user", "add", "alice"}, secret, "pipe it in with --password-stdin"},
		{[]string{"user", "add", "alice", "--password-stdin"}, "", "empty password"},
		{[]string{"user", "passwd", "alice", "--password-stdin"}, "\n", "empty password"},
		{[]string{"audit", "list", "--since", "yesterday"}, "", "RFC 3339"},
		{[]string{"discover", "--timeout", "-1s"}, "", "--timeout"},
	}
	for _, tc := range usage {
		res := r.run(t, tc.stdin, tc.args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, res.code, res.stderr, tc.stderr)
		}
	}
	if calls := r.takeCalls(); len(calls) != 0 {
		t.Errorf("usage errors reached the backend: %+v", calls)
	}

	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "camera", "add"}, {"camera", "add", "--help"}, {"help", "group"}} {
		if res := r.run(t, "", args...); res.code != 0 || !strings.Contains(res.stdout, "camera add") && !strings.Contains(res.stdout, "group add") {
			t.Errorf("%v: exit %d, stdout %q", args, res.code, res.stdout)
		}
	}

	res := r.run(t, "", "camera", "show", "nope")
	if res.code != exitFailure || !strings.Contains(res.stderr, `no camera "nope": see camwarden camera list (not_found)`) {
		t.Errorf("not found: exit %d, %q", res.code, res.stderr)
	}
	res = r.run(t, "", "audit", "verify")
	if res.code != exitFailure || !strings.Contains(res.stdout, "BROKEN at entry 4") {
		t.Errorf("audit verify broken: exit %d, %q %q", res.code, res.stdout, res.stderr)
	}

	missing := filepath.Join(t.TempDir(), "none.sock")
	res = runCLI(t, missing, "", nil, "status")
	want := "cannot reach camwardend at " + missing + " — is a daemon running with --socket " + missing + "?"
	if res.code != exitFailure || !strings.Contains(res.stderr, want) {
		t.Errorf("unreachable: exit %d, %q", res.code, res.stderr)
	}
}

// A caller the daemon refuses gets exit 3, whether the kernel refuses the
// connect (socket mode) or the daemon answers 403 (peer credentials).
func TestPermissionDenied(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root to switch uid with setpriv (CI runs as root)")
	}
	asNobody := []string{"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"}
	r := newRig(t, api.Options{AdminGroup: "camwarden-test-no-such-group"}, richBackend)
	res := runCLI(t, r.sock, "", asNobody, "status")
	if res.code != exitPermission || !strings.Contains(res.stderr, "permission denied") ||
		!strings.Contains(res.stderr, "hint: run as root (sudo) or as a member of the camwarden-test-no-such-group group") {
		t.Errorf("403: exit %d, %q", res.code, res.stderr)
	}
	if calls := r.takeCalls(); len(calls) != 0 {
		t.Errorf("refused caller reached the backend: %+v", calls)
	}
	// Kernel refusal: the socket is root's 0600.
	os.Chmod(r.sock, 0o600)
	res = runCLI(t, r.sock, "", asNobody, "status")
	if res.code != exitPermission || !strings.Contains(res.stderr, "permission denied on "+r.sock) {
		t.Errorf("EACCES: exit %d, %q", res.code, res.stderr)
	}
}

func TestCompletionBash(t *testing.T) {
	r := newRig(t, api.Options{}, nil)
	res := r.run(t, "", "completion", "bash")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	script := filepath.Join(t.TempDir(), "camwarden.bash")
	os.WriteFile(script, []byte(res.stdout), 0o644)
	complete := func(words ...string) string {
		t.Helper()
		var q []string
		for _, w := range words {
			q = append(q, fmt.Sprintf("%q", w))
		}
		prog := fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _camwarden; echo "${COMPREPLY[*]}"`, script, strings.Join(q, " "), len(words)-1)
		out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := complete("camwarden", "camera", "a"); got != "add adopt" {
		t.Errorf("camera a<TAB> = %q", got)
	}
	if got := complete("camwarden", "--socket", "/tmp/x.sock", "group", "member", ""); got != "add remove" {
		t.Errorf("group member <TAB> = %q", got)
	}
	if got := complete("camwarden", "camera", "add", "cam1", "--p"); got != "--password-stdin" {
		t.Errorf("camera add cam1 --p<TAB> = %q", got)
	}
	if got := complete("camwarden", "gr"); got != "group grant grants" {
		t.Errorf("gr<TAB> = %q", got)
	}
	// Every command word and flag of the table is in the script.
	for i := range commands {
		for _, w := range strings.Fields(commands[i].path) {
			if !strings.Contains(res.stdout, w) {
				t.Errorf("completion lacks %q", w)
			}
		}
		for _, f := range commandFlags(&commands[i]) {
			if !strings.Contains(res.stdout, f) {
				t.Errorf("completion lacks %s of %s", f, commands[i].path)
			}
		}
	}
}

// The man page (packaging/man/camwarden.1, written with the packaging)
// documents every command and every flag of the table.
func TestManPageCoversCommandTable(t *testing.T) {
	b, err := os.ReadFile("../../packaging/man/camwarden.1")
	if err != nil {
		t.Fatalf("the camwarden man page is missing: %v", err)
	}
	page := normaliseRoff(string(b))
	for _, g := range []string{"--socket", "--json"} {
		if !strings.Contains(page, g) {
			t.Errorf("man page lacks global flag %s", g)
		}
	}
	for i := range commands {
		c := &commands[i]
		if !strings.Contains(page, c.path) {
			t.Errorf("man page lacks command %q", c.path)
		}
		for _, f := range commandFlags(c) {
			if !strings.Contains(page, f) {
				t.Errorf("man page lacks %s (of %s)", f, c.path)
			}
		}
	}
}

// normaliseRoff strips font escapes and unescapes hyphens so "\fB\-\-url\fR"
// reads "--url", and collapses white space.
func normaliseRoff(s string) string {
	s = regexp.MustCompile(`\\f(\[[A-Z]*\]|\(..|[A-Z0-9])`).ReplaceAllString(s, "")
	s = strings.NewReplacer(`\-`, "-", `\(en`, "-", `\(em`, "-", `\ `, " ", `\&`, "", `\(aq`, "'").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// openPTY returns a pseudo-terminal pair (master, slave).
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	return ptmx, pts
}

// On a terminal the password is prompted for with echo off (the terminal
// starts with echo on, so a prompt that left it on would show the secret),
// confirmed, and sent; echo is restored afterwards.
func TestPasswordPromptNoEcho(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	ptmx, pts := openPTY(t)
	defer ptmx.Close()
	var screen bytes.Buffer
	var mu sync.Mutex
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 1024)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(screen.String(), s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, "--socket", r.sock, "user", "add", "alice")
	var out bytes.Buffer
	cmd.Stdin, cmd.Stderr, cmd.Stdout = pts, pts, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	if !waitFor(t, 10*time.Second, seen("Password for alice: ")) {
		t.Fatalf("no prompt; screen %q", screen.String())
	}
	ptmx.Write([]byte(secret + "\n"))
	if !waitFor(t, 10*time.Second, seen("Again: ")) {
		t.Fatalf("no confirmation prompt; screen %q", screen.String())
	}
	ptmx.Write([]byte(secret + "\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("camwarden: %v; screen %q", err, screen.String())
	}
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(screen.String(), secret) || strings.Contains(out.String(), secret) {
		t.Errorf("the password was echoed: %q", screen.String())
	}
	calls := r.takeCalls()
	if len(calls) != 1 || calls[0].req.(apitype.UserAddRequest).Password != secret {
		t.Errorf("backend calls %+v", calls)
	}
	// Echo is back on for whatever runs next on the terminal.
	tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
	if err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Errorf("terminal echo not restored: %v", err)
	}
}

// waitFor polls cond for up to d; see testutil.Poll.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	return testutil.Poll(d, cond)
}

func TestReadPasswordLine(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"pw\n", "pw", true},
		{"pw\r\n", "pw", true},
		{"pw", "pw", true},
		{"pw\nsecond line\n", "pw", true},
		{" spaced pw \n", " spaced pw ", true},
		{"\n", "", false},
		{"", "", false},
		{strings.Repeat("x", maxPasswordBytes) + "\n", strings.Repeat("x", maxPasswordBytes), true},
		{strings.Repeat("x", maxPasswordBytes+1) + "\n", "", false},
	}
	for _, tc := range cases {
		got, err := readPasswordLine(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("readPasswordLine(%.20q) = %q, %v", tc.in, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "x") && len(tc.in) > 10 {
			t.Errorf("error echoes input: %v", err)
		}
	}
}

func FuzzReadPasswordLine(f *testing.F) {
	f.Add([]byte("pw\n"))
	f.Add([]byte("\r\n"))
	f.Add([]byte("a\rb\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pw, err := readPasswordLine(bytes.NewReader(b))
		if err == nil && (pw == "" || strings.HasSuffix(pw, "\n") || len(pw) > maxPasswordBytes) {
			t.Fatalf("got %q", pw)
		}
	})
}

// The CLI only knows the API's types and client, never daemon internals.
func TestImportsOnlyAPITypesAndClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/camwarden/camwarden/cmd/camwarden":  true,
		"github.com/camwarden/camwarden/daemon/apitype": true,
		"github.com/camwarden/camwarden/daemon/client":  true,
		// a standard-library-only string helper that apitype uses; no daemon code
		"github.com/camwarden/camwarden/internal/textutil": true,
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/camwarden/camwarden/") && !allowed[p] {
			t.Errorf("camwarden depends on %s", p)
		}
	}
}

// stream list keeps its columns aligned across track lines, and an idle
// stream's tracks show no stale rates.
func TestStreamListAlignedAcrossTracks(t *testing.T) {
	r := newRig(t, api.Options{}, func(op string, req any) (any, error) {
		if op != "StreamList" {
			return richBackend(op, req)
		}
		return &apitype.StreamList{Streams: []apitype.StreamStatus{
			{Path: "a/main", State: "live", Codec: "H264", BitrateKbps: 4000, FPS: 25, Readers: 3,
				Tracks: []apitype.Track{{Media: "video", Codec: "H264", Width: 1920, Height: 1080, FPS: 25, BitrateKbps: 4000}}},
			{Path: "a-much-longer-camera-name/sub", State: "idle", Codec: "MJPEG",
				Tracks: []apitype.Track{{Media: "video", Codec: "MJPEG", BitrateKbps: 0}}},
		}}, nil
	})
	res := r.run(t, "", "stream", "list")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var rows []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "  track") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 3 || len(lines) != 5 {
		t.Fatalf("want a header, 2 rows and 2 track lines:\n%s", res.stdout)
	}
	col := strings.Index(rows[0], "STATE")
	for _, row := range rows[1:] {
		if !strings.Contains(row[col:], " ") || row[col-1] != ' ' || row[col] == ' ' {
			t.Errorf("STATE column not at %d in %q:\n%s", col, row, res.stdout)
		}
	}
	if !strings.HasPrefix(rows[1][col:], "live") || !strings.HasPrefix(rows[2][col:], "idle") {
		t.Errorf("columns misaligned:\n%s", res.stdout)
	}
	if strings.Contains(lines[4], "kbit/s") || !strings.Contains(lines[2], "4000 kbit/s") {
		t.Errorf("idle track shows a rate, or the live one none:\n%s", res.stdout)
	}
}

// A wrong word after a command group is named; a group's --help lists it.
func TestUnknownSubcommandNamed(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	for _, group := range []string{"user", "camera", "group", "token"} {
		res := r.run(t, "", group, "frob")
		if res.code != exitUsage || !strings.Contains(res.stderr, `unknown command "`+group+` frob"`) || !strings.Contains(res.stderr, group+" ") {
			t.Errorf("%s frob: exit %d, %q", group, res.code, res.stderr)
		}
	}
	res := r.run(t, "", "completion", "--help")
	if res.code != 0 || !strings.Contains(res.stdout, "completion bash") {
		t.Errorf("completion --help: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if calls := r.takeCalls(); len(calls) != 0 {
		t.Errorf("reached the backend: %+v", calls)
	}
}

// directory show prints the values the daemon uses for unset settings;
// status labels the data key.
func TestDirectoryShowDefaultsAndDataKey(t *testing.T) {
	r := newRig(t, api.Options{}, func(op string, req any) (any, error) {
		if op == "Status" {
			return &apitype.Status{Version: "0.1.0", KeyID: "k7"}, nil
		}
		return richBackend(op, req)
	})
	res := r.run(t, "", "directory", "show")
	for _, want := range []string{"memberOf (default)", "5s (default)", "60s (default)", "(sAMAccountName=%s) (default)"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("directory show lacks %q:\n%s", want, res.stdout)
		}
	}
	res = r.run(t, "", "status")
	if !regexp.MustCompile(`(?m)^data key\s+k7$`).MatchString(res.stdout) {
		t.Errorf("status:\n%s", res.stdout)
	}
}
