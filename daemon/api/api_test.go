package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/api/apitest"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
	"github.com/hashicorp/go-hclog"
)

const childEnv = "CAMWARDEN_API_TEST_CHILD_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(childEnv); sock != "" {
		childMain(sock)
		return
	}
	os.Exit(m.Run())
}

// childMain runs in a re-executed test binary under another uid: it makes
// one request and prints what came back.
func childMain(sock string) {
	res := map[string]any{"uid": os.Getuid()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.New(sock).Status(ctx)
	var ae *apitype.Error
	switch {
	case err == nil:
		res["code"] = "ok"
	case errors.As(err, &ae):
		res["code"] = ae.Code
		res["message"] = ae.Message
	default:
		res["code"] = "error"
		res["message"] = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

type refusal struct {
	c                    api.Caller
	method, path, reason string
}

// recorder is a Fake plus a log of what it was asked.
type recorder struct {
	apitest.Fake
	mu       sync.Mutex
	calls    []call
	refusals []refusal
}

type call struct {
	op  string
	c   api.Caller
	req any
}

func newRecorder(handle func(ctx context.Context, op string, c api.Caller, req any) (any, error)) *recorder {
	r := &recorder{}
	r.Handle = func(ctx context.Context, op string, c api.Caller, req any) (any, error) {
		r.mu.Lock()
		r.calls = append(r.calls, call{op, c, req})
		r.mu.Unlock()
		if handle != nil {
			return handle(ctx, op, c, req)
		}
		return nil, nil
	}
	r.Refused = func(c api.Caller, method, path, reason string) {
		r.mu.Lock()
		r.refusals = append(r.refusals, refusal{c, method, path, reason})
		r.mu.Unlock()
	}
	return r
}

func (r *recorder) lastCall() (call, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return call{}, false
	}
	return r.calls[len(r.calls)-1], true
}

func (r *recorder) refused() []refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slicesClone(r.refusals)
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// serve runs api.Serve on a real Unix socket in dir until the test ends.
func serve(t *testing.T, dir string, opts api.Options) string {
	t.Helper()
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return sock
}

func rawClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// doRaw sends a request and returns the status and the decoded error body.
func doRaw(t *testing.T, sock, method, path string, hdr map[string]string, body io.Reader) (int, apitype.ErrorBody, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://camwardend"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rawClient(sock).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb apitype.ErrorBody
	if resp.StatusCode != 200 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error content type %q", method, path, ct)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eb); err != nil || eb.Error == nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Errorf("%s %s: error body %q is not {\"error\":{\"code\",\"message\"}}: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, eb, b
}

func ptr[T any](v T) *T { return &v }

// Every client method reaches its Backend method with the request intact,
// as the caller the kernel reported, and its answer comes back typed.
func TestEveryEndpointRoundTrip(t *testing.T) {
	rec := newRecorder(func(ctx context.Context, op string, c api.Caller, req any) (any, error) {
		switch op {
		case "Status":
			return &apitype.Status{Version: "1.2.3", Cameras: 2}, nil
		case "CameraShow":
			return &apitype.Camera{Name: req.(string), HasPassword: true}, nil
		}
		return nil, nil
	})
	sock := serve(t, t.TempDir(), api.Options{Backend: rec})
	cl := client.New(sock)
	ctx := context.Background()
	since := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

	cases := []struct {
		op   string
		call func() (any, error)
		want any
	}{
		{"Status", func() (any, error) { return cl.Status(ctx) }, nil},
		{"Discover", func() (any, error) {
			return cl.Discover(ctx, apitype.DiscoverRequest{TimeoutMS: 1500, Targets: []string{"127.0.0.1:8080"}})
		}, apitype.DiscoverRequest{TimeoutMS: 1500, Targets: []string{"127.0.0.1:8080"}}},
		{"CameraList", func() (any, error) { return cl.CameraList(ctx) }, nil},
		{"CameraShow", func() (any, error) { return cl.CameraShow(ctx, "cam-1") }, "cam-1"},
		{"CameraAdd", func() (any, error) {
			return cl.CameraAdd(ctx, apitype.CameraAddRequest{Name: "cam1", URL: "rtsp://127.0.0.1/s", User: "u", Password: "pw", Stream: "main", Transport: "tcp", OnDemand: true})
		}, apitype.CameraAddRequest{Name: "cam1", URL: "rtsp://127.0.0.1/s", User: "u", Password: "pw", Stream: "main", Transport: "tcp", OnDemand: true}},
		{"CameraAdopt", func() (any, error) {
			return cl.CameraAdopt(ctx, apitype.CameraAdoptRequest{Name: "cam2", DeviceURN: "urn:uuid:1", User: "admin", Password: "pw2"})
		}, apitype.CameraAdoptRequest{Name: "cam2", DeviceURN: "urn:uuid:1", User: "admin", Password: "pw2"}},
		{"CameraSet", func() (any, error) {
			return cl.CameraSet(ctx, apitype.CameraSetRequest{Name: "cam1", Stream: "main", OnDemand: ptr(false), Password: ptr("pw3")})
		}, apitype.CameraSetRequest{Name: "cam1", Stream: "main", OnDemand: ptr(false), Password: ptr("pw3")}},
		{"CameraRemove", func() (any, error) { return cl.CameraRemove(ctx, "cam1") }, "cam1"},
		{"CameraMove", func() (any, error) {
			return cl.CameraMove(ctx, apitype.CameraMoveRequest{Name: "cam1", To: "10.0.0.23:80"})
		}, apitype.CameraMoveRequest{Name: "cam1", To: "10.0.0.23:80"}},
		{"StreamList", func() (any, error) { return cl.StreamList(ctx) }, nil},
		{"UserList", func() (any, error) { return cl.UserList(ctx) }, nil},
		{"UserAdd", func() (any, error) { return cl.UserAdd(ctx, apitype.UserAddRequest{Name: "alice", Password: "pa"}) }, apitype.UserAddRequest{Name: "alice", Password: "pa"}},
		{"UserPasswd", func() (any, error) {
			return cl.UserPasswd(ctx, apitype.UserPasswdRequest{Name: "alice", Password: "pb"})
		}, apitype.UserPasswdRequest{Name: "alice", Password: "pb"}},
		{"UserDisable", func() (any, error) { return cl.UserDisable(ctx, "alice") }, "alice"},
		{"UserEnable", func() (any, error) { return cl.UserEnable(ctx, "alice") }, "alice"},
		{"UserRemove", func() (any, error) { return cl.UserRemove(ctx, "alice") }, "alice"},
		{"GroupList", func() (any, error) { return cl.GroupList(ctx) }, nil},
		{"GroupAdd", func() (any, error) { return cl.GroupAdd(ctx, "ops") }, "ops"},
		{"GroupRemove", func() (any, error) { return cl.GroupRemove(ctx, "ops") }, "ops"},
		{"GroupMemberAdd", func() (any, error) {
			return cl.GroupMemberAdd(ctx, apitype.GroupMemberRequest{Group: "ops", User: "alice"})
		}, apitype.GroupMemberRequest{Group: "ops", User: "alice"}},
		{"GroupMemberRemove", func() (any, error) {
			return cl.GroupMemberRemove(ctx, apitype.GroupMemberRequest{Group: "ops", User: "alice"})
		}, apitype.GroupMemberRequest{Group: "ops", User: "alice"}},
		{"Grant", func() (any, error) {
			return cl.Grant(ctx, apitype.Grant{Subject: "@ops", Action: "read", Pattern: "cam1/*"})
		}, apitype.Grant{Subject: "@ops", Action: "read", Pattern: "cam1/*"}},
		{"Revoke", func() (any, error) {
			return cl.Revoke(ctx, apitype.Grant{Subject: "bob", Action: "publish", Pattern: "*"})
		}, apitype.Grant{Subject: "bob", Action: "publish", Pattern: "*"}},
		{"Grants", func() (any, error) { return cl.Grants(ctx, "@ops") }, "@ops"},
		{"SessionList", func() (any, error) { return cl.SessionList(ctx) }, nil},
		{"SessionKick", func() (any, error) { return cl.SessionKick(ctx, "a1b2") }, "a1b2"},
		{"AuditList", func() (any, error) { return cl.AuditList(ctx, apitype.AuditListRequest{Since: since, Limit: 7}) }, apitype.AuditListRequest{Since: since, Limit: 7}},
		{"AuditVerify", func() (any, error) {
			return cl.AuditVerify(ctx, apitype.AuditVerifyRequest{Journal: []apitype.AuditHead{{Seq: 9, Hash: strings.Repeat("ab", 32), KeyID: "0123456789abcdef"}}})
		}, apitype.AuditVerifyRequest{Journal: []apitype.AuditHead{{Seq: 9, Hash: strings.Repeat("ab", 32), KeyID: "0123456789abcdef"}}}},
		{"KeyRotate", func() (any, error) { return cl.KeyRotate(ctx) }, nil},
		{"IssuerList", func() (any, error) { return cl.IssuerList(ctx) }, nil},
		{"IssuerAdd", func() (any, error) {
			return cl.IssuerAdd(ctx, apitype.IssuerAddRequest{Name: "portal", Issuer: "https://p/", Audience: "box", JWKSURL: "https://p/jwks", GroupsClaim: "roles"})
		}, apitype.IssuerAddRequest{Name: "portal", Issuer: "https://p/", Audience: "box", JWKSURL: "https://p/jwks", GroupsClaim: "roles"}},
		{"IssuerRemove", func() (any, error) { return cl.IssuerRemove(ctx, "portal") }, "portal"},
		{"GroupMapList", func() (any, error) { return cl.GroupMapList(ctx) }, nil},
		{"GroupMapAdd", func() (any, error) {
			return cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "ops", Issuer: "portal", ClaimValue: "guards"})
		}, apitype.GroupMapping{Group: "ops", Issuer: "portal", ClaimValue: "guards"}},
		{"GroupMapRemove", func() (any, error) {
			return cl.GroupMapRemove(ctx, apitype.GroupMapping{Group: "ops", DirectoryGroup: "cn=g,dc=t"})
		}, apitype.GroupMapping{Group: "ops", DirectoryGroup: "cn=g,dc=t"}},
		{"DirectoryShow", func() (any, error) { return cl.DirectoryShow(ctx) }, nil},
		{"DirectorySet", func() (any, error) {
			return cl.DirectorySet(ctx, apitype.DirectorySetRequest{URL: "ldaps://dc1", BindDN: "cn=s", BindPassword: "bp", BaseDN: "dc=t", SyncIntervalMS: 2000})
		}, apitype.DirectorySetRequest{URL: "ldaps://dc1", BindDN: "cn=s", BindPassword: "bp", BaseDN: "dc=t", SyncIntervalMS: 2000}},
		{"DirectoryClear", func() (any, error) { return cl.DirectoryClear(ctx) }, nil},
		{"DirectoryTest", func() (any, error) {
			return cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "alice", Password: "pw"})
		}, apitype.DirectoryTestRequest{User: "alice", Password: "pw"}},
		{"TokenCheck", func() (any, error) {
			return cl.TokenCheck(ctx, apitype.TokenCheckRequest{Token: "eyJ.a.b"})
		}, apitype.TokenCheckRequest{Token: "eyJ.a.b"}},
		{"TokenRevoke", func() (any, error) {
			return cl.TokenRevoke(ctx, apitype.TokenRevokeRequest{JTI: "j-1", Until: since})
		}, apitype.TokenRevokeRequest{JTI: "j-1", Until: since}},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.op] = true
		resp, err := tc.call()
		if err != nil {
			t.Errorf("%s: %v", tc.op, err)
			continue
		}
		if reflect.ValueOf(resp).IsNil() {
			t.Errorf("%s: nil response", tc.op)
		}
		got, ok := rec.lastCall()
		if !ok || got.op != tc.op {
			t.Errorf("%s: backend saw %q", tc.op, got.op)
			continue
		}
		if !reflect.DeepEqual(got.req, tc.want) {
			t.Errorf("%s: backend got %#v, want %#v", tc.op, got.req, tc.want)
		}
		if got.c.UID != os.Getuid() || got.c.PID != os.Getpid() || got.c.Exe == "" {
			t.Errorf("%s: caller %+v, want our uid %d and pid %d with an exe", tc.op, got.c, os.Getuid(), os.Getpid())
		}
	}
	// Every Backend method is exercised above.
	bt := reflect.TypeFor[api.Backend]()
	for i := 0; i < bt.NumMethod(); i++ {
		if n := bt.Method(i).Name; n != "AuditRefusal" && !seen[n] {
			t.Errorf("no round-trip case for %s", n)
		}
	}
	st, err := cl.Status(ctx)
	if err != nil || st.Version != "1.2.3" || st.Cameras != 2 {
		t.Errorf("Status = %+v, %v", st, err)
	}
	cam, err := cl.CameraShow(ctx, "x")
	if err != nil || cam.Name != "x" || !cam.HasPassword {
		t.Errorf("CameraShow = %+v, %v", cam, err)
	}
	if len(rec.refused()) != 0 {
		t.Errorf("unexpected refusals: %+v", rec.refused())
	}
}

func TestErrorShapes(t *testing.T) {
	const secret = "hunter2-internal-secret"
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logBuf, mu: &logMu}, Level: hclog.Debug})
	rec := newRecorder(func(ctx context.Context, op string, c api.Caller, req any) (any, error) {
		switch op {
		case "CameraShow":
			return nil, apitype.Errorf(apitype.CodeNotFound, "no camera %q", req)
		case "UserRemove":
			return nil, fmt.Errorf("bolt: tx failed opening /var/lib/camwarden/db with key %s", secret)
		case "GroupAdd":
			return nil, apitype.Errorf(apitype.CodeConflict, "group exists")
		case "KeyRotate":
			var nilResult *apitype.KeyRotate
			return nilResult, nil
		}
		return nil, nil
	})
	sock := serve(t, t.TempDir(), api.Options{Backend: rec, Logger: logger})

	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/cameras/nope", "", 404, apitype.CodeNotFound},
		{"DELETE", "/v1/users/bob", "", 500, apitype.CodeInternal},
		{"POST", "/v1/groups", `{"name":"ops"}`, 409, apitype.CodeConflict},
		{"POST", "/v1/key/rotate", "", 500, apitype.CodeInternal},
		{"GET", "/v1/nope", "", 404, apitype.CodeNotFound},
		{"GET", "/v2/status", "", 404, apitype.CodeNotFound},
		{"PUT", "/v1/status", "", 405, apitype.CodeMethodNotAllowed},
		{"POST", "/v1/users", `{"name":"a","password":"p","admin":true}`, 400, apitype.CodeInvalid},
		{"POST", "/v1/users", `{"name":"a"} trailing`, 400, apitype.CodeInvalid},
		{"POST", "/v1/users", `not json`, 400, apitype.CodeInvalid},
		{"PUT", "/v1/users/alice/password", `{"name":"bob","password":"p"}`, 400, apitype.CodeInvalid},
		{"PATCH", "/v1/cameras/cam1", `{"url":"rtsp://h/","colour":"red"}`, 400, apitype.CodeInvalid},
		{"GET", "/v1/audit?since=yesterday", "", 400, apitype.CodeInvalid},
		{"GET", "/v1/audit?limit=-1", "", 400, apitype.CodeInvalid},
		{"POST", "/v1/discover", `{"timeout_ms":-5}`, 400, apitype.CodeInvalid},
	}
	for _, tc := range cases {
		status, eb, raw := doRaw(t, sock, tc.method, tc.path, nil, strings.NewReader(tc.body))
		if status != tc.status || eb.Error == nil || eb.Error.Code != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, status, raw, tc.status, tc.code)
		}
		if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "/var/lib") {
			t.Errorf("%s %s: internals leaked: %s", tc.method, tc.path, raw)
		}
	}
	// Refused bodies never reached the backend.
	rec.mu.Lock()
	calls := slicesClone(rec.calls)
	rec.mu.Unlock()
	for _, c := range calls {
		if c.op == "UserAdd" || c.op == "UserPasswd" || c.op == "CameraSet" {
			t.Errorf("backend called for an invalid request: %+v", c)
		}
	}
	logMu.Lock()
	logs := logBuf.String()
	logMu.Unlock()
	if !strings.Contains(logs, "admin API internal error") {
		t.Errorf("internal error not logged: %s", logs)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestOriginAndRefererRefused(t *testing.T) {
	rec := newRecorder(nil)
	sock := serve(t, t.TempDir(), api.Options{Backend: rec})
	for _, hdr := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Referer": "http://evil.example/page"},
	} {
		status, eb, _ := doRaw(t, sock, "POST", "/v1/users/alice/disable", hdr, nil)
		if status != 403 || eb.Error == nil || eb.Error.Code != apitype.CodeForbidden {
			t.Errorf("%v: status %d %+v, want 403 forbidden", hdr, status, eb.Error)
		}
	}
	if _, ok := rec.lastCall(); ok {
		t.Errorf("backend was called for a browser request")
	}
	refs := rec.refused()
	if len(refs) != 2 || refs[0].path != "/v1/users/alice/disable" || refs[0].method != "POST" || !strings.Contains(refs[0].reason, "Origin") {
		t.Errorf("refusals = %+v", refs)
	}
	// Without those headers the same request is served.
	if status, _, raw := doRaw(t, sock, "POST", "/v1/users/alice/disable", nil, nil); status != 200 {
		t.Errorf("plain request: %d %s", status, raw)
	}
}

// rawPost writes a request on a bare connection (in the background, so a
// server that answers early and hangs up does not stop us reading).
func rawPost(t *testing.T, sock, path string, body []byte, chunked bool) (int, apitype.ErrorBody) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: camwardend\r\nContent-Type: application/json\r\n", path)
		if chunked {
			fmt.Fprintf(&b, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		} else {
			fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
		}
		conn.Write(b.Bytes()) // may fail with EPIPE once the server answered: fine
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	var eb apitype.ErrorBody
	if resp.StatusCode != 200 {
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil {
			t.Errorf("error body: %v", err)
		}
	}
	return resp.StatusCode, eb
}

func TestBodyCap(t *testing.T) {
	rec := newRecorder(nil)
	sock := serve(t, t.TempDir(), api.Options{Backend: rec})
	big := []byte(`{"name":"a","password":"` + strings.Repeat("x", apitype.MaxBodyBytes) + `"}`)
	for _, chunked := range []bool{false, true} {
		status, eb := rawPost(t, sock, "/v1/users", big, chunked)
		if status != 413 || eb.Error == nil || eb.Error.Code != apitype.CodeTooLarge {
			t.Errorf("chunked=%v: %d %+v, want 413 too_large", chunked, status, eb.Error)
		}
	}
	if _, ok := rec.lastCall(); ok {
		t.Errorf("backend called with an oversized body")
	}
	// Just under the cap is served.
	ok := []byte(`{"name":"a","password":"` + strings.Repeat("x", apitype.MaxBodyBytes-64) + `"}`)
	for _, chunked := range []bool{false, true} {
		if status, eb := rawPost(t, sock, "/v1/users", ok, chunked); status != 200 {
			t.Errorf("chunked=%v body under the cap: %d %+v", chunked, status, eb.Error)
		}
	}
}

// A client that connects and sends nothing, or stalls in the middle of its
// headers, is dropped after ReadTimeout.
func TestIdleClientDropped(t *testing.T) {
	sock := serve(t, t.TempDir(), api.Options{Backend: newRecorder(nil), ReadTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	for _, prefix := range []string{"", "GET /v1/status HTTP/1.1\r\nHost: x\r\n"} {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		if prefix != "" {
			conn.Write([]byte(prefix))
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(conn)
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("prefix %q: connection still open after 5 s", prefix)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("prefix %q: dropped after %v", prefix, d)
		}
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln, api.Options{Backend: newRecorder(nil)}) }()
	if _, err := client.New(sock).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	var ce *client.ConnError
	if _, err := client.New(sock).Status(context.Background()); !errors.As(err, &ce) {
		t.Errorf("after shutdown: %v, want ConnError", err)
	}
}

// reachableDir makes a temp dir that uid 65534 can enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyTestBinary puts this test binary where uid 65534 can run it.
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "api.test")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Callers that are not root, the daemon's uid or in the admin group get 403
// and the refusal is audited; the admin group (primary or supplementary) and
// AllowUID let them in. The child really runs as uid 65534 via setpriv.
func TestPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root to switch uid with setpriv (CI runs as root)")
	}
	dir := reachableDir(t)
	bin := copyTestBinary(t, dir)

	cases := []struct {
		name       string
		adminGroup string
		allowUID   int
		setpriv    []string
		wantCode   string
	}{
		{"stranger", "camwarden-test-no-such-group", 4321, []string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}, apitype.CodeForbidden},
		{"admin-gid", "nogroup", 4321, []string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}, "ok"},
		{"admin-supplementary", "nogroup", 4321, []string{"--reuid", "65534", "--regid", "65533", "--groups", "65534"}, "ok"},
		{"not-in-admin-group", "nogroup", 4321, []string{"--reuid", "65534", "--regid", "65533", "--groups", "65532"}, apitype.CodeForbidden},
		{"daemon-uid", "camwarden-test-no-such-group", 65534, []string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}, "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sdir := filepath.Join(dir, tc.name)
			if err := os.Mkdir(sdir, 0o755); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(nil)
			sock := serve(t, sdir, api.Options{Backend: rec, AdminGroup: tc.adminGroup, AllowUID: tc.allowUID})
			if err := os.Chmod(sock, 0o666); err != nil { // let the kernel pass; peer creds decide
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "setpriv", append(tc.setpriv, bin)...)
			cmd.Env = append(os.Environ(), childEnv+"="+sock)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v: %s", err, out)
			}
			var res struct {
				UID     int
				Code    string
				Message string
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("child output %q: %v", out, err)
			}
			if res.UID != 65534 {
				t.Fatalf("child ran as uid %d", res.UID)
			}
			if res.Code != tc.wantCode {
				t.Fatalf("child got %q (%s), want %q", res.Code, res.Message, tc.wantCode)
			}
			refs := rec.refused()
			if tc.wantCode == apitype.CodeForbidden {
				if len(refs) != 1 {
					t.Fatalf("refusals = %+v, want one", refs)
				}
				r := refs[0]
				if r.c.UID != 65534 || r.c.PID <= 0 || r.c.Exe != "api.test" || r.method != "GET" || r.path != "/v1/status" || r.reason == "" {
					t.Errorf("refusal = %+v", r)
				}
				if _, ok := rec.lastCall(); ok {
					t.Errorf("backend was called for a refused caller")
				}
			} else {
				if len(refs) != 0 {
					t.Errorf("unexpected refusals %+v", refs)
				}
				c, ok := rec.lastCall()
				if !ok || c.op != "Status" || c.c.UID != 65534 {
					t.Errorf("backend call = %+v", c)
				}
			}
		})
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "admin.sock")

	// No such group: 0600, and a warning that names the group.
	var logBuf bytes.Buffer // Listen logs from this goroutine only
	ln, err := api.Listen(path, "camwarden-test-no-such-group", hclog.New(&hclog.LoggerOptions{Output: &logBuf}))
	if err != nil {
		t.Fatal(err)
	}
	if out := logBuf.String(); !strings.Contains(out, "[WARN]") || !strings.Contains(out, "admin_group=camwarden-test-no-such-group") ||
		!strings.Contains(out, "admin group does not exist") {
		t.Errorf("no warning naming the missing group: %q", out)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("mode = %v, %v; want socket 0600", fi.Mode(), err)
	}
	// A live daemon is not displaced.
	if _, err := api.Listen(path, "", nil); err == nil || !strings.Contains(err.Error(), "another camwardend is serving "+path) {
		t.Errorf("second Listen: %v", err)
	}
	// A stale socket (nobody listening) is replaced.
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket missing: %v", err)
	}
	ln2, err := api.Listen(path, "nogroup", nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln2.Close()
	fi, err = os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("mode = %v, %v; want 0660", fi.Mode(), err)
	}
	if gid := statGID(t, path); gid != 65534 {
		t.Errorf("socket group = %d, want nogroup (65534)", gid)
	}
	// The listener serves.
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Errorf("dial: %v", err)
	} else {
		c.Close()
	}
	// A regular file is never removed.
	file := filepath.Join(dir, "notasocket")
	os.WriteFile(file, []byte("keep"), 0o644)
	if _, err := api.Listen(file, "", nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("file was touched")
	}
}

func statGID(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// Credentials a backend lets slip into URLs never reach the client, and the
// backend's own values are not modified (they may be shared snapshots).
func TestResponsesCarryNoURLCredentials(t *testing.T) {
	const pw = "camPW-9x"
	cam := &apitype.Camera{Name: "cam1", ONVIF: &apitype.ONVIFIdentity{XAddr: "http://admin:" + pw + "@127.0.0.1/onvif"},
		Streams: []apitype.Stream{{Name: "main", URL: "rtsp://admin:" + pw + "@127.0.0.1:554/s"}}}
	rec := newRecorder(func(ctx context.Context, op string, c api.Caller, req any) (any, error) {
		switch op {
		case "CameraShow":
			return cam, nil
		case "CameraList":
			return &apitype.CameraList{Cameras: []apitype.Camera{*cam}}, nil
		case "CameraAdd":
			return &apitype.MutationResult{Changed: true, Camera: cam, Message: "probed rtsp://admin:" + pw + "@127.0.0.1/s"}, nil
		case "Discover":
			return &apitype.DiscoverResult{Devices: []apitype.Device{{URN: "u", XAddrs: []string{"http://a:" + pw + "@127.0.0.1/"}}}}, nil
		case "StreamList":
			return &apitype.StreamList{Streams: []apitype.StreamStatus{{Camera: "cam1", LastError: "DESCRIBE rtsp://admin:" + pw + "@127.0.0.1/s: 401"}}}, nil
		}
		return nil, nil
	})
	sock := serve(t, t.TempDir(), api.Options{Backend: rec})
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/cameras/cam1", ""},
		{"GET", "/v1/cameras", ""},
		{"POST", "/v1/cameras", `{"name":"cam1","url":"rtsp://127.0.0.1/s"}`},
		{"POST", "/v1/discover", `{}`},
		{"GET", "/v1/streams", ""},
	} {
		status, _, raw := doRaw(t, sock, req.method, req.path, nil, strings.NewReader(req.body))
		if status != 200 || strings.Contains(string(raw), pw) || !strings.Contains(string(raw), "127.0.0.1") {
			t.Errorf("%s %s: %d %s", req.method, req.path, status, raw)
		}
	}
	if !strings.Contains(cam.Streams[0].URL, pw) || !strings.Contains(cam.ONVIF.XAddr, pw) {
		t.Errorf("the backend's camera was modified: %+v", cam)
	}
}
