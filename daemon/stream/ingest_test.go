package stream

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
)

func TestOversizedPacketsRepacketised(t *testing.T) {
	cam := startRawCam(t, "big", "")
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = freeUDPPair(t) })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "big", cam.url(), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/big").State == StateLive })
	for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
		rd := mustReader(t, r.url("alice", "alicepw", "cam1/big"), proto)
		// 9000-byte IDR and 3500-byte slices arrive in <=1472-byte packets.
		waitFor(t, 5*time.Second, "repacketised packets", func() bool { return rd.pkts.Load() > 50 })
		rd.mu.Lock()
		if !rd.firstKey {
			t.Errorf("%v reader: first packet does not start a keyframe (GOP cache on re-packetised stream)", proto)
		}
		rd.mu.Unlock()
		if g := rd.gaps.Load(); g != 0 {
			t.Errorf("%v reader: %d gaps", proto, g)
		}
	}
	if !strings.Contains(r.logs.String(), "re-packetising") {
		t.Error("no log line about re-packetising")
	}
	waitFor(t, 3*time.Second, "fps", func() bool { return r.status("cam1/big").FPS > 10 })
	if st := r.status("cam1/big"); st.Width != 1920 {
		t.Errorf("status %+v", st)
	}
}

func TestPacketizationMode0Served(t *testing.T) {
	cam := startCam(t, camOpts{mode0: true, idrSize: 1200})
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = freeUDPPair(t) })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "m0", cam.url("live"), func(sp *StreamSpec) {
		sp.Username, sp.Password = "", nil
	})})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/m0").State == StateLive })
	for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolUDP, gortsplib.ProtocolTCP} {
		rd := mustReader(t, r.url("alice", "alicepw", "cam1/m0"), proto)
		waitFor(t, 5*time.Second, "packets", func() bool { return rd.pkts.Load() > 20 })
		if rd.gaps.Load() != 0 {
			t.Errorf("%v: gaps %d", proto, rd.gaps.Load())
		}
	}
}

func TestSSRCChangeKeepsReaders(t *testing.T) {
	cam := startRawCam(t, "ssrc", "")
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url(), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	// The camera restarts its RTP session every 10 frames (400 ms).
	waitFor(t, 5*time.Second, "packets across several SSRC changes", func() bool { return rd.pkts.Load() > 150 })
	if rd.gaps.Load() != 0 {
		t.Errorf("reader saw %d sequence discontinuities across SSRC changes", rd.gaps.Load())
	}
	rd.mu.Lock()
	jump := rd.tsJump
	rd.mu.Unlock()
	if jump > 90000 {
		t.Errorf("timestamp jumped by %d (%.1f s) across an SSRC change", jump, float64(jump)/90000)
	}
	if st := r.status("cam1/main"); st.State != StateLive || st.Readers != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestBackoffAndRecovery(t *testing.T) {
	addr := freePort(t)
	r := newRig(t, nil)
	// The camera is down at start: the puller keeps retrying.
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", "rtsp://"+addr+"/live", nil)})
	waitFor(t, 3*time.Second, "backoff", func() bool {
		st := r.status("cam1/main")
		return st.State == StateBackoff && st.LastError != ""
	})
	cam := startCam(t, camOpts{addr: addr, user: "camuser", pass: camPassword})
	waitFor(t, 3*time.Second, "live after first-start failure", func() bool { return r.status("cam1/main").State == StateLive })
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets", func() bool { return rd.pkts.Load() > 5 })

	// The camera goes away mid-stream: readers are closed, state backoff.
	cam.close()
	waitFor(t, 5*time.Second, "backoff after camera loss", func() bool { return r.status("cam1/main").State == StateBackoff })
	time.Sleep(1200 * time.Millisecond) // several failed retries (backoff capped at 400 ms here)
	back := time.Now()
	cam2 := startCam(t, camOpts{addr: addr, user: "camuser", pass: camPassword})
	waitFor(t, 3*time.Second, "recovery within 3 s", func() bool { return r.status("cam1/main").State == StateLive })
	t.Logf("recovered %v after the camera came back", time.Since(back).Round(time.Millisecond))
	rd2 := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets after recovery", func() bool { return rd2.pkts.Load() > 5 })
	if cam2.sessions.Load() != 1 {
		t.Errorf("camera sessions %d", cam2.sessions.Load())
	}
	r.assertNoSecret(camPassword)
}

func TestBadCamerasBackOffAndRecover(t *testing.T) {
	for _, mode := range []string{"garbage", "stall"} {
		t.Run(mode, func(t *testing.T) {
			cam := startRawCam(t, mode, "")
			r := newRig(t, func(c *Config) { c.ReadTimeout = 700 * time.Millisecond })
			r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "bad", cam.url(), nil)})
			waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/bad").State == StateLive })
			waitFor(t, 5*time.Second, "backoff", func() bool { return r.status("cam1/bad").State == StateBackoff })
			// And it is retried: the camera sees a new session.
			waitFor(t, 5*time.Second, "retry", func() bool { return cam.sessions.Load() >= 2 })
		})
	}
}

func TestRejectedSDPKeptRedacted(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bad\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:rtsp://camuser:" + camPassword + "@1.2.3.4/x\r\nthis is not sdp\r\n"
	cam := startRawCam(t, "big", sdp)
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "bad", cam.url(), nil)})
	waitFor(t, 5*time.Second, "backoff with SDP", func() bool {
		st := r.status("cam1/bad")
		return st.State == StateBackoff && strings.Contains(st.LastError, "SDP")
	})
	st := r.status("cam1/bad")
	if !strings.Contains(st.LastError, "this is not sdp") {
		t.Errorf("last error lacks the raw SDP: %q", st.LastError)
	}
	r.assertNoSecret(camPassword)
}

func TestOnDemand(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "od", cam.url("live"), func(sp *StreamSpec) { sp.OnDemand = true })})
	time.Sleep(300 * time.Millisecond)
	if st := r.status("cam1/od"); st.State != StateIdle || cam.sessions.Load() != 0 {
		t.Fatalf("on-demand stream connected without readers: %+v, camera sessions %d", st, cam.sessions.Load())
	}
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/od"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets", func() bool { return rd.pkts.Load() > 5 })
	if cam.active.Load() != 1 {
		t.Fatalf("camera active sessions %d", cam.active.Load())
	}
	rd.c.Close()
	// Disconnects OnDemandCloseAfter (300 ms) after the last reader.
	waitFor(t, 3*time.Second, "camera disconnected", func() bool { return cam.active.Load() == 0 })
	waitFor(t, time.Second, "idle", func() bool { return r.status("cam1/od").State == StateIdle })
	// Losing its readers is no failure: no error, no reconnect counted.
	if st := r.status("cam1/od"); st.LastError != "" || st.Reconnects != 0 {
		t.Errorf("idle on-demand stream: last error %q, reconnects %d; want none", st.LastError, st.Reconnects)
	}
	// And starts again for the next reader.
	rd2 := mustReader(t, r.url("alice", "alicepw", "cam1/od"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets again", func() bool { return rd2.pkts.Load() > 5 })
	if cam.sessions.Load() != 2 {
		t.Errorf("camera sessions %d, want 2", cam.sessions.Load())
	}
}

func TestSetCamerasTouchesOnlyChanged(t *testing.T) {
	cam1 := startCam(t, camOpts{user: "camuser", pass: camPassword})
	cam2 := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	specs := []CameraSpec{camSpec("cam1", "main", cam1.url("live"), nil), camSpec("cam2", "main", cam2.url("live"), nil)}
	r.srv.SetCameras(context.Background(), specs)
	waitFor(t, 5*time.Second, "both live", func() bool {
		return r.status("cam1/main").State == StateLive && r.status("cam2/main").State == StateLive
	})
	r1 := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	r2 := mustReader(t, r.url("alice", "alicepw", "cam2/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "reading", func() bool { return r1.pkts.Load() > 5 && r2.pkts.Load() > 5 })

	// Edit cam2 only.
	specs2 := []CameraSpec{specs[0], camSpec("cam2", "main", cam2.url("live"), func(sp *StreamSpec) { sp.Revision = "2" })}
	r.srv.SetCameras(context.Background(), specs2)
	waitFor(t, 5*time.Second, "cam2 restarted", func() bool { return cam2.sessions.Load() == 2 && r.status("cam2/main").State == StateLive })
	n := r1.pkts.Load()
	waitFor(t, 2*time.Second, "cam1 reader unaffected", func() bool { return r1.pkts.Load() > n+5 })
	if cam1.sessions.Load() != 1 || r1.gaps.Load() != 0 {
		t.Errorf("cam1 noticed: sessions %d gaps %d", cam1.sessions.Load(), r1.gaps.Load())
	}
	// Remove cam1: its reader is closed.
	r.srv.SetCameras(context.Background(), specs2[1:])
	done := make(chan error, 1)
	go func() { done <- r1.c.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("removed camera's reader still connected")
	}
	waitFor(t, 2*time.Second, "cam1 disconnected", func() bool { return cam1.active.Load() == 0 })
	if got := len(r.srv.Streams()); got != 1 {
		t.Errorf("Streams() has %d entries", got)
	}
}

func TestInBandSPSChangeReachesNewReaders(t *testing.T) {
	cam := startRawCam(t, "spschange", "")
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url(), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	waitFor(t, 5*time.Second, "new resolution from in-band SPS", func() bool {
		st := r.status("cam1/main")
		return st.Width == 1280 && st.Height == 720
	})
	rc := dialRaw(t, r.addr, 0)
	res, err := rc.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw"))})
	if err != nil || res.status != 200 {
		t.Fatalf("DESCRIBE: %v %+v", err, res)
	}
	if !strings.Contains(res.body, base64.StdEncoding.EncodeToString(testSPS720)) {
		t.Errorf("SDP for new readers lacks the new SPS:\n%s", res.body)
	}
}

func TestAudioAndVideoPassThrough(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, audio: true})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "audio and video packets", func() bool {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		return rd.perMedia["video"] > 10 && rd.perMedia["audio"] > 10
	})
	var codecs []string
	for _, m := range rd.desc.Medias {
		for _, f := range m.Formats {
			codecs = append(codecs, codecName(f))
		}
	}
	if got := strings.Join(codecs, ","); got != "H264,G711,MPEG-4 Audio" {
		t.Errorf("reader sees codecs %s", got)
	}
	if got := strings.Join(r.status("cam1/main").Codecs, ","); got != "H264,PCMA,AAC" {
		t.Errorf("status codecs %s", got)
	}
	if rd.gaps.Load() != 0 {
		t.Errorf("gaps %d", rd.gaps.Load())
	}
}

func TestSocketActivatedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *Config) { c.Listener, c.RTSPAddress = ln, "" })
	if r.addr != ln.Addr().String() {
		t.Fatalf("Addr() = %s, want the given listener %s", r.addr, ln.Addr())
	}
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets", func() bool { return rd.pkts.Load() > 5 })
}

func TestSetCamerasBeforeStart(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	s, err := New(Config{RTSPAddress: "127.0.0.1:0", Auth: &testAuth{}, BackoffMin: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	time.Sleep(100 * time.Millisecond)
	if cam.sessions.Load() != 0 {
		t.Fatal("puller ran before Start")
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "live after Start", func() bool { return s.Streams()[0].State == StateLive })
}

func TestUDPIngest(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, udp: true})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), func(sp *StreamSpec) { sp.Transport = "udp" })})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	if !strings.Contains(r.logs.String(), "transport=UDP") {
		t.Errorf("camera not pulled over UDP:\n%s", r.logs.String())
	}
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "packets", func() bool { return rd.pkts.Load() > 10 })
}
