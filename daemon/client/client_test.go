package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
)

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	// No socket file at all, and a socket file nobody listens on.
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, p := range []string{missing, stale} {
		_, err := New(p).Status(context.Background())
		var ce *ConnError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: err = %T %v, want *ConnError", p, err, err)
		}
		want := "cannot reach camwardend at " + p + " — is a daemon running with --socket " + p + "? (check its log; the packaged daemon's socket is " + DefaultSocket + ")"
		if err.Error() != want {
			t.Errorf("message = %q, want %q", err.Error(), want)
		}
		if errors.Is(err, os.ErrPermission) {
			t.Errorf("%s: reported as permission error", p)
		}
	}
	def := (&ConnError{Path: DefaultSocket, Err: os.ErrNotExist}).Error()
	if !strings.Contains(def, "systemctl status camwardend") || !strings.Contains(def, "--socket PATH") {
		t.Errorf("default socket: %q", def)
	}
	perm := &ConnError{Path: "/run/x.sock", Err: os.NewSyscallError("connect", syscall.EACCES)}
	if !errors.Is(perm, os.ErrPermission) || !strings.Contains(perm.Error(), "permission denied on /run/x.sock") {
		t.Errorf("EACCES: %v", perm)
	}
}

// Answers that are not our error shape still become *apitype.Error.
func TestForeignErrorBodies(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			http.Error(w, "gateway trouble", http.StatusServiceUnavailable)
		case "/v1/cameras":
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"conflict","message":"camera cam1 exists"}}`))
		default:
			w.Write([]byte(`not json`))
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	cl := New(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = cl.Status(ctx)
	var ae *apitype.Error
	if !errors.As(err, &ae) || ae.Code != apitype.CodeUnavailable {
		t.Errorf("Status: %v", err)
	}
	_, err = cl.CameraAdd(ctx, apitype.CameraAddRequest{Name: "cam1"})
	if !errors.As(err, &ae) || ae.Code != apitype.CodeConflict || ae.Message != "camera cam1 exists" {
		t.Errorf("CameraAdd: %v", err)
	}
	if _, err := cl.UserList(ctx); err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Errorf("UserList with a non-JSON 200: %v", err)
	}
}

func FuzzParseError(f *testing.F) {
	f.Add(400, []byte(`{"error":{"code":"invalid","message":"bad"}}`))
	f.Add(500, []byte(`{"error":null}`))
	f.Add(404, []byte(`<html>`))
	f.Add(413, []byte(``))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		e := parseError(status, b)
		if e == nil || e.Code == "" {
			t.Fatalf("parseError(%d, %q) = %+v", status, b, e)
		}
	})
}
