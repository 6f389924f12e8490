package stream

import (
	"context"
	"strings"
	"testing"
	"time"
)

// startGuardedRig runs one puller (TCP) against cam with the given
// allow-basic setting.
func startGuardedRig(t *testing.T, cam *rawCam, allowBasic bool) *rig {
	t.Helper()
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url(), func(sp *StreamSpec) {
		sp.AllowBasic = allowBasic
	})})
	return r
}

func countPrefix(hs []string, prefix string) int {
	n := 0
	for _, h := range hs {
		if strings.HasPrefix(h, prefix) {
			n++
		}
	}
	return n
}

// TestBasicOnlyCameraIsRefused: a camera that offers only Basic gets no
// Authorization header at all, and the stream status says why and what to
// do. This failed before the guard: gortsplib answered Basic with the
// password in clear.
func TestBasicOnlyCameraIsRefused(t *testing.T) {
	cam := startRawCam(t, "ssrc", "")
	cam.setAuth("basic")
	r := startGuardedRig(t, cam, false)
	waitFor(t, 10*time.Second, "refusal in the stream status", func() bool {
		return strings.Contains(r.status("cam1/main").LastError, "only Basic")
	})
	if st := r.status("cam1/main"); !strings.Contains(st.LastError, "--allow-basic") || st.State == StateLive {
		t.Errorf("status %+v", st)
	}
	if got := cam.authorizations(); len(got) != 0 {
		t.Fatalf("the camera received Authorization headers: %q", got)
	}
	r.assertNoSecret(camPassword)
}

// TestBasicAllowedWhenConfigured: with --allow-basic the same camera plays.
func TestBasicAllowedWhenConfigured(t *testing.T) {
	cam := startRawCam(t, "ssrc", "")
	cam.setAuth("basic")
	r := startGuardedRig(t, cam, true)
	waitFor(t, 10*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	if n := countPrefix(cam.authorizations(), "Basic "); n == 0 {
		t.Fatal("no Basic Authorization was sent")
	}
}

// TestDigestPreferredOverBasic: offered both (Basic first), the puller
// answers Digest only.
func TestDigestPreferredOverBasic(t *testing.T) {
	cam := startRawCam(t, "ssrc", "")
	cam.setAuth("both")
	r := startGuardedRig(t, cam, true)
	waitFor(t, 10*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	got := cam.authorizations()
	if countPrefix(got, "Digest ") == 0 || countPrefix(got, "Basic ") != 0 {
		t.Fatalf("authorizations %q", got)
	}
}

// TestDigestToBasicDowngradeIsAnError: a camera that used Digest and, on
// the next connection, asks for Basic gets no Basic answer even with
// --allow-basic; the stream status reports the downgrade.
func TestDigestToBasicDowngradeIsAnError(t *testing.T) {
	cam := startRawCam(t, "ssrc", "")
	cam.setAuth("digest")
	r := startGuardedRig(t, cam, true)
	waitFor(t, 10*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	cam.setAuth("basic")
	cam.dropConnections()
	waitFor(t, 15*time.Second, "downgrade in the stream status", func() bool {
		return strings.Contains(r.status("cam1/main").LastError, "Basic authentication after Digest")
	})
	if n := countPrefix(cam.authorizations(), "Basic "); n != 0 {
		t.Fatalf("%d Basic Authorization headers sent after Digest", n)
	}
}

// TestRedirectToAnotherHostNotFollowed: a camera's redirect elsewhere is
// not followed, so the other address receives nothing.
func TestRedirectToAnotherHostNotFollowed(t *testing.T) {
	elsewhere := startRawCam(t, "ssrc", "")
	elsewhere.setAuth("digest")
	cam := startRawCam(t, "ssrc", "")
	cam.setAuth("redirect " + elsewhere.url())
	r := startGuardedRig(t, cam, false)
	waitFor(t, 10*time.Second, "refusal in the stream status", func() bool {
		return strings.Contains(r.status("cam1/main").LastError, "redirected to another host")
	})
	if got := elsewhere.authorizations(); len(got) != 0 {
		t.Fatalf("the redirect target received %q", got)
	}
	elsewhere.mu.Lock()
	n := len(elsewhere.conns)
	elsewhere.mu.Unlock()
	if n != 0 {
		t.Fatalf("the redirect target got %d connections", n)
	}
}
