package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim"
	"github.com/camwarden/camwarden/internal/testutil"
)

// recorder keeps every request a fake device received: HTTP (method,
// headers, body) and RTSP (the raw request heads).
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	r.mu.Unlock()
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// credentialed returns the recorded requests that carry any credential: a
// WS-Security UsernameToken, an Authorization header (HTTP Digest or Basic,
// RTSP Basic or Digest), or the camera password itself.
func (r *recorder) credentialed() []string {
	var out []string
	for _, s := range r.all() {
		l := strings.ToLower(s)
		if strings.Contains(l, "usernametoken") || strings.Contains(l, "authorization:") || strings.Contains(s, cameraPassword) {
			out = append(out, s)
		}
	}
	return out
}

// recordHTTP records a request in full and restores its body.
func (r *recorder) recordHTTP(req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	req.Body = io.NopCloser(strings.NewReader(string(body)))
	var b strings.Builder
	b.WriteString(req.Method + " " + req.URL.String() + "\n")
	for k, vs := range req.Header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n" + string(body))
	r.add(b.String())
}

// startRTSPRecorder is the attacker's RTSP server: it records every
// request and answers each with a Basic-only challenge.
func startRTSPRecorder(t *testing.T, rec *recorder) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					var head strings.Builder
					cseq := "1"
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if v, ok := strings.CutPrefix(strings.TrimSpace(line), "CSeq:"); ok {
							cseq = strings.TrimSpace(v)
						}
						if strings.TrimSpace(line) == "" {
							break
						}
					}
					rec.add("RTSP " + head.String())
					io.WriteString(conn, "RTSP/1.0 401 Unauthorized\r\nCSeq: "+cseq+"\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// startSpoofProxy is the attacker's ONVIF device: a recording reverse proxy
// in front of target() (a camsim twin that accepts whatever it is sent),
// with the twin's RTSP address in every answer rewritten to rtspAddr. Were
// the daemon to trust a Hello naming it, it would adopt the attacker's
// streams and answer the attacker's Basic challenge with the password.
func startSpoofProxy(t *testing.T, rec *recorder, target func() (xaddr, rtsp string), rtspAddr string) string {
	t.Helper()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			x, _ := target()
			u, _ := url.Parse(x)
			pr.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
		},
		ModifyResponse: func(resp *http.Response) error {
			_, twinRTSP := target()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			_, port, _ := net.SplitHostPort(twinRTSP)
			_, myPort, _ := net.SplitHostPort(rtspAddr)
			out := strings.ReplaceAll(string(body), ":"+port+"/", ":"+myPort+"/")
			resp.Body = io.NopCloser(strings.NewReader(out))
			resp.ContentLength = int64(len(out))
			resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
			return nil
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.recordHTTP(r)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/onvif/device_service"
}

type cameraJSON struct {
	ONVIF *struct {
		XAddr      string `json:"xaddr"`
		CertSHA256 string `json:"cert_sha256"`
	} `json:"onvif"`
	PendingMove *struct {
		XAddr  string   `json:"xaddr"`
		Addr   string   `json:"addr"`
		Also   []string `json:"also"`
		Reason string   `json:"reason"`
		Hint   string   `json:"hint"`
	} `json:"pending_move"`
	Streams []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"streams"`
}

func (d *daemonProc) camera(name string) cameraJSON {
	d.t.Helper()
	var c cameraJSON
	out := d.must("", "--json", "camera", "show", name)
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		d.t.Fatalf("camera show: %v\n%s", err, out)
	}
	return c
}

// pendingAt reports whether c has a pending move naming addr (HOST:PORT).
func (c cameraJSON) pendingAt(addr string) bool {
	if c.PendingMove == nil {
		return false
	}
	return c.PendingMove.Addr == addr || slices.Contains(c.PendingMove.Also, addr)
}

func hostPortOf(xaddr string) string {
	u, _ := url.Parse(xaddr)
	return u.Host
}

// TestSpoofedDiscoveryGetsNoCredentials: an attacker on the camera LAN
// sends a Hello (and answers a probe) with an adopted camera's public URN
// and the attacker's own XAddr. The daemon sends the attacker nothing — no
// WS-Security token, no HTTP Digest, no RTSP Basic — and the camera's URLs
// stay; the sighting is a pending move shown by camera show and stream
// list. When the real camera moves, camera move applies it. On the code
// before this fix the daemon re-queried the attacker with the stored
// credentials, rewrote the streams to it and answered its Basic challenge.
func TestSpoofedDiscoveryGetsNoCredentials(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	d := startDaemon(t, "", "--discovery-interfaces", "lo", "--discovery-interval", "1h")
	genuine, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryInterfaces: []string{"none"},
		Username: "admin", Password: cameraPassword, Seed: "spoofed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := genuine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer genuine.Close()
	cam := genuine.Cameras()[0]
	d.discover(genuine.DiscoveryAddr().String())
	d.must(cameraPassword+"\n", "camera", "adopt", "door", "--device", cam.URN(), "--user", "admin", "--password-stdin")
	d.must(alicePassword+"\n", "user", "add", "viewer", "--password-stdin")
	d.must("", "grant", "viewer", "read", "*")
	before := d.camera("door")
	d.reader("door/main", "viewer", alicePassword)

	// The attacker: a twin with the same URN (the seed), announcing the
	// recording proxy's address, with a Basic-only RTSP recorder.
	var rec recorder
	rtspAddr := startRTSPRecorder(t, &rec)
	var twinCam *camsim.Camera
	var twinMu sync.Mutex
	target := func() (string, string) {
		twinMu.Lock()
		defer twinMu.Unlock()
		if twinCam == nil {
			return "http://127.0.0.1:1", "127.0.0.1:1"
		}
		return twinCam.XAddr(), hostPortOf(twinCam.RTSPURL("main"))
	}
	spoofXAddr := startSpoofProxy(t, &rec, target, rtspAddr)
	twin, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryInterfaces: []string{"lo"},
		Username: "admin", Password: cameraPassword, Seed: "spoofed"})
	if err != nil {
		t.Fatal(err)
	}
	twin.Cameras()[0].AdvertiseXAddr(spoofXAddr)
	twinMu.Lock()
	twinCam = twin.Cameras()[0]
	twinMu.Unlock()
	if twinCam.URN() != cam.URN() {
		t.Fatal("the twin must share the camera's URN")
	}
	if err := twin.Start(context.Background()); err != nil { // multicasts the spoofed Hello
		t.Fatal(err)
	}
	defer twin.Close()

	testutil.WaitFor(t, 15*time.Second, "the spoofed Hello handled", func() bool {
		c := d.camera("door")
		return (c.PendingMove != nil && c.PendingMove.XAddr == spoofXAddr) || len(rec.all()) > 0
	})
	testutil.Poll(2*time.Second, func() bool { return len(rec.credentialed()) > 0 })
	if got := rec.credentialed(); len(got) != 0 {
		t.Fatalf("the attacker received %d requests with credentials, the first:\n%s", len(got), got[0])
	}
	if c := d.camera("door"); c.PendingMove == nil || c.PendingMove.XAddr != spoofXAddr {
		t.Fatalf("no pending move for the spoofed Hello: %+v", c)
	}
	// The directed-probe path (camwarden discover) answers with a second
	// attacker address.
	spoofXAddr2 := startSpoofProxy(t, &rec, target, rtspAddr)
	twinCam.AdvertiseXAddr(spoofXAddr2)
	d.discover(twin.DiscoveryAddr().String())
	testutil.WaitFor(t, 15*time.Second, "pending move from the spoofed ProbeMatch", func() bool {
		return d.camera("door").pendingAt(hostPortOf(spoofXAddr2))
	})
	// Announce once more and give a (wrong) re-query time to arrive before
	// judging what the attacker received.
	twinCam.Announce()
	testutil.Poll(3*time.Second, func() bool { return len(rec.all()) > 0 })

	if got := rec.credentialed(); len(got) != 0 {
		t.Fatalf("the attacker received %d requests with credentials, the first:\n%s", len(got), got[0])
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("the attacker received %d requests (none was expected), the first:\n%s", len(got), got[0])
	}
	after := d.camera("door")
	if after.ONVIF.XAddr != before.ONVIF.XAddr || mustJSON(t, after.Streams) != mustJSON(t, before.Streams) {
		t.Fatalf("a spoofed discovery changed the camera:\nbefore %+v\nafter  %+v", before, after)
	}
	hint := "moved? seen at " + hostPortOf(spoofXAddr) + ", confirm with `camwarden camera move door --to " + hostPortOf(spoofXAddr) + "`" +
		" (also announced at " + hostPortOf(spoofXAddr2) + ": only one of these can be the camera)"
	if after.PendingMove.Hint != hint {
		t.Errorf("hint %q, want %q", after.PendingMove.Hint, hint)
	}
	if show := d.must("", "camera", "show", "door"); !strings.Contains(show, hint) {
		t.Errorf("camera show:\n%s", show)
	}
	if list := d.must("", "camera", "list"); !strings.Contains(list, hint) {
		t.Errorf("camera list:\n%s", list)
	}
	if list := d.must("", "stream", "list"); !strings.Contains(list, hint) {
		t.Errorf("stream list:\n%s", list)
	}
	d.reader("door/main", "viewer", alicePassword) // still the real camera
	// The admin dismisses the bogus move by confirming the current address.
	d.must("", "camera", "move", "door", "--to", hostPortOf(before.ONVIF.XAddr))
	if c := d.camera("door"); c.PendingMove != nil || c.ONVIF.XAddr != before.ONVIF.XAddr {
		t.Fatalf("after dismissing: %+v", c)
	}

	// The real camera renumbers; the next probe sees it; the admin confirms.
	if err := cam.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.discover(genuine.DiscoveryAddr().String())
	newAddr := hostPortOf(cam.XAddr())
	testutil.WaitFor(t, 15*time.Second, "pending move to the camera's new address", func() bool {
		return d.camera("door").pendingAt(newAddr)
	})
	d.must("", "camera", "move", "door", "--to", newAddr)
	moved := d.camera("door")
	if moved.ONVIF.XAddr != cam.XAddr() || moved.PendingMove != nil || !strings.Contains(mustJSON(t, moved.Streams), cam.RTSPURL("main")) {
		t.Fatalf("after camera move: %+v", moved)
	}
	d.reader("door/main", "viewer", alicePassword)
	if got := rec.all(); len(got) != 0 {
		t.Fatalf("the attacker received %d requests", len(got))
	}
	audit := d.must("", "audit", "list")
	for _, want := range []string{"camera.move_pending", "camera.move"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit has no %s:\n%s", want, audit)
		}
	}
}

// TestPinnedHTTPSCameraFollowsItself: a camera adopted over HTTPS has its
// certificate pinned. An impostor with its URN and another certificate
// receives no request at all (the certificate is checked in a bare TLS
// handshake first) and leaves only a pending move; the real camera, moved
// to new ports, is followed without any admin action.
func TestPinnedHTTPSCameraFollowsItself(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	d := startDaemon(t, "", "--discovery-interfaces", "lo", "--discovery-interval", "1h")
	genuine, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryInterfaces: []string{"lo"}, HTTPS: true,
		Username: "admin", Password: cameraPassword, Seed: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	if err := genuine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer genuine.Close()
	cam := genuine.Cameras()[0]
	d.discover(genuine.DiscoveryAddr().String())
	d.must(cameraPassword+"\n", "camera", "adopt", "gate", "--device", cam.URN(), "--user", "admin", "--password-stdin")
	if c := d.camera("gate"); c.ONVIF.CertSHA256 != cam.CertSHA256() {
		t.Fatalf("pinned %q, camera presents %q", c.ONVIF.CertSHA256, cam.CertSHA256())
	}
	d.must(alicePassword+"\n", "user", "add", "viewer", "--password-stdin")
	d.must("", "grant", "viewer", "read", "*")
	d.reader("gate/main", "viewer", alicePassword)

	// The impostor: an HTTPS device with its own certificate that records
	// every request, announced with the camera's URN by a plain twin.
	var rec recorder
	impCert, err := camsim.SelfSignedCert("impostor", net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	imp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.recordHTTP(r)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	imp.TLS = &tls.Config{Certificates: []tls.Certificate{impCert}}
	imp.StartTLS()
	defer imp.Close()
	impXAddr := imp.URL + "/onvif/device_service"
	twin, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryInterfaces: []string{"lo"},
		Username: "admin", Password: "not-the-password", Seed: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	twin.Cameras()[0].AdvertiseXAddr(impXAddr)
	if err := twin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer twin.Close()
	testutil.WaitFor(t, 15*time.Second, "pending move for the impostor", func() bool {
		c := d.camera("gate")
		return c.PendingMove != nil && c.PendingMove.XAddr == impXAddr
	})
	if c := d.camera("gate"); !strings.Contains(c.PendingMove.Reason, "different TLS certificate") {
		t.Errorf("reason %q", c.PendingMove.Reason)
	}
	if got := rec.all(); len(got) != 0 {
		t.Fatalf("the impostor received %d requests, the first:\n%s", len(got), got[0])
	}

	// The real camera moves (new ports, same certificate) and says Hello.
	oldRTSP := cam.RTSPURL("main")
	if err := cam.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the pinned camera followed", func() bool {
		c := d.camera("gate")
		return c.ONVIF.XAddr == cam.XAddr() && c.PendingMove == nil
	})
	if c := d.camera("gate"); !strings.Contains(mustJSON(t, c.Streams), cam.RTSPURL("main")) || strings.Contains(mustJSON(t, c.Streams), oldRTSP) {
		t.Fatalf("streams after following: %+v", c.Streams)
	}
	d.reader("gate/main", "viewer", alicePassword)
	if !strings.Contains(d.must("", "audit", "list"), "camera.follow") {
		t.Error("the automatic follow is not audited")
	}
	if got := rec.all(); len(got) != 0 {
		t.Fatalf("the impostor received %d requests", len(got))
	}
}

// TestPinnedCameraBehindARelayIsNotFollowed: a relay at another address
// passes TLS through to the real camera, so the pinned certificate
// matches; but the camera, asked over that pinned channel, reports its own
// address, which is not the relay's, and the move stays pending.
func TestPinnedCameraBehindARelayIsNotFollowed(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	d := startDaemon(t, "", "--discovery-interfaces", "lo", "--discovery-interval", "1h")
	genuine, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryInterfaces: []string{"none"}, HTTPS: true,
		Username: "admin", Password: cameraPassword, Seed: "relayed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := genuine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer genuine.Close()
	cam := genuine.Cameras()[0]
	d.discover(genuine.DiscoveryAddr().String())
	d.must(cameraPassword+"\n", "camera", "adopt", "dock", "--device", cam.URN(), "--user", "admin", "--password-stdin")
	before := d.camera("dock")

	// The relay: 127.0.0.2 (another address on lo) -> the camera's HTTPS port.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", hostPortOf(cam.XAddr()))
			if err != nil {
				in.Close()
				continue
			}
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	relayXAddr := "https://" + ln.Addr().String() + "/onvif/device_service"
	twin, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryInterfaces: []string{"lo"},
		Username: "admin", Password: "not-the-password", Seed: "relayed"})
	if err != nil {
		t.Fatal(err)
	}
	twin.Cameras()[0].AdvertiseXAddr(relayXAddr)
	if err := twin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer twin.Close()
	testutil.WaitFor(t, 20*time.Second, "pending move for the relay", func() bool {
		c := d.camera("dock")
		return c.PendingMove != nil && c.PendingMove.XAddr == relayXAddr
	})
	c := d.camera("dock")
	if !strings.Contains(c.PendingMove.Reason, "not 127.0.0.2") {
		t.Errorf("reason %q", c.PendingMove.Reason)
	}
	if c.ONVIF.XAddr != before.ONVIF.XAddr || mustJSON(t, c.Streams) != mustJSON(t, before.Streams) {
		t.Fatalf("the relay moved the camera: %+v", c)
	}
	ln.Close()
}
