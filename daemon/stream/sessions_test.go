package stream

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"

	"github.com/camwarden/camwarden/daemon/access"
)

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

// Enforce closes exactly the sessions a new policy drops, across paths:
// alice keeps cam1 and loses cam2; bob keeps cam1; nobody else is touched.
// Sessions lists only authorised sessions, oldest first.
func TestEnforceAcrossPathsAndSessionList(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{
		camSpec("cam1", "main", cam.url("live"), nil),
		camSpec("cam2", "main", cam.url("live"), nil),
	})
	for _, p := range []string{"cam1/main", "cam2/main"} {
		waitFor(t, 5*time.Second, p+" live", func() bool { return r.status(p).State == StateLive })
	}
	a1 := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	a2 := mustReader(t, r.url("alice", "alicepw", "cam2/main"), gortsplib.ProtocolTCP)
	b1 := mustReader(t, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "all read", func() bool { return a1.pkts.Load() > 3 && a2.pkts.Load() > 3 && b1.pkts.Load() > 3 })

	ses := r.srv.Sessions()
	if len(ses) != 3 {
		t.Fatalf("sessions = %+v, want 3", ses)
	}
	for i := 1; i < len(ses); i++ {
		if ses[i].Since.Before(ses[i-1].Since) {
			t.Errorf("sessions not oldest first: %+v", ses)
		}
	}
	if ses[0].User != "alice" || ses[0].Path != "cam1/main" || ses[0].Action != "read" || ses[2].User != "bob" {
		t.Errorf("sessions = %+v", ses)
	}

	np := mustPolicy(t, []string{"alice", "bob"}, readGrant("alice", "cam1/*"), readGrant("bob", "cam1/*"))
	r.policy.Store(np)
	if n := r.srv.Enforce(np); n != 1 {
		t.Fatalf("Enforce = %d, want 1", n)
	}
	left := r.srv.Sessions()
	if len(left) != 2 {
		t.Fatalf("sessions after Enforce = %+v", left)
	}
	for _, s := range left {
		if s.Path != "cam1/main" {
			t.Errorf("a session on %s survived: %+v", s.Path, s)
		}
	}
	for name, rd := range map[string]*reader{"alice cam1": a1, "bob cam1": b1} {
		n := rd.pkts.Load()
		waitFor(t, 3*time.Second, name+" keeps reading", func() bool { return rd.pkts.Load() > n+3 })
	}
	if r.srv.Kick("no-such-session") {
		t.Error("Kick of an unknown id returned true")
	}
}
