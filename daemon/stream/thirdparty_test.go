package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeUDPPair finds an even UDP port p on 127.0.0.1 with p+1 free too.
func freeUDPPair(t *testing.T) (string, string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if p%2 == 1 {
			p--
		}
		b1, err1 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		b2, err2 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if b1 != nil {
			b1.Close()
		}
		if b2 != nil {
			b2.Close()
		}
		if err1 == nil && err2 == nil {
			return fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprintf("127.0.0.1:%d", p+1)
		}
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// startGstCamera runs GStreamer's RTSP server (Digest auth) and returns its URL.
func startGstCamera(t *testing.T, user, pass string) string {
	t.Helper()
	return startGstCameraTracks(t, user, pass, "h264")
}

// startGstCameraTracks is startGstCamera serving the given presets
// ("h265+aac": see testdata/stream/gst_rtsp_camera.py).
func startGstCameraTracks(t *testing.T, user, pass, tracks string) string {
	t.Helper()
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	script, _ := filepath.Abs("../../testdata/stream/gst_rtsp_camera.py")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script, port, user, "cam", tracks)
	cmd.Stdin = strings.NewReader(pass + "\n") // never in argv
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start GStreamer camera: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("GStreamer camera failed: %s", stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("GStreamer camera not ready: %s", stderr.String())
	}
	return "rtsp://127.0.0.1:" + port + "/cam"
}

type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, transport, url string) (probe, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", transport,
		"-show_entries", "stream=codec_name,width,height", "-of", "json", url)
	var stderr syncBuf
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var p probe
	if err == nil {
		err = json.Unmarshal(out, &p)
	}
	return p, stderr.String(), err
}

func TestGStreamerCameraFFprobeReaders(t *testing.T) {
	for _, bin := range []string{"ffprobe", "/usr/bin/python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s missing (CI installs ffmpeg, python3-gi, gir1.2-gst-rtsp-server-1.0): %v", bin, err)
		}
	}
	camURL := startGstCamera(t, "camuser", camPassword)
	rtp, rtcp := freeUDPPair(t)
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = rtp, rtcp })
	r.srv.SetCameras(context.Background(), []CameraSpec{
		camSpec("cam1", "main", camURL, func(sp *StreamSpec) { sp.Transport = "auto" }),
		camSpec("cam2", "main", camURL, func(sp *StreamSpec) { sp.Transport = "tcp" }),
	})
	deadline := time.Now().Add(20 * time.Second)
	for r.status("cam1/main").State != StateLive || r.status("cam2/main").State != StateLive {
		if time.Now().After(deadline) {
			t.Fatalf("GStreamer camera not ingested: %+v\nlogs:\n%s", r.srv.Streams(), r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := r.status("cam1/main"); st.Width != 640 || st.Height != 360 || len(st.Codecs) != 1 || st.Codecs[0] != "H264" {
		t.Errorf("status %+v", st)
	}
	for _, tr := range []string{"tcp", "udp"} {
		p, stderr, err := ffprobe(t, tr, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"))
		if err != nil {
			t.Fatalf("ffprobe %s: %v: %s\nlogs:\n%s", tr, err, stderr, r.logs.String())
		}
		if len(p.Streams) != 1 || p.Streams[0].CodecName != "h264" || p.Streams[0].Width != 640 || p.Streams[0].Height != 360 {
			t.Errorf("ffprobe %s saw %+v", tr, p)
		}
	}
	// Wrong password, unknown path and forbidden path look the same to ffprobe.
	var msgs []string
	for _, c := range []struct{ user, pass, path string }{
		{"bob", "wrong", "cam1/main"},
		{"bob", "bob%20pw%3A%40%2F", "cam9/main"},
		{"bob", "bob%20pw%3A%40%2F", "cam2/main"},
	} {
		u := r.url(c.user, c.pass, c.path)
		_, stderr, err := ffprobe(t, "tcp", u)
		if err == nil || !strings.Contains(stderr, "401") {
			t.Errorf("ffprobe %s: err=%v stderr=%s", RedactURL(u), err, stderr)
		}
		stderr = strings.ReplaceAll(stderr, u, "URL")
		msgs = append(msgs, regexpHex.ReplaceAllString(stderr, "0x"))
	}
	for i := range msgs {
		if msgs[i] != msgs[0] {
			t.Errorf("refusal %d differs:\n%s\nvs\n%s", i, msgs[i], msgs[0])
		}
	}
	r.assertNoSecret(camPassword)
}
