package stream

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/camwarden/camwarden/daemon/access"
)

func TestFanOutOneCameraConnection(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = freeUDPPair(t) })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "cam1/main live", func() bool { return r.status("cam1/main").State == StateLive })

	var readers []*reader
	for i := 0; i < 4; i++ {
		proto := gortsplib.ProtocolTCP
		if i%2 == 1 {
			proto = gortsplib.ProtocolUDP
		}
		readers = append(readers, mustReader(t, r.url("alice", "alicepw", "cam1/main"), proto))
	}
	readers = append(readers, mustReader(t, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"), gortsplib.ProtocolTCP))
	for i, rd := range readers {
		waitFor(t, 5*time.Second, "reader receives packets", func() bool { return rd.pkts.Load() > 20 })
		if g := rd.gaps.Load(); g != 0 {
			t.Errorf("reader %d saw %d sequence gaps", i, g)
		}
	}
	if n := cam.sessions.Load(); n != 1 {
		t.Fatalf("camera saw %d sessions for %d readers, want 1", n, len(readers))
	}
	waitFor(t, 3*time.Second, "bitrate/fps", func() bool {
		st := r.status("cam1/main")
		return st.BitrateBps > 0 && st.FPS > 10
	})
	st := r.status("cam1/main")
	if st.Width != 1920 || st.Height != 1080 || len(st.Codecs) != 1 || st.Codecs[0] != "H264" {
		t.Errorf("status = %+v, want H264 1920x1080", st)
	}
	if st.Readers != len(readers) {
		t.Errorf("status readers = %d, want %d", st.Readers, len(readers))
	}
	if !strings.Contains(st.URL, "camuser:***@") {
		t.Errorf("status URL %q does not show the redacted user", st.URL)
	}
	ses := r.srv.Sessions()
	if len(ses) != len(readers) {
		t.Fatalf("Sessions() = %d, want %d", len(ses), len(readers))
	}
	var tcp, udp int
	for _, s := range ses {
		if s.Path != "cam1/main" || s.Action != "read" || s.ID == "" || s.RemoteAddr == "" {
			t.Errorf("session %+v incomplete", s)
		}
		switch s.Transport {
		case "TCP":
			tcp++
		case "UDP":
			udp++
		}
	}
	if tcp != 3 || udp != 2 {
		t.Errorf("transports tcp=%d udp=%d, want 3/2 (%+v)", tcp, udp, ses)
	}
	r.assertNoSecret(camPassword, "alicepw")
}

func TestGOPCacheFirstFrameAtOnce(t *testing.T) {
	// One frame per 100 ms and a 2 s GOP: without the cache a new reader
	// waits up to 2 s for its first keyframe.
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, frameEvery: 100 * time.Millisecond, gop: 20})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	// Let the GOP get past its keyframe.
	start := cam.frames.Load()
	waitFor(t, 5*time.Second, "frames", func() bool { return cam.frames.Load() > start+25 })
	for i := 0; i < 3; i++ {
		rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
		waitFor(t, 2*time.Second, "first packet", func() bool { return rd.pkts.Load() > 0 })
		rd.mu.Lock()
		ttff, key := rd.first.Sub(rd.started), rd.firstKey
		rd.mu.Unlock()
		// The first packet a reader gets starts a keyframe, at once.
		if !key || ttff > 500*time.Millisecond {
			t.Errorf("reader %d: first packet key=%v after %v", i, key, ttff)
		}
		// The replay is followed by the live packets with no gap.
		n := rd.pkts.Load()
		waitFor(t, 2*time.Second, "live after replay", func() bool { return rd.pkts.Load() > n+3 })
		if rd.gaps.Load() != 0 {
			t.Errorf("reader %d: %d gaps between GOP replay and live packets", i, rd.gaps.Load())
		}
		rd.c.Close()
		time.Sleep(230 * time.Millisecond) // land at different points of the GOP
	}
}

func TestEnforceAndKick(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	ra := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	rb := mustReader(t, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "both read", func() bool { return ra.pkts.Load() > 5 && rb.pkts.Load() > 5 })

	// Unchanged policy: nobody is cut off.
	if n := r.srv.Enforce(r.policy.Load()); n != 0 {
		t.Fatalf("Enforce(same) = %d", n)
	}
	// Bob loses his grant.
	np := mustPolicy(t, []string{"alice", "bob"}, readGrant("alice", "*"))
	r.policy.Store(np)
	if n := r.srv.Enforce(np); n != 1 {
		t.Fatalf("Enforce = %d, want 1", n)
	}
	// Returned only after bob's connection closed: the session is gone now.
	for _, s := range r.srv.Sessions() {
		if s.User == "bob" {
			t.Fatalf("bob's session still registered after Enforce")
		}
	}
	done := make(chan error, 1)
	go func() { done <- rb.c.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("bob's client still connected")
	}
	// Alice still reads.
	n := ra.pkts.Load()
	waitFor(t, 2*time.Second, "alice keeps reading", func() bool { return ra.pkts.Load() > n+5 })
	// Bob cannot come back.
	if _, err := startReader(t, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"), gortsplib.ProtocolTCP); err == nil {
		t.Fatal("bob read after revocation")
	}
	// A password change (new credential version) cuts alice off.
	us := []access.User{{Name: "alice", CredentialVersion: 2}}
	p2, _ := access.New(us, nil, []access.Grant{readGrant("alice", "*")})
	if n := r.srv.Enforce(p2); n != 1 {
		t.Fatalf("Enforce(password change) = %d, want 1", n)
	}
	// Kick.
	r.policy.Store(np)
	rc := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	ses := r.srv.Sessions()
	if len(ses) != 1 {
		t.Fatalf("sessions = %+v", ses)
	}
	if !r.srv.Kick(ses[0].ID) {
		t.Fatal("Kick returned false")
	}
	if r.srv.Kick(ses[0].ID) {
		t.Fatal("second Kick returned true")
	}
	if len(r.srv.Sessions()) != 0 {
		t.Fatal("kicked session still listed")
	}
	go func() { done <- rc.c.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("kicked client still connected")
	}
}

// TestRevocationBetweenAuthorisationAndRegistration: the policy changes
// after SETUP was authorised but before the session is registered with
// its user (SETUP can wait seconds for an on-demand source). Enforce would
// not see such a session, so registration re-checks the current policy.
func TestRevocationBetweenAuthorisationAndRegistration(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	allow := mustPolicy(t, []string{"alice"}, readGrant("alice", "*"))
	deny := mustPolicy(t, []string{"alice"})
	var calls atomic.Int32
	r := newRig(t, func(c *Config) {
		// Call 1: DESCRIBE's authorisation; call 2: SETUP's; from call 3
		// on (the re-check at registration) the right has been revoked.
		c.Policy = func() *access.Policy {
			if calls.Add(1) > 2 {
				return deny
			}
			return allow
		}
	})
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	if rd, err := startReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP); err == nil {
		rd.c.Close()
		t.Fatal("a reader revoked between authorisation and registration was let in")
	}
	if n := calls.Load(); n < 3 {
		t.Fatalf("policy consulted %d times; the registration re-check did not run", n)
	}
	for _, s := range r.srv.Sessions() {
		if s.User == "alice" {
			t.Fatal("the revoked reader's session is registered")
		}
	}
}
