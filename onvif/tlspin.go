package onvif

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// ErrCertMismatch: the device presented a TLS certificate other than the
// pinned one. Nothing was sent over that connection.
var ErrCertMismatch = errors.New("the device presented a different TLS certificate")

// ErrUnpinnedService: a pinned device named a service that is not behind
// TLS; credentials would leave the pinned channel.
var ErrUnpinnedService = errors.New("service is not behind the pinned TLS certificate")

// CertFingerprint is the hex SHA-256 of a DER certificate.
func CertFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// certPin checks every TLS handshake of one client. Cameras use
// self-signed certificates, so the chain is not verified; instead the leaf
// must be the pinned one, or, without a pin, the same leaf the client saw
// first (trust on first use: the admin named the address). The check runs
// inside the handshake, before any HTTP byte, so a wrong certificate never
// receives a request, let alone a credential.
type certPin struct {
	mu   sync.Mutex
	want string // pinned fingerprint; "" = learn from the first handshake
	seen string
}

func (p *certPin) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", ErrCertMismatch)
	}
	got := CertFingerprint(cs.PeerCertificates[0].Raw)
	p.mu.Lock()
	defer p.mu.Unlock()
	want := p.want
	if want == "" {
		want = p.seen
	}
	if want != "" && got != want {
		return fmt.Errorf("%w (sha256 %s, expected %s)", ErrCertMismatch, ShortFingerprint(got), ShortFingerprint(want))
	}
	p.seen = got
	return nil
}

func (p *certPin) fingerprint() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen
}

// ShortFingerprint is a certificate fingerprint cut for a message.
func ShortFingerprint(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}

// pinnedTransport returns base's transport with TLS checked by pin.
func pinnedTransport(base http.RoundTripper, pin *certPin) (http.RoundTripper, error) {
	var t *http.Transport
	switch b := base.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = b.Clone()
	default:
		return nil, errors.New("onvif: an https device needs an *http.Transport (its TLS check is ours)")
	}
	cfg := &tls.Config{}
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	}
	cfg.InsecureSkipVerify = true // the chain of a self-signed camera; the pin is checked below
	cfg.VerifyConnection = pin.verify
	cfg.MinVersion = tls.VersionTLS12
	t.TLSClientConfig = cfg
	t.Proxy = nil // a camera on the LAN is never reached through a proxy
	return t, nil
}

// FetchCertFingerprint connects to an https device address, completes a TLS
// handshake and returns the hex SHA-256 of the leaf certificate. It sends no
// request and no credential: it is how a device that claims to be a pinned
// camera at a new address is checked before anything else is said to it.
func FetchCertFingerprint(ctx context.Context, xaddr string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(xaddr))
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return "", errors.New("onvif: certificate check needs an https device address")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return "", fmt.Errorf("onvif: TLS handshake with %s: %w: %w", u.Host, ErrUnreachable, err)
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("onvif: %s presented no certificate", u.Host)
	}
	return CertFingerprint(cs.PeerCertificates[0].Raw), nil
}
