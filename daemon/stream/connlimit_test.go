package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// answers reports whether the connection still answers an OPTIONS.
func (r *rawConn) answers() bool {
	res, err := r.do("OPTIONS", "*", nil)
	return err == nil && res.status == 200
}

// waitClosedByServer waits until the server closes rc (EOF or reset, not
// a read timeout), sending an OPTIONS now and then to keep the connection
// busy as a client that keeps it alive would.
func waitClosedByServer(t *testing.T, rc *rawConn, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := rc.do("OPTIONS", "*", nil); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return // EOF or reset: closed by the server
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still open after %v", what, within)
}

// TestUnauthenticatedConnectionTimesOut: a connection that only sends
// OPTIONS (which keeps gortsplib's read timeout fresh) is closed once it has
// not authenticated within AuthTimeout; an authenticated one stays.
func TestUnauthenticatedConnectionTimesOut(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.AuthTimeout = 500 * time.Millisecond })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })

	authed := dialRaw(t, r.addr, 0)
	if res, err := authed.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", map[string]string{"Authorization": basicAuth("alice", "alicepw")}); err != nil || res.status != 200 {
		t.Fatalf("DESCRIBE: %v %+v", err, res)
	}
	idle := dialRaw(t, r.addr, 0)
	opened := time.Now()
	waitClosedByServer(t, idle, 10*time.Second, "connection that never authenticated")
	if d := time.Since(opened); d < 400*time.Millisecond {
		t.Errorf("closed after %v, before the 500 ms AuthTimeout", d)
	}
	if !authed.answers() {
		t.Fatal("the authenticated connection was closed too")
	}
}

// TestUnauthenticatedConnectionsCapped: at most MaxUnauthPerAddr
// unauthenticated connections from one address (newcomers are closed), at
// most MaxUnauth in total (the oldest is closed to make room, so idle
// connections from many addresses cannot lock a genuine viewer out).
func TestUnauthenticatedConnectionsCapped(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.MaxUnauthPerAddr = 4; c.MaxUnauth = 12 })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })

	var one []*rawConn
	for i := 0; i < 8; i++ {
		rc := dialRawFrom(t, "127.0.0.1", r.addr, 0)
		if i < 4 {
			if !rc.answers() {
				t.Fatalf("connection %d from one address refused below the cap", i)
			}
			one = append(one, rc)
			continue
		}
		waitClosedByServer(t, rc, 5*time.Second, fmt.Sprintf("connection %d from one address, over its cap of 4", i))
	}
	var many []*rawConn
	for i := 1; i <= 12; i++ {
		rc := dialRawFrom(t, fmt.Sprintf("127.0.3.%d", i), r.addr, 0)
		if !rc.answers() {
			t.Fatalf("connection from 127.0.3.%d refused", i)
		}
		many = append(many, rc)
	}
	// 4 + 12 > 12: the four oldest (from 127.0.0.1) made room.
	for i, rc := range one {
		waitClosedByServer(t, rc, 5*time.Second, fmt.Sprintf("oldest unauthenticated connection %d", i))
	}
	for i, rc := range many {
		if !rc.answers() {
			t.Fatalf("connection from 127.0.3.%d closed, but it was not among the oldest", i+1)
		}
	}
	// A genuine viewer still gets in; the oldest idle connection goes.
	viewer := dialRawFrom(t, "127.0.4.1", r.addr, 0)
	if res, err := viewer.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", map[string]string{"Authorization": basicAuth("alice", "alicepw")}); err != nil || res.status != 200 {
		t.Fatalf("genuine viewer with the table full: %v %+v", err, res)
	}
	waitClosedByServer(t, many[0], 5*time.Second, "oldest idle connection after a newcomer")
	// Authenticated, the viewer no longer counts: twelve newcomers do not evict it.
	for i := 1; i <= 12; i++ {
		if !dialRawFrom(t, fmt.Sprintf("127.0.5.%d", i), r.addr, 0).answers() {
			t.Fatalf("newcomer 127.0.5.%d refused", i)
		}
	}
	if !viewer.answers() {
		t.Fatal("authenticated viewer evicted by unauthenticated newcomers")
	}
}
