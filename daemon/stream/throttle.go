package stream

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// sourceKey is the source a connection is counted under by the throttle,
// the check queue and the unauthenticated-connection gate: an IPv4 address
// (/32), or an IPv6 address's /64, since one IPv6 client commonly holds a
// whole /64 and could otherwise rotate addresses past every per-address
// limit. IPv4-mapped IPv6 counts as IPv4; a zone is ignored. Anything that
// does not parse is its own key.
func sourceKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// Addresses (source keys) that logged in successfully are remembered for
// knownTTL, at most knownMax of them (only a genuine login adds one, so a
// flood cannot fill it): their expensive checks go before strangers'.
const (
	knownTTL = 24 * time.Hour
	knownMax = 4096
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
	known   map[string]time.Time // source key -> last successful login
}

type throttleEntry struct {
	windowStart  time.Time
	fails        int
	pending      int // expensive checks booked and not yet settled
	blockedUntil time.Time
	blocks       int
	last         time.Time
	demandStart  time.Time
	demand       int // expensive checks run (settled) since demandStart
	asked        int // Basic attempts since demandStart, checked or not
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
	return &throttle{max: max, window: window, base: base, maxEntries: maxEntries, log: log, now: time.Now, entries: map[string]*throttleEntry{}, known: map[string]time.Time{}}
}

// blocked reports whether ip is currently refused.
func (t *throttle) blocked(ip string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[sourceKey(ip)]
	return e != nil && t.now().Before(e.blockedUntil)
}

// reserve books one expensive (argon2id) check for ip BEFORE it is queued:
// concurrent attempts from one address can never buy more checks than it
// has failures left before its block. The rank is the check's place in the
// queue: addresses that logged in recently first, then the least
// demanding, where demand counts the checks ip ran within the window plus
// those booked now, this one included; an attempt answered "busy" and never
// checked (unbook) does not count as demand, only as asked, which breaks
// ties: among equals an address that retries less goes first.
func (t *throttle) reserve(ip string) (rank checkRank, v reserveVerdict) {
	ip = sourceKey(ip)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(ip, now)
	t.rollDemandLocked(e, now)
	e.asked++
	rank = checkRank{known: t.knownLocked(ip, now), demand: e.demand + e.pending + 1, asked: e.asked}
	if now.Before(e.blockedUntil) {
		return rank, reserveRefused
	}
	t.rollWindowLocked(e, now)
	if e.fails+e.pending >= t.max {
		return rank, reserveBusy
	}
	e.pending++
	return rank, reserveOK
}

// settle ends a reservation whose check ran: it counts as demand, and
// ok=false records the failure (as fail does), in the same step, so no
// other reservation slips in between.
func (t *throttle) settle(ip string, ok bool) {
	ip = sourceKey(ip)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(ip, now)
	e.pending = max(0, e.pending-1)
	t.rollDemandLocked(e, now)
	e.demand++
	if !ok {
		t.failLocked(ip, e, now)
	}
}

// unbook ends a reservation whose check never ran (answered "busy"): no
// failure and no demand.
func (t *throttle) unbook(ip string) {
	ip = sourceKey(ip)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(ip, now)
	e.pending = max(0, e.pending-1)
}

// succeeded records that ip logged in: for knownTTL its checks go first.
func (t *throttle) succeeded(ip string) {
	ip = sourceKey(ip)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.known[ip]; !ok && len(t.known) >= knownMax {
		oldest, at := "", now
		for k, last := range t.known {
			if now.Sub(last) > knownTTL {
				delete(t.known, k)
			} else if last.Before(at) {
				oldest, at = k, last
			}
		}
		if len(t.known) >= knownMax {
			delete(t.known, oldest)
		}
	}
	t.known[ip] = now
}

func (t *throttle) knownLocked(ip string, now time.Time) bool {
	last, ok := t.known[ip]
	return ok && now.Sub(last) <= knownTTL
}

func (t *throttle) rollDemandLocked(e *throttleEntry, now time.Time) {
	if now.Sub(e.demandStart) > t.window {
		e.demandStart, e.demand, e.asked = now, 0, 0
	}
}

// fail records one failed authentication from ip.
func (t *throttle) fail(ip string) {
	ip = sourceKey(ip)
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
