package stream

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// errBusy: no room for an expensive check now; the client is told to retry.
var errBusy = errors.New("too many logins being checked; retry later")

// checkQueue schedules the expensive credential checks (argon2id: tens of
// milliseconds and ~20 MB each) fairly across source addresses. At most
// running checks run at once and waiting wait; an address has at most
// perAddr checks waiting or running. Addresses are source keys (sourceKey:
// an IPv6 /64 is one address). An address that logged in recently goes
// first, then the least demanding (fewest checks run recently), and a full
// queue sheds its last-ranked waiter to admit a better-ranked newcomer, so
// a flood from many fresh addresses cannot starve a returning client, and
// costs a newcomer about one check's wait, not the flood's. Whatever does
// not fit is refused at once (errBusy), never queued.
type checkQueue struct {
	running, waiting, perAddr int

	mu     sync.Mutex
	nRun   int
	queue  []*checkTicket
	byAddr map[string]int // waiting + running
	seq    uint64
}

// checkRank is a check's place in the queue (throttle.reserve).
type checkRank struct {
	known  bool // the address logged in successfully recently
	demand int  // checks the address ran or booked recently, this one included
	asked  int  // attempts it made recently, checked or not (ties only)
}

type checkTicket struct {
	addr string
	rank checkRank
	seq  uint64
	turn chan bool // true: run now; false: shed
}

func newCheckQueue(running, waiting, perAddr int) *checkQueue {
	return &checkQueue{running: running, waiting: waiting, perAddr: perAddr, byAddr: map[string]int{}}
}

// before reports whether a goes before b: a known address first, then less
// demand, then fewer attempts, then arrival.
func (a *checkTicket) before(b *checkTicket) bool {
	if a.rank.known != b.rank.known {
		return a.rank.known
	}
	if a.rank.demand != b.rank.demand {
		return a.rank.demand < b.rank.demand
	}
	if a.rank.asked != b.rank.asked {
		return a.rank.asked < b.rank.asked
	}
	return a.seq < b.seq
}

// acquire waits for a turn to run one check for addr; the caller runs the
// check and then calls release. It returns errBusy when there is no room
// (or the ticket was shed for a better-ranked address), ctx.Err() when ctx
// ends first.
func (q *checkQueue) acquire(ctx context.Context, addr string, rank checkRank) (release func(), err error) {
	addr = sourceKey(addr)
	q.mu.Lock()
	if q.byAddr[addr] >= q.perAddr {
		q.mu.Unlock()
		return nil, errBusy
	}
	if q.nRun < q.running && len(q.queue) == 0 {
		q.nRun++
		q.byAddr[addr]++
		q.mu.Unlock()
		return q.releaser(addr), nil
	}
	q.seq++
	tk := &checkTicket{addr: addr, rank: rank, seq: q.seq, turn: make(chan bool, 1)}
	if len(q.queue) >= q.waiting {
		worst := 0
		for i, w := range q.queue {
			if q.queue[worst].before(w) {
				worst = i
			}
		}
		if !tk.before(q.queue[worst]) {
			q.mu.Unlock()
			return nil, errBusy
		}
		q.dropLocked(worst).turn <- false
	}
	q.queue = append(q.queue, tk)
	q.byAddr[addr]++
	q.mu.Unlock()

	select {
	case run := <-tk.turn:
		if !run {
			return nil, errBusy
		}
		return q.releaser(addr), nil
	case <-ctx.Done():
		q.mu.Lock()
		for i, w := range q.queue {
			if w == tk {
				q.dropLocked(i)
				q.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		q.mu.Unlock()
		if <-tk.turn { // granted or shed meanwhile
			q.releaser(addr)()
		}
		return nil, ctx.Err()
	}
}

// dropLocked removes waiting ticket i and returns it.
func (q *checkQueue) dropLocked(i int) *checkTicket {
	tk := q.queue[i]
	q.queue = append(q.queue[:i], q.queue[i+1:]...)
	q.decLocked(tk.addr)
	return tk
}

func (q *checkQueue) decLocked(addr string) {
	if q.byAddr[addr]--; q.byAddr[addr] <= 0 {
		delete(q.byAddr, addr)
	}
}

func (q *checkQueue) releaser(addr string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			q.nRun--
			q.decLocked(addr)
			for q.nRun < q.running && len(q.queue) > 0 {
				best := 0
				for i, w := range q.queue {
					if w.before(q.queue[best]) {
						best = i
					}
				}
				tk := q.queue[best]
				q.queue = append(q.queue[:best], q.queue[best+1:]...)
				q.nRun++ // its byAddr count moves from waiting to running
				tk.turn <- true
			}
			q.mu.Unlock()
		})
	}
}

// busyNotes logs, at most once a minute, how many Basic logins were turned
// away unchecked: one line per flood, not one per attempt.
type busyNotes struct {
	turnedAway atomic.Int64
	lastLog    atomic.Int64 // unix ns
}

func (b *busyNotes) note(log hclog.Logger) {
	b.turnedAway.Add(1)
	now, last := time.Now().UnixNano(), b.lastLog.Load()
	if now-last < int64(time.Minute) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	log.Warn("too many Basic logins to check: answering 503 with Retry-After", "turned_away", b.turnedAway.Swap(0))
}

// basicFlights lets identical Basic checks that arrive together share one
// argon2id run: a client starting many streams at once (a VMS behind one
// address) costs one check, not one per stream and not a 503 for the rest.
// Keys are HMACs under a per-process random key, and a flight lives only
// while its check runs.
type basicFlights struct {
	key [32]byte
	mu  sync.Mutex
	m   map[[32]byte]*basicFlight
}

// basicFlight is one check in progress; its results are set before done closes.
type basicFlight struct {
	done     chan struct{}
	ver      uint64
	ext      *Principal // a directory login's principal
	ok, busy bool
}

func newBasicFlights() *basicFlights {
	f := &basicFlights{m: map[[32]byte]*basicFlight{}}
	if _, err := rand.Read(f.key[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return f
}

// join returns the flight for these credentials. The leader (the first to
// ask) runs the check, sets the results and calls land; the others wait
// for done.
func (f *basicFlights) join(user, pass string) (fl *basicFlight, leader bool, land func()) {
	m := hmac.New(sha256.New, f.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[k]; fl != nil {
		return fl, false, nil
	}
	fl = &basicFlight{done: make(chan struct{})}
	f.m[k] = fl
	return fl, true, func() {
		f.mu.Lock()
		delete(f.m, k)
		f.mu.Unlock()
		close(fl.done)
	}
}
