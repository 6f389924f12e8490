package load

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

const camPassword = "cam-pw:@/ 7q"

// startCamera runs a real camsim camera (RTSP, Digest) on 127.0.0.1: it is
// itself an RTSP server, so the readers can be tested without the daemon.
func startCamera(t *testing.T) *media.Server {
	t.Helper()
	cam, err := media.NewServer(media.Config{Addr: "127.0.0.1:0", Username: "admin", Password: camPassword, DisableUDP: true,
		Profiles: []media.Profile{{Name: "main", Width: 320, Height: 192, FPS: 25, BitrateKbps: 600, GOP: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })
	return cam
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadersMeasureRealCamera(t *testing.T) {
	cam := startCamera(t)
	addr := cam.Addr().String()
	var mu sync.Mutex
	closed := map[int]time.Time{}
	cfg := ReaderConfig{Addr: addr, Path: "main", User: "admin", Password: camPassword,
		OnClose: func(id int, _ string, at time.Time, _ error) {
			mu.Lock()
			closed[id] = at
			mu.Unlock()
		}}
	var rs []*Reader
	for i := range 3 {
		r, err := StartReader(context.Background(), i, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitReceiving(ctx, rs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "20 frames at every reader", func() bool {
		for _, r := range rs {
			r.mu.Lock()
			n := r.hist.N
			r.mu.Unlock()
			if n < 20 {
				return false
			}
		}
		return true
	})
	for _, r := range rs {
		s := r.Stats()
		if s.Lost != 0 || s.SeqResets != 0 || s.Packets == 0 || s.Bytes == 0 {
			t.Errorf("reader %d: %+v", r.ID, s)
		}
		kf, ok := r.FirstKeyframe()
		if !ok || kf <= 0 || kf > 5*time.Second {
			t.Errorf("reader %d: first keyframe %v %v", r.ID, kf, ok)
		}
		if fp, _ := r.FirstPacket(); fp > kf {
			t.Errorf("reader %d: first packet %v after first keyframe %v", r.ID, fp, kf)
		}
		h := r.TakeLatency()
		// Loopback straight from the camera: a frame is complete within a
		// fraction of a frame period, far below a second.
		if p50 := h.Quantile(0.5); h.N < 20 || p50 > time.Second {
			t.Errorf("reader %d: latency N=%d p50=%v", r.ID, h.N, p50)
		}
		if h2 := r.TakeLatency(); h2.N > 5 {
			t.Errorf("TakeLatency did not reset: %d", h2.N)
		}
	}
	// Closing one reader ends only its session and reports the close.
	rs[0].Close()
	select {
	case <-rs[0].Done():
	default:
		t.Fatal("Close returned before the session ended")
	}
	if at, _ := rs[0].Ended(); at.IsZero() {
		t.Fatal("no end time")
	}
	mu.Lock()
	_, ok := closed[0]
	n := len(closed)
	mu.Unlock()
	if !ok || n != 1 {
		t.Fatalf("OnClose calls %v", closed)
	}
	// The server dropping a session shows at the reader as Done.
	cam.SetFaults(media.Faults{DropAfter: time.Millisecond})
	r, err := StartReader(context.Background(), 9, cfg)
	if err == nil {
		select {
		case <-r.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("server-side close not seen by the reader")
		}
	}
	cam.SetFaults(media.Faults{})
	for _, r := range rs[1:] {
		r.Close()
	}
}

func TestReaderRefusedAndCancelled(t *testing.T) {
	cam := startCamera(t)
	_, err := StartReader(context.Background(), 1, ReaderConfig{Addr: cam.Addr().String(), Path: "main", User: "admin", Password: "wrong"})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := StartReader(context.Background(), 2, ReaderConfig{Addr: cam.Addr().String(), Path: "nope", User: "admin", Password: camPassword}); err == nil {
		t.Fatal("unknown path played")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = StartReader(ctx, 3, ReaderConfig{Addr: cam.Addr().String(), Path: "main", User: "admin", Password: camPassword})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled start: %v", err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	r, err := StartReader(context.Background(), 4, ReaderConfig{Addr: cam.Addr().String(), Path: "main", User: "admin", Password: camPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	never := &Reader{done: make(chan struct{})}
	if err := WaitReceiving(wctx, []*Reader{r, never}); !errors.Is(err, ErrNotReceiving) {
		t.Fatalf("WaitReceiving with a silent reader: %v", err)
	}
}
