package camsim

import (
	"context"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/onvif"
)

// TestHTTPSMode: the ONVIF services answer over TLS with the camera's own
// certificate, which survives Restart; another Sim with the same seed has
// the same URN and a different certificate (the impostor of the pinning
// tests). Adopting reports the certificate and every service is https.
func TestHTTPSMode(t *testing.T) {
	s, _ := startSim(t, Options{HTTPS: true})
	cam := s.Cameras()[0]
	if !strings.HasPrefix(cam.XAddr(), "https://") || len(cam.CertSHA256()) != 64 {
		t.Fatalf("xaddr %q cert %q", cam.XAddr(), cam.CertSHA256())
	}
	ctx := context.Background()
	res, err := onvif.Adopt(ctx, cam.XAddr(), onvif.ClientOptions{Username: testUser, Password: testPass})
	if err != nil {
		t.Fatal(err)
	}
	if res.CertSHA256 != cam.CertSHA256() || !strings.HasPrefix(res.MediaXAddr, "https://") || len(res.Streams) == 0 {
		t.Fatalf("adopt: cert %q media %q streams %d", res.CertSHA256, res.MediaXAddr, len(res.Streams))
	}
	before := cam.CertSHA256()
	if err := cam.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := onvif.FetchCertFingerprint(ctx, cam.XAddr()); err != nil || got != before {
		t.Fatalf("after restart: %q %v, want %q", got, err, before)
	}
	twin, _ := startSim(t, Options{HTTPS: true})
	if twin.Cameras()[0].URN() != cam.URN() || twin.Cameras()[0].CertSHA256() == before {
		t.Fatal("a second Sim with the same seed must share the URN and not the certificate")
	}
	plain, _ := startSim(t, Options{})
	if plain.Cameras()[0].CertSHA256() != "" || !strings.HasPrefix(plain.Cameras()[0].XAddr(), "http://") {
		t.Fatal("plain mode")
	}
}
