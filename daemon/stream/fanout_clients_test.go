package stream

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pion/rtp"

	"github.com/camwarden/camwarden/internal/camsim"
)

// startCamsim runs one simulated camera in-process; its main profile is
// 1920x1080 at 25 fps, 4 Mbit/s, a 2 s GOP.
func startCamsim(t *testing.T) string {
	t.Helper()
	sim, err := camsim.New(camsim.Options{
		Cameras: 1, Addr: "127.0.0.1", DiscoveryInterfaces: []string{"none"},
		Username: "camuser", Password: camPassword, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim.Cameras()[0].RTSPURL("main")
}

// camsimRig is a server with UDP enabled reading one camsim camera as cam1/main.
func camsimRig(t *testing.T, mod func(*Config)) *rig {
	t.Helper()
	camURL := startCamsim(t)
	rtpA, rtcpA := freeUDPPair(t)
	r := newRig(t, func(c *Config) {
		c.UDPRTPAddress, c.UDPRTCPAddress = rtpA, rtcpA
		c.StalledReaderTimeout = 5 * time.Second
		if mod != nil {
			mod(c)
		}
	})
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", camURL, nil)})
	waitFor(t, 20*time.Second, "camsim live", func() bool { return r.status("cam1/main").State == StateLive })
	return r
}

func needBins(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s missing (CI installs ffmpeg, gstreamer1.0-tools/-rtsp/-libav, vlc-bin): %v", b, err)
		}
	}
}

// runFor runs a client for about d and returns what it printed; a client
// that is still running then is stopped (that is how live readers end).
func runFor(t *testing.T, d time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	_ = cmd.Run()
	return out.String()
}

func TestFFmpegReadsUDPWithoutMissedPackets(t *testing.T) {
	// A new UDP reader gets the GOP since the last keyframe (about 1 MB
	// here) paced, not as one burst that overruns ffmpeg's socket buffer.
	needBins(t, "ffmpeg")
	r := camsimRig(t, nil)
	for i := 0; i < 2; i++ {
		time.Sleep(700 * time.Millisecond) // join at different points of the GOP
		out := runFor(t, 30*time.Second, "ffmpeg", "-nostdin", "-v", "warning", "-rtsp_transport", "udp",
			"-i", r.url("alice", "alicepw", "cam1/main"), "-t", "5", "-f", "null", "-")
		if strings.TrimSpace(out) != "" {
			t.Errorf("run %d: ffmpeg over UDP printed:\n%s", i, out)
		}
	}
}

func TestThirdPartyReadersTCPAndUDP(t *testing.T) {
	// VLC is not among them: Debian 12's vlc-bin has no live555 module
	// and cannot open rtsp:// at all (only SAT>IP and RealRTSP), and
	// live555's openRTSP (livemedia-utils) is not packaged in Debian 12.
	needBins(t, "ffmpeg", "gst-launch-1.0")
	r := camsimRig(t, nil)
	url := r.url("alice", "alicepw", "cam1/main")
	plain := "rtsp://" + r.addr + "/cam1/main"
	var wg sync.WaitGroup
	check := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	for _, tr := range []string{"tcp", "udp"} {
		check("ffmpeg "+tr, func() error {
			out := runFor(t, 40*time.Second, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", tr, "-i", url, "-t", "4", "-f", "null", "-")
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("printed:\n%s", out)
			}
			return nil
		})
		check("gstreamer rtspsrc "+tr, func() error {
			out := runFor(t, 8*time.Second, "gst-launch-1.0", "-v", "rtspsrc", "location="+plain, "user-id=alice", "user-pw=alicepw",
				"protocols="+tr, "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "fakesink", "silent=false")
			frames := strings.Count(out, "fakesink0: last-message = chain")
			if frames < 50 || strings.Contains(out, "WARNING") || strings.Contains(out, "ERROR") {
				return fmt.Errorf("%d decoded frames; output:\n%s", frames, tail(out, 3000))
			}
			return nil
		})
	}
	wg.Wait()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// rawReader reads interleaved RTP from a played raw connection.
type rawReader struct {
	rc      *rawConn
	pkts    atomic.Int64
	gaps    atomic.Int64
	stopped atomic.Bool // stop reading (the socket stays open)
	done    chan struct{}

	mu   sync.Mutex
	seen []seenPkt // only if keep
	keep bool
	rate int // bytes per second, 0 = as fast as possible
}

type seenPkt struct {
	seq    uint16
	marker bool
	key    bool
}

func (rr *rawReader) run() {
	defer close(rr.done)
	hdr := make([]byte, 4)
	buf := make([]byte, 65536)
	var last uint16
	have := false
	start := time.Now()
	var total int
	for {
		for rr.stopped.Load() {
			time.Sleep(50 * time.Millisecond)
		}
		_ = rr.rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(rr.rc.br, hdr); err != nil {
			return
		}
		if hdr[0] != '$' {
			return // only media after PLAY
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if _, err := io.ReadFull(rr.rc.br, buf[:n]); err != nil {
			return
		}
		total += n + 4
		if rr.rate > 0 {
			if ahead := time.Duration(float64(total)/float64(rr.rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if hdr[1] != 0 || n < 12 {
			continue // RTCP
		}
		seq := binary.BigEndian.Uint16(buf[2:4])
		if have && seq != last+1 {
			rr.gaps.Add(1)
		}
		last, have = seq, true
		rr.pkts.Add(1)
		if rr.keep {
			var p rtp.Packet
			if p.Unmarshal(buf[:n]) == nil {
				k, _, _ := h264Scan(p.Payload)
				rr.mu.Lock()
				rr.seen = append(rr.seen, seenPkt{seq: seq, marker: p.Marker, key: k})
				rr.mu.Unlock()
			}
		}
	}
}

func startRawReader(t *testing.T, r *rig, rcvBuf int, keep bool, rate int) *rawReader {
	rc := playRaw(t, r.addr, "cam1/main", "alice", "alicepw", rcvBuf)
	rr := &rawReader{rc: rc, done: make(chan struct{}), keep: keep, rate: rate}
	go rr.run()
	return rr
}

func TestSlowReaderSkipsToKeyframesThenEvicted(t *testing.T) {
	// 200 readers of a 4 Mbit/s camera; one reads at 120 KB/s (a quarter of
	// the stream), then stops reading altogether.
	// The budget leaves the 199 room for a slow moment (this test also runs
	// under the race detector); the slow reader is behind for good.
	r := camsimRig(t, func(c *Config) { c.ReaderBudget = 1 << 20; c.StalledReaderTimeout = 3 * time.Second })
	var good []*rawReader
	for i := 0; i < 199; i++ {
		good = append(good, startRawReader(t, r, 0, false, 0))
	}
	slow := startRawReader(t, r, 8192, true, 120<<10)
	deadline := time.Now().Add(60 * time.Second)
	for {
		slow.mu.Lock()
		n, gaps := len(slow.seen), countGaps(slow.seen)
		slow.mu.Unlock()
		if gaps >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow reader skipped %d times in %d packets (want a skip); server logs:\n%s", gaps, n, tail(r.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	slow.mu.Lock()
	seen := append([]seenPkt(nil), slow.seen...)
	slow.mu.Unlock()
	for i := 1; i < len(seen); i++ {
		if seen[i].seq == seen[i-1].seq+1 {
			continue
		}
		// Skipped: after the end of a frame, to the start of a keyframe.
		if !seen[i-1].marker || !seen[i].key {
			t.Errorf("gap %d->%d: previous marker=%v, next key=%v (a torn frame)", seen[i-1].seq, seen[i].seq, seen[i-1].marker, seen[i].key)
		}
	}
	if strings.Contains(r.logs.String(), "evicting reader") {
		t.Fatalf("a reader that keeps reading (slowly) was evicted:\n%s", r.logs.String())
	}
	slow.stopped.Store(true)
	waitFor(t, 30*time.Second, "eviction", func() bool { return strings.Contains(r.logs.String(), "evicting reader that stopped reading") })
	waitFor(t, 5*time.Second, "session gone", func() bool { return len(r.srv.Sessions()) == 199 })
	counts := make([]int64, len(good))
	for i, g := range good {
		counts[i] = g.pkts.Load()
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		behind, ended := 0, 0
		for i, g := range good {
			if g.pkts.Load() < counts[i]+100 {
				behind++
			}
			select {
			case <-g.done:
				ended++
			default:
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 199 others stopped receiving (%d connections ended); server logs:\n%s", behind, ended, tail(r.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, g := range good {
		if n := g.gaps.Load(); n != 0 {
			t.Errorf("reader %d lost packets: %d gaps in %d packets", i, n, g.pkts.Load())
		}
	}
	if n := strings.Count(r.logs.String(), "evicting reader"); n != 1 {
		t.Errorf("%d eviction log lines", n)
	}
	t.Logf("slow reader skipped %d times in %d packets; 199 others received %d..%d packets each without a gap",
		countGaps(seen), len(seen), minOf(counts), maxOf(counts))
}

func countGaps(s []seenPkt) int {
	n := 0
	for i := 1; i < len(s); i++ {
		if s[i].seq != s[i-1].seq+1 {
			n++
		}
	}
	return n
}

func minOf(v []int64) int64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []int64) int64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
