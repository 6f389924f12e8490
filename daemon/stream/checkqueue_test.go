package stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func (q *checkQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// TestCheckQueueFairAndBounded: the least demanding address goes first, a
// full queue sheds its most demanding waiter for a less demanding newcomer
// and refuses anyone else at once, and one address holds at most perAddr.
func TestCheckQueueFairAndBounded(t *testing.T) {
	q := newCheckQueue(1, 2, 2)
	ctx := context.Background()
	runA, err := q.acquire(ctx, "a", checkRank{demand: 1})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		who string
		err error
	}
	order := make(chan result, 8)
	wait := func(who, addr string, demand int) {
		go func() {
			rel, err := q.acquire(ctx, addr, checkRank{demand: demand})
			order <- result{who, err}
			if err == nil {
				rel()
			}
		}()
	}
	wait("b", "b", 3)
	waitFor(t, 5*time.Second, "b queued", func() bool { return q.queued() == 1 })
	wait("c", "c", 4)
	waitFor(t, 5*time.Second, "c queued", func() bool { return q.queued() == 2 })
	// Full: d (less demanding than c) sheds c; e (as demanding as the rest) is refused.
	wait("d", "d", 1)
	if r := <-order; r.who != "c" || !errors.Is(r.err, errBusy) {
		t.Fatalf("shed %+v, want c busy", r)
	}
	waitFor(t, 5*time.Second, "d queued", func() bool { return q.queued() == 2 })
	if _, err := q.acquire(ctx, "e", checkRank{demand: 4}); !errors.Is(err, errBusy) {
		t.Fatalf("newcomer into a full queue of less demanding waiters: %v, want busy", err)
	}
	runA()
	for _, want := range []string{"d", "b"} {
		if r := <-order; r.who != want || r.err != nil {
			t.Fatalf("served %+v, want %s", r, want)
		}
	}
	// One address: a running check and one waiting, no more.
	run1, _ := q.acquire(ctx, "a", checkRank{demand: 1})
	wait("a2", "a", 1)
	waitFor(t, 5*time.Second, "a's second check queued", func() bool { return q.queued() == 1 })
	if _, err := q.acquire(ctx, "a", checkRank{demand: 1}); !errors.Is(err, errBusy) {
		t.Fatalf("third check for one address: %v", err)
	}
	run1()
	if r := <-order; r.who != "a2" || r.err != nil {
		t.Fatalf("served %+v, want a2", r)
	}
	// A waiter whose context ends leaves the queue.
	run, _ := q.acquire(ctx, "x", checkRank{demand: 1})
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := q.acquire(cctx, "y", checkRank{demand: 1})
		order <- result{"y", err}
	}()
	waitFor(t, 5*time.Second, "y queued", func() bool { return q.queued() == 1 })
	cancel()
	if r := <-order; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %+v", r)
	}
	if q.queued() != 0 {
		t.Fatal("cancelled waiter still queued")
	}
	run()
	if len(q.byAddr) != 0 || q.nRun != 0 {
		t.Fatalf("books not balanced: running %d, per address %v", q.nRun, q.byAddr)
	}
}

// TestThrottleReservesBeforeChecking: concurrent attempts from one address
// buy no more expensive checks than it has failures left.
func TestThrottleReservesBeforeChecking(t *testing.T) {
	th := newThrottle(3, time.Minute, time.Minute, 100, hclog.NewNullLogger())
	for i := range 3 {
		if d, v := th.reserve("192.0.2.1"); v != reserveOK || d.demand != i+1 || d.known {
			t.Fatalf("reservation %d: rank %+v verdict %v", i, d, v)
		}
	}
	if _, v := th.reserve("192.0.2.1"); v != reserveBusy {
		t.Fatalf("4th concurrent check: verdict %v, want busy", v)
	}
	th.settle("192.0.2.1", true) // one succeeded: a check is free again
	if _, v := th.reserve("192.0.2.1"); v != reserveOK {
		t.Fatalf("after a success: verdict %v", v)
	}
	for range 3 {
		th.settle("192.0.2.1", false)
	}
	if !th.blocked("192.0.2.1") {
		t.Fatal("not blocked after 3 failed checks")
	}
	if _, v := th.reserve("192.0.2.1"); v != reserveRefused {
		t.Fatalf("blocked address: verdict %v", v)
	}
	if _, v := th.reserve("192.0.2.2"); v != reserveOK {
		t.Fatal("another address refused")
	}
}
