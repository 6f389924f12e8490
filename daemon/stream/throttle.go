package stream

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// throttle refuses source addresses that failed authentication too often:
// after max failures within window an address is refused for base, doubled
// at each new refusal (capped at an hour). One log line per refusal period.
// At most maxEntries addresses are tracked, so a flood of distinct sources
// costs bounded memory (the oldest-looking entries are dropped first).
type throttle struct {
	max        int
	window     time.Duration
	base       time.Duration
	maxEntries int
	log        hclog.Logger
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	windowStart  time.Time
	fails        int
	pending      int // expensive checks booked and not yet settled
	blockedUntil time.Time
	blocks       int
	last         time.Time
	demandStart  time.Time
	demand       int // expensive checks asked for since demandStart
}

// reserveVerdict is the outcome of throttle.reserve.
type reserveVerdict int

const (
	reserveOK      reserveVerdict = iota
	reserveBusy                   // as many checks in flight as failures left: answer "busy"
	reserveRefused                // the address is blocked
)

const throttleMaxBlock = time.Hour

func newThrottle(max int, window, base time.Duration, maxEntries int, log hclog.Logger) *throttle {
	return &throttle{max: max, window: window, base: base, maxEntries: maxEntries, log: log, now: time.Now, entries: map[string]*throttleEntry{}}
}

// blocked reports whether ip is currently refused.
func (t *throttle) blocked(ip string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[ip]
	return e != nil && t.now().Before(e.blockedUntil)
}

// reserve books one expensive (argon2id) check for ip BEFORE it is queued:
// concurrent attempts from one address can never buy more checks than it
// has failures left before its block. demand is how many expensive checks
// ip asked for within the window, this one included: the check queue serves
// the least demanding addresses first.
func (t *throttle) reserve(ip string) (demand int, v reserveVerdict) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(ip, now)
	if now.Sub(e.demandStart) > t.window {
		e.demandStart, e.demand = now, 0
	}
	e.demand++
	if now.Before(e.blockedUntil) {
		return e.demand, reserveRefused
	}
	t.rollWindowLocked(e, now)
	if e.fails+e.pending >= t.max {
		return e.demand, reserveBusy
	}
	e.pending++
	return e.demand, reserveOK
}

// settle ends a reservation: ok=false records the failure (as fail does),
// in the same step, so no other reservation slips in between.
func (t *throttle) settle(ip string, ok bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(ip, now)
	e.pending = max(0, e.pending-1)
	if !ok {
		t.failLocked(ip, e, now)
	}
}

// fail records one failed authentication from ip.
func (t *throttle) fail(ip string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failLocked(ip, t.entryLocked(ip, now), now)
}

func (t *throttle) entryLocked(ip string, now time.Time) *throttleEntry {
	e := t.entries[ip]
	if e == nil {
		if len(t.entries) >= t.maxEntries {
			t.evictLocked(now)
		}
		e = &throttleEntry{windowStart: now, demandStart: now}
		t.entries[ip] = e
	}
	e.last = now
	return e
}

func (t *throttle) rollWindowLocked(e *throttleEntry, now time.Time) {
	if now.Sub(e.windowStart) > t.window {
		e.windowStart, e.fails = now, 0
	}
}

func (t *throttle) failLocked(ip string, e *throttleEntry, now time.Time) {
	if now.Before(e.blockedUntil) {
		return
	}
	t.rollWindowLocked(e, now)
	e.fails++
	if e.fails >= t.max {
		d := t.base
		for i := 0; i < e.blocks && d < throttleMaxBlock; i++ {
			d *= 2
		}
		d = min(d, throttleMaxBlock)
		e.blocks++
		e.blockedUntil = now.Add(d)
		e.fails = 0
		e.windowStart = e.blockedUntil
		t.log.Warn("too many failed RTSP authentications: refusing address", "addr", ip, "failures", t.max, "for", d)
	}
}

// evictLocked drops expired entries, or, if none, about a tenth of the table
// with the oldest activity.
func (t *throttle) evictLocked(now time.Time) {
	for ip, e := range t.entries {
		if now.After(e.blockedUntil) && now.Sub(e.last) > t.window {
			delete(t.entries, ip)
		}
	}
	if len(t.entries) < t.maxEntries {
		return
	}
	// Map order is random: drop unblocked entries first, then any.
	n := max(1, t.maxEntries/10)
	for ip, e := range t.entries {
		if n == 0 {
			return
		}
		if now.Before(e.blockedUntil) {
			continue
		}
		delete(t.entries, ip)
		n--
	}
	for ip := range t.entries {
		if n == 0 {
			return
		}
		delete(t.entries, ip)
		n--
	}
}

// blockedCount is how many addresses are refused now.
func (t *throttle) blockedCount() int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.entries {
		if now.Before(e.blockedUntil) {
			n++
		}
	}
	return n
}

func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
