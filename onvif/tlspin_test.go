package onvif

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim"
)

// newTLSFakeCam is fakeCam behind HTTPS with its own self-signed
// certificate; it counts every request that arrives at all.
func newTLSFakeCam(t *testing.T) (*fakeCam, *atomic.Int64) {
	t.Helper()
	c := newFakeCam(t)
	c.srv.Close()
	var requests atomic.Int64
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		c.ServeHTTP(w, r)
	}))
	// httptest's own certificate is shared by every server: give each fake
	// camera its own, as real cameras have.
	cert, err := camsim.SelfSignedCert("fakecam", net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	c.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	c.mediaXAddr = "https://0.0.0.0:" + c.port() + "/onvif/media"
	return c, &requests
}

func fingerprintOf(srv *httptest.Server) string {
	return CertFingerprint(srv.Certificate().Raw)
}

func TestAdoptOverHTTPSLearnsTheCertificate(t *testing.T) {
	var logs syncBuffer
	cam, _ := newTLSFakeCam(t)
	res, err := Adopt(context.Background(), cam.xaddr(), camOpts(cam, &logs))
	if err != nil {
		t.Fatal(err)
	}
	if res.CertSHA256 != fingerprintOf(cam.srv) {
		t.Fatalf("CertSHA256 %q, want %q", res.CertSHA256, fingerprintOf(cam.srv))
	}
	got, err := FetchCertFingerprint(context.Background(), cam.xaddr())
	if err != nil || got != res.CertSHA256 {
		t.Fatalf("FetchCertFingerprint %q %v", got, err)
	}
}

func mustClient(t *testing.T, cam *fakeCam, pin string) *Client {
	t.Helper()
	opts := camOpts(cam, &syncBuffer{})
	opts.CertSHA256 = pin
	c, err := NewClient(cam.xaddr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPinnedClientSendsNothingToAnotherCertificate: a device at the pinned
// address with another certificate gets no HTTP request at all (the check
// is in the handshake), and the error says why.
func TestPinnedClientSendsNothingToAnotherCertificate(t *testing.T) {
	genuine, _ := newTLSFakeCam(t)
	impostor, requests := newTLSFakeCam(t)
	opts := camOpts(impostor, &syncBuffer{})
	opts.CertSHA256 = fingerprintOf(genuine.srv)
	_, err := Adopt(context.Background(), impostor.xaddr(), opts)
	if !errors.Is(err, ErrCertMismatch) {
		t.Fatalf("Adopt with a wrong certificate: %v", err)
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("a certificate mismatch is not 'unreachable': %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the impostor received %d HTTP requests", n)
	}
	noSecret(t, impostor, err.Error())
	// The pinned genuine camera works.
	opts.CertSHA256 = strings.ToUpper(fingerprintOf(genuine.srv))
	if _, err := Adopt(context.Background(), genuine.xaddr(), opts); err != nil {
		t.Fatalf("Adopt of the pinned camera: %v", err)
	}
}

// TestUnpinnedClientKeepsTheFirstCertificate: without a pin the first
// certificate is learnt and a later connection with another one fails.
func TestUnpinnedClientKeepsTheFirstCertificate(t *testing.T) {
	cam, requests := newTLSFakeCam(t)
	c := mustClient(t, cam, "")
	if _, err := c.GetDeviceInformation(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := c.CertSHA256()
	if first != fingerprintOf(cam.srv) {
		t.Fatalf("learnt %q", first)
	}
	// Swap the server's certificate (same address) and drop idle connections.
	other, _ := newTLSFakeCam(t)
	cam.srv.TLS.Certificates[0] = other.srv.TLS.Certificates[0]
	c.hc.CloseIdleConnections()
	before := requests.Load()
	if _, err := c.GetDeviceInformation(context.Background()); !errors.Is(err, ErrCertMismatch) {
		t.Fatalf("after the certificate changed: %v", err)
	}
	if requests.Load() != before {
		t.Fatal("a request reached the server with the changed certificate")
	}
}

func TestPinnedCameraRefusesPlainHTTPMedia(t *testing.T) {
	cam, _ := newTLSFakeCam(t)
	cam.mediaXAddr = "http://0.0.0.0:8080/onvif/media"
	opts := camOpts(cam, &syncBuffer{})
	opts.CertSHA256 = fingerprintOf(cam.srv)
	if _, err := Adopt(context.Background(), cam.xaddr(), opts); !errors.Is(err, ErrUnpinnedService) {
		t.Fatalf("Adopt: %v", err)
	}
}

// TestFirstHTTPSAdoptionRefusesPlainHTTPMedia: adopting over https with
// no pin yet (trust on first use) must not send the credentials to a Media1
// service at plain http on the same host. Before the fix the rule applied
// only once a pin existed, and the plain listener got WS-Security and
// Digest in clear.
func TestFirstHTTPSAdoptionRefusesPlainHTTPMedia(t *testing.T) {
	var plain atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plain.Add(1)
		http.Error(w, "no", http.StatusUnauthorized)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	cam, _ := newTLSFakeCam(t)
	cam.mediaXAddr = "http://127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "/onvif/media"
	opts := camOpts(cam, &syncBuffer{}) // no CertSHA256: first adoption
	if _, err := Adopt(context.Background(), cam.xaddr(), opts); !errors.Is(err, ErrUnpinnedService) {
		t.Errorf("Adopt: %v; want ErrUnpinnedService", err)
	}
	if n := plain.Load(); n != 0 {
		t.Fatalf("the plain-HTTP media service received %d requests", n)
	}
}

func TestPinOnPlainHTTPIsRefused(t *testing.T) {
	if _, err := NewClient("http://127.0.0.1:1/onvif/device_service", ClientOptions{CertSHA256: "ab"}); err == nil {
		t.Fatal("a pin on plain http was accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := FetchCertFingerprint(ctx, "http://127.0.0.1:1/"); err == nil {
		t.Fatal("FetchCertFingerprint on http")
	}
}
