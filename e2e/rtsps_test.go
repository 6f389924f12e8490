package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// writeCert writes a new self-signed ECDSA certificate and its key (0600)
// and returns the certificate's SHA-256 fingerprint as status prints it.
func writeCert(t *testing.T, certFile, keyFile string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "nvr.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+".new", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func (d *daemonProc) rtspsStatus() (addr, fingerprint string) {
	d.t.Helper()
	var st struct {
		Addr        string `json:"rtsps_addr"`
		Fingerprint string `json:"rtsps_fingerprint"`
	}
	out := d.must("", "--json", "status")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("status: %v\n%s", err, out)
	}
	return st.Addr, st.Fingerprint
}

func peerFingerprint(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// RTSPS with the real daemon: configured certificate files, the fingerprint
// in `camwarden status`, an FFmpeg reader over RTSPS that keeps streaming
// while SIGHUP brings in a new certificate (which new handshakes get), a
// directory of one default: the generated certificate; and a key file
// others may read refused at start with one line.
func TestRTSPSCertificateStatusAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "rtsps.crt"), filepath.Join(dir, "rtsps.key")
	fp1 := writeCert(t, certFile, keyFile)
	d := startDaemon(t, "", "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	addr, fp := d.rtspsStatus()
	if addr == "" || fp != fp1 {
		t.Fatalf("status: rtsps %q fingerprint %q, want %s", addr, fp, fp1)
	}
	if out := d.must("", "status"); !strings.Contains(out, "SHA256 "+fp1) {
		t.Fatalf("status does not show the fingerprint:\n%s", out)
	}
	d.addCamera("lobby", startCamera(t))
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must("", "grant", "alice", "read", "*")
	r := startFFmpeg(t, "rtsps://alice:"+url.QueryEscape(alicePassword)+"@"+addr+"/lobby/main")
	d.waitStreaming("alice", r)

	fp2 := writeCert(t, certFile, keyFile)
	d.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "the new certificate in status", func() bool { _, fp := d.rtspsStatus(); return fp == fp2 })
	if got := peerFingerprint(t, addr); got != fp2 {
		t.Fatalf("a new handshake got %s, want the new certificate %s", got, fp2)
	}
	_, b0 := d.sessionBytes("alice")
	testutil.WaitFor(t, 10*time.Second, "alice still streaming after the reload", func() bool {
		n, b := d.sessionBytes("alice")
		return r.running() && n == 1 && b > b0+100_000
	})
	d.stop()

	// A key file group or others may read: refused, one line.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Binary(t, "camwardend"), "--config", "/dev/null", "--state-dir", filepath.Join(dir, "state2"),
		"--socket", filepath.Join(dir, "b.sock"), "--rtsp-addr", "127.0.0.1:0", "--rtsps-addr", "127.0.0.1:0",
		"--discovery-interfaces", "none", "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "chmod 600 "+keyFile) {
		t.Fatalf("start with a 0644 key: %v\n%s", err, out)
	}
	testutil.CheckNoSecrets(t, "daemon output", string(out), []string{alicePassword})

	// No files configured: a generated self-signed certificate, shown as such.
	g := startDaemon(t, "")
	if out := g.must("", "status"); !strings.Contains(out, "(self-signed)") {
		t.Fatalf("status without configured files:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(g.dir, "state", "rtsps-key.pem")); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := os.ReadFile(keyFile)
	testutil.CheckNoSecrets(t, "daemon log", d.logs.String()+g.logs.String(), []string{string(keyPEM[40:80])})
}
