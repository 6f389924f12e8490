package stream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
)

func TestFanOutOneCameraConnection(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = freeUDPPair(t) })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "cam1/main live", func() bool { return r.status("cam1/main").State == StateLive })

	var readers []*reader
	for i := 0; i < 4; i++ {
		proto := gortsplib.ProtocolTCP
		if i%2 == 1 {
			proto = gortsplib.ProtocolUDP
		}
		readers = append(readers, mustReader(t, r.url("alice", "alicepw", "cam1/main"), proto))
	}
	readers = append(readers, mustReader(t, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"), gortsplib.ProtocolTCP))
	for i, rd := range readers {
		waitFor(t, 5*time.Second, "reader receives packets", func() bool { return rd.pkts.Load() > 20 })
		if g := rd.gaps.Load(); g != 0 {
			t.Errorf("reader %d saw %d sequence gaps", i, g)
		}
	}
	if n := cam.sessions.Load(); n != 1 {
		t.Fatalf("camera saw %d sessions for %d readers, want 1", n, len(readers))
	}
	waitFor(t, 3*time.Second, "bitrate/fps", func() bool {
		st := r.status("cam1/main")
		return st.BitrateBps > 0 && st.FPS > 10
	})
	st := r.status("cam1/main")
	if st.Width != 1920 || st.Height != 1080 || len(st.Codecs) != 1 || st.Codecs[0] != "H264" {
		t.Errorf("status = %+v, want H264 1920x1080", st)
	}
	if st.Readers != len(readers) {
		t.Errorf("status readers = %d, want %d", st.Readers, len(readers))
	}
	if !strings.Contains(st.URL, "camuser:***@") {
		t.Errorf("status URL %q does not show the redacted user", st.URL)
	}
	ses := r.srv.Sessions()
	if len(ses) != len(readers) {
		t.Fatalf("Sessions() = %d, want %d", len(ses), len(readers))
	}
	var tcp, udp int
	for _, s := range ses {
		if s.Path != "cam1/main" || s.Action != "read" || s.ID == "" || s.RemoteAddr == "" {
			t.Errorf("session %+v incomplete", s)
		}
		switch s.Transport {
		case "TCP":
			tcp++
		case "UDP":
			udp++
		}
	}
	if tcp != 3 || udp != 2 {
		t.Errorf("transports tcp=%d udp=%d, want 3/2 (%+v)", tcp, udp, ses)
	}
	r.assertNoSecret(camPassword, "alicepw")
}

func TestGOPCacheFirstFrameAtOnce(t *testing.T) {
	// One frame per 100 ms and a 2 s GOP: without the cache a new reader
	// waits up to 2 s for its first keyframe.
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, frameEvery: 100 * time.Millisecond, gop: 20})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	// Let the GOP get past its keyframe.
	start := cam.frames.Load()
	waitFor(t, 5*time.Second, "frames", func() bool { return cam.frames.Load() > start+25 })
	for i := 0; i < 3; i++ {
		rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
		waitFor(t, 2*time.Second, "first packet", func() bool { return rd.pkts.Load() > 0 })
		rd.mu.Lock()
		ttff, key := rd.first.Sub(rd.started), rd.firstKey
		rd.mu.Unlock()
		// The first packet a reader gets starts a keyframe, at once.
		if !key || ttff > 500*time.Millisecond {
			t.Errorf("reader %d: first packet key=%v after %v", i, key, ttff)
		}
		// The replay is followed by the live packets with no gap.
		n := rd.pkts.Load()
		waitFor(t, 2*time.Second, "live after replay", func() bool { return rd.pkts.Load() > n+3 })
		if rd.gaps.Load() != 0 {
			t.Errorf("reader %d: %d gaps between GOP replay and live packets", i, rd.gaps.Load())
		}
		rd.c.Close()
		time.Sleep(230 * time.Millisecond) // land at different points of the GOP
	}
}
