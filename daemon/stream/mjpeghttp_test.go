package stream

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmjpeg"
)

// startMJPEGCamera serves ffmpeg-made JPEG frames as multipart MJPEG over
// HTTP from Python's standard library (testdata/stream/mjpeg_http_camera.py).
func startMJPEGCamera(t *testing.T, user, pass, mode string) (url string, streams *atomic.Int32) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
		"-frames:v", "10", "-pix_fmt", "yuvj420p", "-q:v", "5", "-huffman", "default", filepath.Join(dir, "f%02d.jpg")).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg frames: %v: %s", err, out)
	}
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	script, _ := filepath.Abs("../../testdata/stream/mjpeg_http_camera.py")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script, port, user, dir, mode)
	cmd.Stdin = strings.NewReader(pass + "\n")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	streams = new(atomic.Int32)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "READY":
				ready <- true
			case strings.HasPrefix(line, "STREAM "):
				streams.Add(1)
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("MJPEG camera failed: %s", stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("MJPEG camera not ready: %s", stderr.String())
	}
	return "http://127.0.0.1:" + port + "/video.mjpg?res=small", streams
}

func TestMJPEGOverHTTPServedAsRTPJPEG(t *testing.T) {
	needTools(t)
	camURL, _ := startMJPEGCamera(t, "camuser", camPassword, "digest")
	rtpAddr, rtcpAddr := freeUDPPair(t)
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = rtpAddr, rtcpAddr })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("door", "main", camURL, nil)})
	waitFor(t, 15*time.Second, "MJPEG camera live with frames", func() bool {
		st := r.status("door/main")
		return st.State == StateLive && len(st.Tracks) == 1 && st.Tracks[0].Packets > 10
	})
	if tr := r.status("door/main").Tracks[0]; tr.Codec != "MJPEG" || tr.Media != "video" || tr.Width != 320 || tr.Height != 240 {
		t.Errorf("track %+v", tr)
	}
	url := r.url("alice", "alicepw", "door/main")
	for _, tr := range []string{"tcp", "udp"} {
		got, stderr, err := ffprobeTracks(t, tr, url)
		if err != nil || len(got) != 1 || got[0].CodecName != "mjpeg" || got[0].Width != 320 || got[0].Height != 240 {
			t.Errorf("ffprobe %s: %+v %v %s", tr, got, err, stderr)
		}
	}
	// Decoded over TCP: RTP/JPEG frames are ~12 packets each and a loaded
	// box drops UDP datagrams (the codec matrix decodes over UDP too).
	if out, err := ffmpegDecode(t, "error", "tcp", url, "3"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("ffmpeg tcp decode: %v\n%s", err, out)
	}
	waitFor(t, 5*time.Second, "fps", func() bool { return r.status("door/main").FPS > 5 })
	r.assertNoSecret(camPassword)
}

func TestMJPEGOverHTTPBadInput(t *testing.T) {
	needTools(t)
	t.Run("broken boundary", func(t *testing.T) {
		camURL, streams := startMJPEGCamera(t, "camuser", camPassword, "badboundary")
		r := newRig(t, nil)
		r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("door", "main", camURL, nil)})
		defer func() {
			if t.Failed() {
				t.Logf("logs:\n%s", r.logs.String())
			}
		}()
		waitFor(t, 15*time.Second, "backoff naming the missing boundary", func() bool {
			st := r.status("door/main")
			return st.State == StateBackoff && strings.Contains(st.LastError, "multipart boundary never came (first bytes: \"--frame\\r\\nContent-Type: image/jpe")
		})
		waitFor(t, 10*time.Second, "retried", func() bool { return streams.Load() >= 2 })
		r.assertNoSecret(camPassword)
	})
	t.Run("basic refused unless allowed", func(t *testing.T) {
		camURL, _ := startMJPEGCamera(t, "camuser", camPassword, "basic")
		r := newRig(t, nil)
		r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("door", "main", camURL, nil)})
		waitFor(t, 10*time.Second, "Basic refused", func() bool {
			st := r.status("door/main")
			return st.State == StateBackoff && strings.Contains(st.LastError, "--allow-basic=true")
		})
		r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("door", "main", camURL, func(sp *StreamSpec) {
			sp.AllowBasic, sp.Revision = true, "2"
		})})
		waitFor(t, 10*time.Second, "live with Basic allowed", func() bool { return r.status("door/main").State == StateLive })
		r.assertNoSecret(camPassword)
	})
	t.Run("wrong password", func(t *testing.T) {
		camURL, _ := startMJPEGCamera(t, "camuser", "another password", "digest")
		r := newRig(t, nil)
		r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("door", "main", camURL, nil)})
		waitFor(t, 10*time.Second, "401 reported", func() bool {
			st := r.status("door/main")
			return st.State == StateBackoff && strings.Contains(st.LastError, "401")
		})
		r.assertNoSecret(camPassword)
	})
}

// FuzzEncodeJPEG: a network JPEG never panics the RTP/JPEG packetiser.
func FuzzEncodeJPEG(f *testing.F) {
	f.Add([]byte("\xff\xd8\xff\xdb\x00\x43\x00" + strings.Repeat("\x01", 64) + "\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00\x12\x34\xff\xd9"))
	f.Add([]byte("\xff\xd8\xff\xc0\x00\x02"))
	f.Fuzz(func(t *testing.T, img []byte) {
		enc := &rtpmjpeg.Encoder{PayloadMaxSize: 1460}
		if err := enc.Init(); err != nil {
			t.Fatal(err)
		}
		pkts, err := encodeJPEG(enc, img)
		for _, p := range pkts {
			if len(p.Payload) > 1460 {
				t.Fatalf("payload %d > 1460", len(p.Payload))
			}
		}
		_ = err
	})
}

// FuzzMJPEGReader: any Content-Type and body; frames that come out are JPEGs.
func FuzzMJPEGReader(f *testing.F) {
	f.Add("multipart/x-mixed-replace; boundary=frame", []byte("--frame\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xd9\r\n--frame\r\n\r\n\r\n"))
	f.Add("multipart/x-mixed-replace;boundary=--myboundary", []byte("--myboundary\r\n\r\n\xff\xd8abc\r\n--myboundary--\r\n"))
	f.Add("image/jpeg", []byte("\xff\xd8"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r, err := newMJPEGReader(ct, bytes.NewReader(body))
		if err != nil {
			return
		}
		for i := 0; i < 8; i++ {
			b, err := r.next()
			if err != nil {
				return
			}
			if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
				t.Fatalf("frame % x is not a JPEG", b[:min(len(b), 4)])
			}
		}
	})
}
