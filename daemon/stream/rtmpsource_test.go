package stream

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startNginxRTMP runs Debian's nginx with its RTMP module (apt
// libnginx-mod-rtmp) on 127.0.0.1 and returns its address.
func startNginxRTMP(t *testing.T) string {
	t.Helper()
	const module = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("nginx RTMP module missing (apt libnginx-mod-rtmp; CI installs it): %v", err)
	}
	dir := t.TempDir()
	addr := freePort(t)
	conf := fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
worker_processes 1;
error_log %s/error.log info;
pid %s/nginx.pid;
events { worker_connections 64; }
rtmp { server { listen %s; application live { live on; } } }
`, module, dir, dir, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, 10*time.Second, "nginx RTMP listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// publishRTMP loops the clip into the RTMP server with the Debian ffmpeg.
func publishRTMP(t *testing.T, clip, url string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clip,
		"-c", "copy", "-f", "flv", url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// TestRTMPSourcePulledFromNginx: a stream pulled over RTMP from a real
// RTMP server (nginx's RTMP module, fed by ffmpeg) is served as H.264 and
// AAC over RTSP; ffprobe sees both.
func TestRTMPSourcePulledFromNginx(t *testing.T) {
	clip := makeTestClip(t)
	addr := startNginxRTMP(t)
	publishRTMP(t, clip, "rtmp://"+addr+"/live/cam")
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("rtmpcam", "main", "rtmp://"+addr+"/live/cam", func(sp *StreamSpec) {
		sp.Username, sp.Password, sp.Transport = "", nil, ""
	})})
	deadline := time.Now().Add(30 * time.Second)
	for r.status("rtmpcam/main").State != StateLive {
		if time.Now().After(deadline) {
			t.Fatalf("RTMP source not live: %+v\nlogs:\n%s", r.status("rtmpcam/main"), r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := r.status("rtmpcam/main")
	if strings.Join(st.Codecs, ",") != "H264,AAC" || st.Width != 320 || st.Height != 240 {
		t.Errorf("status %+v", st)
	}
	assertH264AAC(t, r, "rtmpcam/main")
	// A reader decodes it without errors.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", r.url("alice", "alicepw", "rtmpcam/main"),
		"-t", "2", "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("ffmpeg decoding the restream: %v: %s", err, out)
	}
}

// TestRTMPSourceDownIsRetried: an RTMP URL nobody serves is retried with
// backoff and the error names it.
func TestRTMPSourceDownIsRetried(t *testing.T) {
	r := newRig(t, nil)
	addr := freePort(t)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("gone", "main", "rtmp://"+addr+"/live/x", nil)})
	waitFor(t, 20*time.Second, "two retries", func() bool { return r.status("gone/main").Reconnects >= 2 })
	st := r.status("gone/main")
	if st.State != StateBackoff && st.State != StateConnecting || !strings.Contains(st.LastError, "connect rtmp://"+addr) {
		t.Errorf("status %+v", st)
	}
	r.assertNoSecret(camPassword)
}

// TestRTMPSourceOnDemand: an on-demand RTMP source connects with the first
// reader and disconnects after the last one leaves.
func TestRTMPSourceOnDemand(t *testing.T) {
	clip := makeTestClip(t)
	addr := startNginxRTMP(t)
	publishRTMP(t, clip, "rtmp://"+addr+"/live/od")
	r := newRig(t, func(c *Config) { c.OnDemandStartTimeout = 20 * time.Second })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("rtmpod", "main", "rtmp://"+addr+"/live/od", func(sp *StreamSpec) {
		sp.Username, sp.Password, sp.Transport, sp.OnDemand = "", nil, "", true
	})})
	if st := r.status("rtmpod/main"); st.State != StateIdle {
		t.Fatalf("on-demand RTMP source not idle without readers: %+v", st)
	}
	rd := startReaderProc(t, r.url("alice", "alicepw", "rtmpod/main"))
	waitFor(t, 30*time.Second, "on-demand RTMP live", func() bool { return r.status("rtmpod/main").State == StateLive })
	rd.stop()
	waitFor(t, 15*time.Second, "on-demand RTMP idle after the last reader", func() bool { return r.status("rtmpod/main").State == StateIdle })
}
