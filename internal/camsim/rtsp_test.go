package camsim

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

// describe runs an RTSP DESCRIBE with user:pass against rawURL.
func describe(t *testing.T, rawURL, user, pass string) (*description.Session, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	return desc, err
}

// TestRTSPServesProfilesWithCameraCredentials checks the wiring to the media
// server: same credentials as ONVIF, one H.264 stream per profile, and fault
// switches that apply per camera and survive Restart.
func TestRTSPServesProfilesWithCameraCredentials(t *testing.T) {
	s, _ := startSim(t, Options{Cameras: 2})
	c := s.Cameras()[0]
	for _, p := range []string{"main", "sub"} {
		desc, err := describe(t, c.RTSPURL(p), testUser, testPass)
		if err != nil {
			t.Fatalf("DESCRIBE %s: %v", p, err)
		}
		var h264 *format.H264
		if desc.FindFormat(&h264) == nil {
			t.Fatalf("%s: no H.264 in %+v", p, desc.Medias)
		}
	}
	if _, err := describe(t, c.RTSPURL("main"), testUser, "wrong"); err == nil {
		t.Fatal("DESCRIBE with a wrong password succeeded")
	}

	c.SetFaults(media.Faults{BadSDP: true})
	if _, err := describe(t, c.RTSPURL("main"), testUser, testPass); err == nil {
		t.Fatal("BadSDP fault: DESCRIBE parsed")
	}
	// Faults are per camera.
	if _, err := describe(t, s.Cameras()[1].RTSPURL("main"), testUser, testPass); err != nil {
		t.Fatalf("the other camera caught the fault: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := describe(t, c.RTSPURL("main"), testUser, testPass); err == nil {
		t.Fatal("BadSDP fault lost on Restart")
	}
	c.SetFaults(media.Faults{})
	if _, err := describe(t, c.RTSPURL("main"), testUser, testPass); err != nil {
		t.Fatalf("after clearing faults: %v", err)
	}
}
