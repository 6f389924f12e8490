package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/hashicorp/go-hclog"
	"github.com/pion/rtp"

	"github.com/camwarden/camwarden/internal/testutil"
)

const (
	testUser = "viewer"
	testPass = "camsim-media-pw-Kd72q" // grepped for in captured logs; belongs in testdata/test-secrets.txt
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer = testutil.SyncBuffer

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startServer starts a camera with test credentials and a trace logger whose output the test
// checks for the password at cleanup.
func startServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		Username: testUser, Password: testPass,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		out := logs.String()
		if strings.Contains(out, testPass) {
			t.Errorf("password found in logs:\n%s", out)
		}
		if !strings.Contains(out, "rtsp camera listening") {
			t.Errorf("logs were not captured:\n%s", out)
		}
	})
	return s
}

func authURL(t *testing.T, s *Server, profile, user, pass string) string {
	t.Helper()
	u := s.URL(profile)
	if strings.Contains(u, "@") || strings.Contains(u, testPass) {
		t.Fatalf("URL %q carries credentials", u)
	}
	return strings.Replace(u, "rtsp://", "rtsp://"+user+":"+pass+"@", 1)
}

func runTool(t *testing.T, timeout time.Duration, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Tools echo the URL, userinfo included: keep the password out of test output.
	redact := func(s string) string { return strings.ReplaceAll(s, testPass, "<redacted>") }
	return redact(stdout.String()), redact(stderr.String()), err
}

// TestFFmpegDecodesAndProbes proves a third-party client decodes both profiles cleanly (TCP and
// UDP) and sees the configured codec and size.
func TestFFmpegDecodesAndProbes(t *testing.T) {
	s := startServer(t, nil)
	for _, tc := range []struct {
		profile, transport string
		w, h               int
	}{
		{"main", "tcp", 1920, 1080},
		{"sub", "tcp", 640, 360},
		{"sub", "udp", 640, 360},
	} {
		t.Run(tc.profile+"/"+tc.transport, func(t *testing.T) {
			t.Parallel() // each run waits seconds for a keyframe and probing, not for CPU
			u := authURL(t, s, tc.profile, testUser, testPass)
			_, stderr, err := runTool(t, 30*time.Second, "ffmpeg", "-nostdin", "-v", "error",
				"-rtsp_transport", tc.transport, "-i", u, "-frames:v", "50", "-f", "null", "-")
			if err != nil || stderr != "" {
				t.Fatalf("ffmpeg: %v: %q", err, stderr)
			}
			out, stderr, err := runTool(t, 30*time.Second, "ffprobe", "-v", "error",
				"-rtsp_transport", tc.transport, "-select_streams", "v:0",
				"-show_entries", "stream=codec_name,profile,width,height", "-of", "csv=p=0", u)
			if err != nil || stderr != "" {
				t.Fatalf("ffprobe: %v: %q", err, stderr)
			}
			want := fmt.Sprintf("h264,Constrained Baseline,%d,%d", tc.w, tc.h)
			if strings.TrimSpace(out) != want {
				t.Fatalf("ffprobe says %q, want %q", strings.TrimSpace(out), want)
			}
		})
	}
	// A second, unrelated stack: GStreamer's rtspsrc (Digest auth, UDP) and Cisco's openh264 decoder.
	t.Run("gstreamer/main/udp", func(t *testing.T) {
		t.Parallel()
		_, stderr, err := runTool(t, 30*time.Second, "gst-launch-1.0", "-q",
			"rtspsrc", "location="+s.URL("main"), "user-id="+testUser, "user-pw="+testPass, "protocols=udp",
			"!", "rtph264depay", "!", "h264parse", "!", "openh264dec", "!", "fakesink", "num-buffers=50")
		if err != nil || stderr != "" {
			t.Fatalf("gst-launch: %v: %q", err, stderr)
		}
	})
}

// TestFFmpegPacketizationMode0 decodes a profile sent as single NAL unit packets.
func TestFFmpegPacketizationMode0(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Profiles = []Profile{{Name: "m0", Width: 1280, Height: 720, FPS: 25, BitrateKbps: 2000,
			PacketizationMode0: true}}
	})
	u := authURL(t, s, "m0", testUser, testPass)
	_, stderr, err := runTool(t, 30*time.Second, "ffmpeg", "-nostdin", "-v", "error",
		"-rtsp_transport", "tcp", "-i", u, "-frames:v", "30", "-f", "null", "-")
	if err != nil || stderr != "" {
		t.Fatalf("ffmpeg: %v: %q", err, stderr)
	}
	r := play(t, s, "m0", gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "packets", func() bool { return r.packets.Load() > 50 })
	if r.fuA.Load() != 0 {
		t.Fatalf("%d FU-A packets in packetization-mode=0", r.fuA.Load())
	}
	if m := r.maxSize.Load(); m > 1472 {
		t.Fatalf("mode 0 packet of %d bytes", m)
	}
}

// reader is a gortsplib client playing one profile and recording what it receives.
type reader struct {
	c            *gortsplib.Client
	packets      atomic.Int64
	last         atomic.Int64 // UnixNano of the last RTP packet
	maxSize      atomic.Int64
	fuA          atomic.Int64
	ssrcs        sync.Map // uint32 -> struct{}
	latency      atomic.Int64
	auCount      atomic.Int64
	done         chan error
	decodeErr    atomic.Value // string
	frames       atomic.Int64 // packets with the marker bit
	lost         atomic.Int64
	payloadBytes atomic.Int64
}

func play(t *testing.T, s *Server, profile string, proto gortsplib.Protocol) *reader {
	t.Helper()
	u, err := base.ParseURL(authURL(t, s, profile, testUser, testPass))
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{done: make(chan error, 1)}
	r.c = &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto,
		OnPacketsLost: func(n uint64) { r.lost.Add(int64(n)) },
		OnDecodeError: func(err error) { r.decodeErr.Store(err.Error()) },
	}
	if err := r.c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.c.Close)
	desc, _, err := r.c.Describe(u)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		t.Fatal("no H264 media")
	}
	var dec *rtph264.Decoder
	if forma.PacketizationMode == 1 {
		if dec, err = forma.CreateDecoder(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("setup: %v", err)
	}
	r.c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
		r.packets.Add(1)
		if pkt.Marker {
			r.frames.Add(1)
		}
		r.payloadBytes.Add(int64(len(pkt.Payload)))
		r.last.Store(time.Now().UnixNano())
		r.ssrcs.Store(pkt.SSRC, struct{}{})
		size := int64(pkt.MarshalSize())
		if size > r.maxSize.Load() {
			r.maxSize.Store(size)
		}
		if len(pkt.Payload) > 0 && pkt.Payload[0]&0x1f == 28 {
			r.fuA.Add(1)
		}
		if dec == nil {
			return
		}
		au, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				r.decodeErr.Store(err.Error())
			}
			return
		}
		r.auCount.Add(1)
		if ts, ok := ParseTimestampSEI(au[0]); ok {
			r.latency.Store(int64(time.Since(ts)))
		}
	})
	if _, err := r.c.Play(nil); err != nil {
		t.Fatalf("play: %v", err)
	}
	go func() { r.done <- r.c.Wait() }()
	return r
}

func (r *reader) ssrcCount() int {
	n := 0
	r.ssrcs.Range(func(any, any) bool { n++; return true })
	return n
}

func TestReaderGetsPacketsBurstsAndLatencyProbe(t *testing.T) {
	s := startServer(t, nil)
	r := play(t, s, "main", gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "one connection per stream", func() bool { return s.Sessions() == 1 })
	waitFor(t, 10*time.Second, "50 access units", func() bool { return r.auCount.Load() >= 50 })
	if e := r.decodeErr.Load(); e != nil {
		t.Errorf("RTP decode error: %v", e)
	}
	// A 4000 kbit/s 25 fps camera sends 20000 bytes a frame, ~15 packets of at most 1400 bytes.
	frames, pkts, bytes := r.frames.Load(), r.packets.Load(), r.payloadBytes.Load()
	if perFrame := float64(pkts) / float64(frames); perFrame < 13 || perFrame > 19 {
		t.Errorf("%.1f packets per frame, want about 16", perFrame)
	}
	if bpf := float64(bytes) / float64(frames); bpf < 17000 || bpf > 23000 {
		t.Errorf("%.0f payload bytes per frame, want about 20000", bpf)
	}
	if m := r.maxSize.Load(); m > 1472 || m < 1300 {
		t.Errorf("largest packet %d bytes, want up to 1412", m)
	}
	if r.lost.Load() != 0 {
		t.Errorf("lost %d packets", r.lost.Load())
	}
	t.Logf("%d frames: %.1f packets and %.0f payload bytes per frame", frames,
		float64(pkts)/float64(frames), float64(bytes)/float64(frames))
	lat := time.Duration(r.latency.Load())
	if lat <= 0 || lat > time.Second {
		t.Errorf("latency probe gives %v", lat)
	}
}

func TestWrongPasswordIs401(t *testing.T) {
	s := startServer(t, nil)
	// The wrong password starts with the real one, so the log check at cleanup catches either.
	u, _ := base.ParseURL(authURL(t, s, "main", testUser, testPass+"-typo"))
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err := c.Describe(u)
	var bad liberrors.ErrClientBadStatusCode
	if !errors.As(err, &bad) || bad.Code != base.StatusUnauthorized {
		t.Fatalf("describe with a wrong password: %v, want 401", err)
	}
	// ffmpeg uses Digest: the right password passes, a wrong one reports 401.
	_, stderr, err := runTool(t, 20*time.Second, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		authURL(t, s, "sub", testUser, testPass+"-typo"))
	if err == nil || !strings.Contains(stderr, "401") {
		t.Fatalf("ffprobe with wrong password: %v %q, want 401", err, stderr)
	}
	// Unknown path: 404 after authentication.
	u404, _ := base.ParseURL(authURL(t, s, "nope", testUser, testPass))
	c2 := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, _, err := c2.Describe(u404); !errors.As(err, &bad) || bad.Code != base.StatusNotFound {
		t.Fatalf("describe of unknown path: %v, want 404", err)
	}
}

func TestFaultDropAfter(t *testing.T) {
	s := startServer(t, nil)
	s.SetFaults(Faults{DropAfter: 500 * time.Millisecond})
	start := time.Now()
	r := play(t, s, "sub", gortsplib.ProtocolTCP)
	select {
	case err := <-r.done:
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("dropped after %v, before DropAfter", d)
		}
		t.Logf("client Wait returned: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("session not dropped")
	}
	waitFor(t, 3*time.Second, "no sessions", func() bool { return s.Sessions() == 0 })
}

func TestFaultStall(t *testing.T) {
	s := startServer(t, nil)
	r := play(t, s, "sub", gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "packets", func() bool { return r.packets.Load() > 10 })
	s.SetFaults(Faults{Stall: true})
	// A frame already in flight may still arrive; then nothing may, for well over a second.
	waitFor(t, 10*time.Second, "packets to stop", func() bool {
		return time.Since(time.Unix(0, r.last.Load())) > 300*time.Millisecond
	})
	n := r.packets.Load()
	quiet := time.Now()
	waitFor(t, 10*time.Second, "1.2 s of silence", func() bool { return time.Since(quiet) > 1200*time.Millisecond })
	if got := r.packets.Load(); got != n {
		t.Fatalf("%d packets arrived during the stall", got-n)
	}
	select {
	case err := <-r.done:
		t.Fatalf("session closed during stall: %v", err)
	default:
	}
	if s.Sessions() != 1 {
		t.Fatalf("sessions = %d during stall, want 1", s.Sessions())
	}
	s.SetFaults(Faults{})
	waitFor(t, 3*time.Second, "packets after the stall", func() bool { return r.packets.Load() > n })
}

func TestFaultBadSDP(t *testing.T) {
	s := startServer(t, nil)
	s.SetFaults(Faults{BadSDP: true})
	u, _ := base.ParseURL(authURL(t, s, "main", testUser, testPass))
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, res, err := c.Describe(u)
	if err == nil {
		t.Fatal("describe accepted the broken SDP")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "sdp") && !strings.Contains(err.Error(), "media") {
		t.Fatalf("describe error %q does not look like an SDP parse error", err)
	}
	t.Logf("describe error: %v (response %v)", err, res != nil)
	// The switch is live: turning it off serves a good SDP again.
	s.SetFaults(Faults{})
	c2 := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, _, err := c2.Describe(u); err != nil {
		t.Fatalf("describe after clearing BadSDP: %v", err)
	}
}

func TestFaultOversized(t *testing.T) {
	s := startServer(t, nil)
	s.SetFaults(Faults{Oversized: true})
	r := play(t, s, "main", gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "a packet over 1472 bytes", func() bool { return r.maxSize.Load() > 1472 })
	// The merged packets still decode: access units keep arriving with intact NAL units.
	n := r.auCount.Load()
	waitFor(t, 10*time.Second, "access units", func() bool { return r.auCount.Load() > n+10 })
	if r.latency.Load() == 0 {
		t.Fatal("no latency SEI decoded from oversized packets")
	}
	// Merging renumbers the packets: the reader sees no gap.
	if r.lost.Load() != 0 || r.decodeErr.Load() != nil {
		t.Fatalf("lost %d packets, decode error %v", r.lost.Load(), r.decodeErr.Load())
	}
	t.Logf("largest packet %d bytes", r.maxSize.Load())
}

func TestFaultChangeSSRC(t *testing.T) {
	s := startServer(t, nil)
	s.SetFaults(Faults{ChangeSSRCAfter: 300 * time.Millisecond})
	for _, proto := range []gortsplib.Protocol{gortsplib.ProtocolTCP, gortsplib.ProtocolUDP} {
		t.Run(proto.String(), func(t *testing.T) {
			r := play(t, s, "sub", proto)
			waitFor(t, 10*time.Second, "a second SSRC", func() bool { return r.ssrcCount() == 2 })
		})
	}
}

func TestRestartMovesPort(t *testing.T) {
	s := startServer(t, nil)
	old := s.Addr().String()
	r := play(t, s, "sub", gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "packets", func() bool { return r.packets.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Restart(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("reader survived the restart")
	}
	if s.Addr().String() == old {
		t.Fatalf("still on %s", old)
	}
	if _, err := net.Dial("tcp", old); err == nil {
		t.Fatalf("old address %s still accepts", old)
	}
	r2 := play(t, s, "sub", gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "packets after restart", func() bool { return r2.packets.Load() > 0 })
}
