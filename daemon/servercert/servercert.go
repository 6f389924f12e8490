// Package servercert keeps the RTSPS listener's certificate (#13): from the
// files an admin configured, or a self-signed ECDSA certificate generated in
// the state directory on first start. The private key file must not be
// readable or writable by group or others. Reload (SIGHUP) swaps in a new
// certificate for new handshakes; live TLS sessions are not touched.
//
// Not wired yet: the RTSPS listener itself belongs to daemon/stream
// (gortsplib's Server.TLSConfig takes Source.TLSConfig()).
package servercert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Names of the generated files in the state directory.
const (
	GeneratedCertFile = "rtsps-cert.pem"
	GeneratedKeyFile  = "rtsps-key.pem"
	generatedValidity = 10 * 365 * 24 * time.Hour
)

// Options say where the certificate comes from.
type Options struct {
	CertFile, KeyFile string   // both or neither; neither: generate in StateDir
	StateDir          string   // where a generated certificate is kept
	Hosts             []string // DNS names and IPs for a generated certificate (default: the host name, localhost, 127.0.0.1, ::1)
}

// Source holds the current certificate. Safe for concurrent use.
type Source struct {
	certFile, keyFile string
	generated         bool
	mu                sync.Mutex // serialises Reload
	current           atomic.Pointer[loaded]
}

type loaded struct {
	cert        tls.Certificate
	fingerprint string
	notAfter    time.Time
}

// Load reads (or, with no files configured and none generated yet, creates)
// the certificate. Its errors are one line an admin can act on.
func Load(opts Options) (*Source, error) {
	s := &Source{certFile: opts.CertFile, keyFile: opts.KeyFile}
	switch {
	case (opts.CertFile == "") != (opts.KeyFile == ""):
		return nil, errors.New("RTSPS needs both a certificate file and a key file, or neither (then one is generated)")
	case opts.CertFile == "":
		if opts.StateDir == "" {
			return nil, errors.New("RTSPS: no certificate configured and no state directory to generate one in")
		}
		s.generated = true
		s.certFile = filepath.Join(opts.StateDir, GeneratedCertFile)
		s.keyFile = filepath.Join(opts.StateDir, GeneratedKeyFile)
		if _, err := os.Stat(s.keyFile); errors.Is(err, os.ErrNotExist) {
			if err := generate(s.certFile, s.keyFile, opts.Hosts); err != nil {
				return nil, fmt.Errorf("RTSPS: cannot generate a self-signed certificate in %s: %w", opts.StateDir, err)
			}
		}
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the files. On any error the current certificate stays.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := CheckKeyFileMode(s.keyFile); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("RTSPS: cannot load the certificate %s with key %s: %v", s.certFile, s.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("RTSPS: the certificate in %s does not parse: %v", s.certFile, err)
	}
	cert.Leaf = leaf
	s.current.Store(&loaded{cert: cert, fingerprint: Fingerprint(leaf.Raw), notAfter: leaf.NotAfter})
	return nil
}

// CheckKeyFileMode refuses a key file that group or others may read or write.
func CheckKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("RTSPS: cannot read the key file: %v", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("RTSPS: refusing the key file %s: mode %04o lets group or others at it; run chmod 600 %s", path, m, path)
	}
	return nil
}

// TLSConfig is for the RTSPS listener: TLS 1.2 or later, the current
// certificate picked per handshake (so a reload needs no restart).
func (s *Source) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &s.current.Load().cert, nil
		},
	}
}

// Fingerprint of the current certificate (for `camwarden status`).
func (s *Source) Fingerprint() string { return s.current.Load().fingerprint }

// NotAfter is when the current certificate expires.
func (s *Source) NotAfter() time.Time { return s.current.Load().notAfter }

// Generated says whether the certificate is the self-signed one.
func (s *Source) Generated() bool { return s.generated }

// Fingerprint is the SHA-256 of a DER certificate, colon-separated hex, as
// `openssl x509 -fingerprint -sha256` prints it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func generate(certFile, keyFile string, hosts []string) error {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
		if h, err := os.Hostname(); err == nil && h != "" {
			hosts = append([]string{h}, hosts...)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"camwarden (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(generatedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// key first: a certificate without its key is useless, a key alone is regenerated
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile writes atomically (temporary file, fsync, rename, fsync dir).
func writeFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
