package stream

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
)

// While a join is open, ingest keeps running (it never waits for a
// reader's PLAY answer) and holds its output; ending the join releases the
// held packets in order, so the readers see no gap.
func TestJoinHoldsLivePacketsWithoutBlockingIngest(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, frameEvery: 20 * time.Millisecond})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "reading", func() bool { return rd.pkts.Load() > 5 })
	p := r.srv.lookupPath("cam1/main")

	j := &join{}
	p.mu.Lock()
	p.joins = map[*join]struct{}{j: {}}
	p.mu.Unlock()
	heldCount := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.held)
	}
	// Ingest goes on (packets pile up in the hold) and the reader is paused.
	waitFor(t, 5*time.Second, "packets held", func() bool { return heldCount() >= 20 })
	paused := rd.pkts.Load()
	n := heldCount()
	waitFor(t, 5*time.Second, "more packets held", func() bool { return heldCount() > n+5 })
	if got := rd.pkts.Load(); got > paused+2 {
		t.Fatalf("reader got %d packets while the join was open", got-paused)
	}
	p.endJoin(j)
	p.endJoin(j) // a second end is a no-op
	waitFor(t, 5*time.Second, "held packets delivered", func() bool { return rd.pkts.Load() > paused+int64(n) })
	if heldCount() != 0 {
		t.Errorf("%d packets still held after the join ended", heldCount())
	}
	if g := rd.gaps.Load(); g != 0 {
		t.Errorf("reader saw %d gaps across the hold", g)
	}
}

// A join whose PLAY answer never comes is given up after maxHeldPackets:
// the other readers are delayed, never stopped.
func TestJoinHoldIsBounded(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, frameEvery: 5 * time.Millisecond})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 3*time.Second, "reading", func() bool { return rd.pkts.Load() > 5 })
	p := r.srv.lookupPath("cam1/main")
	p.mu.Lock()
	p.joins = map[*join]struct{}{{}: {}}
	p.mu.Unlock()
	before := rd.pkts.Load()
	waitFor(t, 30*time.Second, "hold given up", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.joins) == 0
	})
	waitFor(t, 5*time.Second, "reader resumes", func() bool { return rd.pkts.Load() > before+maxHeldPackets })
	if g := rd.gaps.Load(); g != 0 {
		t.Errorf("reader saw %d gaps across the bounded hold", g)
	}
}
