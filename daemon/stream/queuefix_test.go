package stream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestCheckQueueReturningClientNotStarved (the review's probe): 2 checks
// run and 16 wait, all from fresh addresses (demand 1 each). A stranger
// with demand 1 is answered busy at once (a tie goes to the earlier
// arrival), but an address that logged in recently goes first: it sheds a
// stranger and runs next. Before, it ranked as one more stranger and got 503.
func TestCheckQueueReturningClientNotStarved(t *testing.T) {
	q := newCheckQueue(2, 16, 2)
	thr := newThrottle(5, time.Minute, time.Minute, 10000, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var releases []func()
	for i := range 2 {
		rel, err := q.acquire(ctx, fmt.Sprintf("2001:db8:%x::1", i), checkRank{demand: 1})
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
	}
	shed := make(chan error, 16)
	for i := 2; i < 18; i++ { // each in its own /64: 16 distinct sources
		go func() {
			rel, err := q.acquire(ctx, fmt.Sprintf("2001:db8:%x::1", i), checkRank{demand: 1})
			if err == nil {
				rel()
			}
			shed <- err
		}()
	}
	waitFor(t, 10*time.Second, "16 strangers waiting", func() bool { return q.queued() == 16 })

	if _, err := q.acquire(ctx, "192.0.2.9", checkRank{demand: 1}); !errors.Is(err, errBusy) {
		t.Fatalf("a stranger into a full queue of equal waiters: %v, want busy", err)
	}
	thr.succeeded("192.0.2.1")
	rank, v := thr.reserve("192.0.2.1")
	if v != reserveOK || !rank.known || rank.demand != 1 {
		t.Fatalf("returning client: rank %+v verdict %v", rank, v)
	}
	got := make(chan error, 1)
	go func() {
		rel, err := q.acquire(ctx, "192.0.2.1", rank)
		if err == nil {
			rel()
		}
		got <- err
	}()
	select {
	case err := <-shed:
		if !errors.Is(err, errBusy) {
			t.Fatalf("a stranger: %v, want shed (busy)", err)
		}
	case err := <-got:
		t.Fatalf("the returning client shed no stranger: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the returning client shed no stranger")
	}
	releases[0]() // the next free check goes to the returning client
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("returning client: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("returning client not served by the first free check")
	}
	releases[1]()
}

// TestThrottleDemandCountsOnlyChecksRun: an attempt answered busy and never
// checked does not count as demand, so a genuine client's retry after a 503
// ranks as its first try did (before, it had demand 2 and lost to every
// flooding address with demand 1). Checks that ran do count.
func TestThrottleDemandCountsOnlyChecksRun(t *testing.T) {
	th := newThrottle(5, time.Minute, time.Minute, 100, hclog.NewNullLogger())
	const ip = "192.0.2.1"
	rank, _ := th.reserve(ip)
	if rank.demand != 1 {
		t.Fatalf("first try: demand %d", rank.demand)
	}
	th.unbook(ip) // the queue was full: 503, not checked
	if rank, _ = th.reserve(ip); rank.demand != 1 || rank.asked != 2 {
		t.Fatalf("retry after a 503: rank %+v, want demand 1 (asked 2 only breaks ties)", rank)
	}
	if !(&checkTicket{rank: checkRank{demand: 1, asked: 1}, seq: 2}).before(&checkTicket{rank: rank, seq: 1}) {
		t.Error("among equal demand, an address that retried more went first")
	}
	th.settle(ip, false) // checked, wrong
	if rank, _ = th.reserve(ip); rank.demand != 2 {
		t.Fatalf("after one check that ran: demand %d, want 2", rank.demand)
	}
	th.settle(ip, true)
	if rank, _ = th.reserve(ip); rank.demand != 3 || rank.known {
		t.Fatalf("after two checks: rank %+v, want demand 3, not known (succeeded is the login's, not the check's)", rank)
	}
}

// TestSourceKey: IPv4 by /32, IPv6 by /64, mapped IPv4 as IPv4.
func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                 "192.0.2.7",
		"::ffff:192.0.2.7":          "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":      "2001:db8:1:2::/64",
		"fe80::1%eth0":              "fe80::/64",
		"::1":                       "::/64",
		"not an address":            "not an address",
		"2001:db8:1:3:3:4:5:6":      "2001:db8:1:3::/64",
		"2001:0db8:0001:0002::abcd": "2001:db8:1:2::/64",
	} {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIPv6SlashSixtyFourIsOneSource: the throttle, the check queue and the
// unauthenticated-connection gate count every address of an IPv6 /64 as
// one source (before, each address of the /64 had its own allowance).
func TestIPv6SlashSixtyFourIsOneSource(t *testing.T) {
	th := newThrottle(3, time.Minute, time.Minute, 100, hclog.NewNullLogger())
	for i := range 3 {
		th.fail(fmt.Sprintf("2001:db8:0:1::%x", i+1))
	}
	if !th.blocked("2001:db8:0:1:ffff::9") {
		t.Error("throttle: failures spread over one /64 did not block it")
	}
	if th.blocked("2001:db8:0:2::1") || th.blocked("192.0.2.1") {
		t.Error("throttle: another source blocked")
	}

	q := newCheckQueue(8, 8, 2)
	ctx := context.Background()
	r1, err1 := q.acquire(ctx, "2001:db8:0:1::1", checkRank{demand: 1})
	r2, err2 := q.acquire(ctx, "2001:db8:0:1::2", checkRank{demand: 1})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := q.acquire(ctx, "2001:db8:0:1::3", checkRank{demand: 1}); !errors.Is(err, errBusy) {
		t.Errorf("queue: a third check from one /64: %v, want busy", err)
	}
	r3, err := q.acquire(ctx, "2001:db8:0:2::1", checkRank{demand: 1})
	if err != nil {
		t.Errorf("queue: another /64 refused: %v", err)
	} else {
		r3()
	}
	r1()
	r2()

	g := newUnauthGate(2, 100, time.Hour)
	a := &connState{ip: "2001:db8:0:1::1"}
	b := &connState{ip: "2001:db8:0:1::2"}
	c := &connState{ip: "2001:db8:0:1::3"}
	d := &connState{ip: "2001:db8:0:2::1"}
	if !g.admit(a) || !g.admit(b) {
		t.Fatal("gate: first two refused")
	}
	if g.admit(c) {
		t.Error("gate: a third unauthenticated connection from one /64 admitted")
	}
	if !g.admit(d) {
		t.Error("gate: another /64 refused")
	}
	for _, cs := range []*connState{a, b, d} {
		g.leave(cs)
	}
	if g.pending() != 0 || len(g.byAddr) != 0 {
		t.Fatalf("gate books not balanced: %d pending, %v", g.pending(), g.byAddr)
	}
}
