package stream

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/servercert"
)

// rtspsRig serves RTSPS on a second loopback address with a generated
// self-signed certificate, basic_auth = tls-only.
func rtspsRig(t *testing.T) (*rig, string) {
	t.Helper()
	cert, err := servercert.Load(servercert.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := camsimRig(t, func(c *Config) {
		c.TLS = cert.TLSConfig()
		c.RTSPSAddress = "127.0.0.1:0"
		c.BasicAuth = func() string { return BasicTLSOnly }
	})
	a := r.srv.RTSPSAddr()
	if a == nil {
		t.Fatal("no RTSPS listener")
	}
	return r, a.String()
}

// RTSPS read by two third-party clients (FFmpeg's ffprobe and GStreamer's
// rtspsrc), TLS >= 1.2 as openssl s_client sees it, Basic taken over TLS
// and refused over plain RTSP (tls-only), and no UDP for a TLS reader.
func TestRTSPSReadByThirdPartyClients(t *testing.T) {
	needBins(t, "ffprobe", "gst-launch-1.0", "openssl")
	r, tlsAddr := rtspsRig(t)
	url := "rtsps://alice:alicepw@" + tlsAddr + "/cam1/main"

	out, err := exec.Command("ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-tls_verify", "0",
		"-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264") {
		t.Fatalf("ffprobe over RTSPS: %v\n%s", err, out)
	}
	gst := runFor(t, 8*time.Second, "gst-launch-1.0", "-v", "rtspsrc", "location=rtsps://"+tlsAddr+"/cam1/main",
		"user-id=alice", "user-pw=alicepw", "tls-validation-flags=0", "protocols=tcp",
		"!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "silent=false")
	if frames := strings.Count(gst, "fakesink0: last-message = chain"); frames < 50 || strings.Contains(gst, "ERROR") {
		t.Fatalf("GStreamer over RTSPS: %d decoded frames\n%s", frames, tail(gst, 3000))
	}

	for _, c := range []struct {
		flag, want string
		ok         bool
	}{{"-tls1_2", "Protocol version: TLSv1.2", true}, {"-tls1_3", "Protocol version: TLSv1.3", true}, {"-tls1_1", "", false}} {
		cmd := exec.Command("openssl", "s_client", "-connect", tlsAddr, c.flag, "-brief")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		if c.ok && (err != nil || !strings.Contains(string(out), c.want)) {
			t.Fatalf("openssl s_client %s: %v\n%s", c.flag, err, out)
		}
		if !c.ok && err == nil && strings.Contains(string(out), "Protocol version") {
			t.Fatalf("openssl s_client %s connected:\n%s", c.flag, out)
		}
	}

	// Basic over TLS is taken; the same over plain RTSP is refused
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw"))
	tc, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	rc := &rawConn{t: t, c: tc, br: bufio.NewReader(tc)}
	st, offers := challengeLines(t, rc, "rtsps://"+tlsAddr+"/cam1/main", "")
	if st != 401 || len(offers) != 2 {
		t.Fatalf("RTSPS challenge %d %q, want Basic and Digest", st, offers)
	}
	if st, _ := challengeLines(t, rc, "rtsps://"+tlsAddr+"/cam1/main", basic); st != 200 {
		t.Fatalf("Basic over RTSPS: %d", st)
	}
	// UDP would carry the media in clear: refused on RTSPS; TCP is taken
	res, err := rc.do("SETUP", "rtsps://"+tlsAddr+"/cam1/main/trackID=0", map[string]string{"Authorization": basic,
		"Transport": "RTP/AVP;unicast;client_port=40000-40001"})
	if err != nil || res.status != 461 {
		t.Fatalf("UDP SETUP over RTSPS: %v %+v, want 461", err, res)
	}
	res, err = rc.do("SETUP", "rtsps://"+tlsAddr+"/cam1/main/trackID=0", map[string]string{"Authorization": basic,
		"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
	if err != nil || res.status != 200 {
		t.Fatalf("TCP SETUP over RTSPS: %v %+v", err, res)
	}
	plain := dialRaw(t, r.addr, 0)
	if st, _ := challengeLines(t, plain, "rtsp://"+r.addr+"/cam1/main", basic); st != 401 {
		t.Fatalf("Basic over plain RTSP with tls-only: %d, want 401", st)
	}
}
