package servercert

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGeneratedOnFirstStartAndKept(t *testing.T) {
	dir := t.TempDir()
	s, err := Load(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Generated() || s.NotAfter().Before(time.Now().Add(365*24*time.Hour)) {
		t.Fatalf("generated %v, expires %s", s.Generated(), s.NotAfter())
	}
	fi, err := os.Stat(filepath.Join(dir, GeneratedKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v %v", fi, err)
	}
	// the fingerprint is the one openssl computes
	out, err := exec.Command("openssl", "x509", "-in", filepath.Join(dir, GeneratedCertFile), "-noout", "-fingerprint", "-sha256").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	if want := strings.TrimSpace(string(out[strings.IndexByte(string(out), '=')+1:])); s.Fingerprint() != want {
		t.Fatalf("fingerprint %s, openssl says %s", s.Fingerprint(), want)
	}
	// a second start keeps the certificate
	again, err := Load(Options{StateDir: dir})
	if err != nil || again.Fingerprint() != s.Fingerprint() {
		t.Fatalf("second start: %v, fingerprint %s vs %s", err, again.Fingerprint(), s.Fingerprint())
	}
}

func TestKeyFileReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Load(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, GeneratedKeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o622} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(Options{StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+key) || strings.Count(err.Error(), "\n") != 0 {
			t.Fatalf("mode %04o: %v, want one line saying chmod 600", mode, err)
		}
		fp := s.Fingerprint()
		if err := s.Reload(); err == nil || s.Fingerprint() != fp {
			t.Fatalf("mode %04o: reload %v, certificate kept: %v", mode, err, s.Fingerprint() == fp)
		}
	}
	if _, err := Load(Options{CertFile: filepath.Join(dir, GeneratedCertFile)}); err == nil {
		t.Fatal("a certificate without a key file was accepted")
	}
}

// A reload changes the certificate for new handshakes only: a live TLS
// session keeps working.
func TestReloadKeepsLiveSessions(t *testing.T) {
	confDir, genA, genB := t.TempDir(), t.TempDir(), t.TempDir()
	a, err := Load(Options{StateDir: genA})
	must(t, err)
	b, err := Load(Options{StateDir: genB})
	must(t, err)
	cert, key := filepath.Join(confDir, "cert.pem"), filepath.Join(confDir, "key.pem")
	copyFile(t, filepath.Join(genA, GeneratedCertFile), cert, 0o644)
	copyFile(t, filepath.Join(genA, GeneratedKeyFile), key, 0o600)
	s, err := Load(Options{CertFile: cert, KeyFile: key})
	must(t, err)
	if s.Generated() || s.Fingerprint() != a.Fingerprint() {
		t.Fatal("the configured certificate was not used")
	}
	ln := echoServer(t, s.TLSConfig())
	old := dialTLS(t, ln)
	if fp := peerFingerprint(old); fp != a.Fingerprint() {
		t.Fatalf("first session sees %s", fp)
	}
	copyFile(t, filepath.Join(genB, GeneratedCertFile), cert, 0o644)
	copyFile(t, filepath.Join(genB, GeneratedKeyFile), key, 0o600)
	must(t, s.Reload())
	if s.Fingerprint() != b.Fingerprint() {
		t.Fatal("reload did not take the new certificate")
	}
	echo(t, old, "still here")
	fresh := dialTLS(t, ln)
	if fp := peerFingerprint(fresh); fp != b.Fingerprint() {
		t.Fatalf("a new session after reload sees %s", fp)
	}
	echo(t, fresh, "new")
}

// openssl s_client, a client nobody here wrote, gets TLS 1.2 or later and
// nothing older.
func TestOpenSSLNegotiatesTLS12OrLater(t *testing.T) {
	s, err := Load(Options{StateDir: t.TempDir()})
	must(t, err)
	ln := echoServer(t, s.TLSConfig())
	addr := ln.Addr().String()
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", addr, "-brief"}, args...)...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("-tls1_2")
	if err != nil || !strings.Contains(out, "Protocol version: TLSv1.2") {
		t.Fatalf("TLS 1.2: %v\n%s", err, out)
	}
	if out, err := run(); err != nil || !strings.Contains(out, "Protocol version: TLSv1.3") {
		t.Fatalf("default: %v\n%s", err, out)
	}
	// allow TLS 1.1 on the client side, so that a refusal is the server's
	if out, err := run("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"); err == nil || strings.Contains(out, "Protocol version: TLSv1.1") {
		t.Fatalf("TLS 1.1 was accepted:\n%s", out)
	}
}

func echoServer(t *testing.T, cfg *tls.Config) net.Listener {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ln := tls.NewListener(raw, cfg)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln
}

func dialTLS(t *testing.T, ln net.Listener) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{InsecureSkipVerify: true}) // self-signed: the test checks the fingerprint instead
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func peerFingerprint(c *tls.Conn) string {
	return Fingerprint(c.ConnectionState().PeerCertificates[0].Raw)
}

func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("echo %q: %q %v", msg, line, err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, mode))
	must(t, os.Chmod(to, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
