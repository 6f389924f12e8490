package stream

import (
	"container/list"
	"sync"
	"time"
)

// unauthGate bounds the connections that have not authenticated yet: at
// most perAddr from one address (a newcomer beyond that is closed at once),
// at most total overall (the oldest unauthenticated connection is closed to
// make room, so holding idle connections cannot lock newcomers out), and
// none for longer than timeout. A connection leaves the gate when it
// authenticates or closes.
type unauthGate struct {
	perAddr, total int
	timeout        time.Duration

	mu     sync.Mutex
	byAddr map[string]int
	order  *list.List // of *connState, oldest first
}

// unauthEntry is a connection's place in the gate, guarded by unauthGate.mu.
type unauthEntry struct {
	key   string        // the connection's source key (sourceKey)
	elem  *list.Element // nil once the connection authenticated or closed
	timer *time.Timer
}

func newUnauthGate(perAddr, total int, timeout time.Duration) *unauthGate {
	return &unauthGate{perAddr: perAddr, total: total, timeout: timeout, byAddr: map[string]int{}, order: list.New()}
}

// admit enters a new connection. It returns false when the connection's
// address (an IPv6 /64 counts as one) already holds its share (the caller
// closes it).
func (g *unauthGate) admit(cs *connState) bool {
	key := sourceKey(cs.ip)
	g.mu.Lock()
	if g.byAddr[key] >= g.perAddr {
		g.mu.Unlock()
		return false
	}
	var evict *connState
	if g.order.Len() >= g.total {
		evict = g.order.Front().Value.(*connState)
		g.removeLocked(evict)
	}
	g.byAddr[key]++
	cs.gate.key = key
	cs.gate.elem = g.order.PushBack(cs)
	cs.gate.timer = time.AfterFunc(g.timeout, func() {
		g.mu.Lock()
		pending := cs.gate.elem != nil
		g.mu.Unlock()
		if pending {
			cs.closeConn()
		}
	})
	g.mu.Unlock()
	if evict != nil {
		evict.closeConn()
	}
	return true
}

// pending is how many connections have not authenticated yet.
func (g *unauthGate) pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.order.Len()
}

// leave takes the connection out of the gate (authenticated or closed).
func (g *unauthGate) leave(cs *connState) {
	g.mu.Lock()
	g.removeLocked(cs)
	g.mu.Unlock()
}

func (g *unauthGate) removeLocked(cs *connState) {
	if cs.gate.elem == nil {
		return
	}
	g.order.Remove(cs.gate.elem)
	cs.gate.elem = nil
	cs.gate.timer.Stop()
	if g.byAddr[cs.gate.key]--; g.byAddr[cs.gate.key] <= 0 {
		delete(g.byAddr, cs.gate.key)
	}
}
