package token

import (
	"container/heap"
	"sync"
	"time"
)

// EndReason says why the Tracker ended a session.
type EndReason int

const (
	EndExpired       EndReason = iota + 1 // the token's exp was reached
	EndKeyRemoved                         // its signing key left the issuer's JWKS
	EndIssuerRemoved                      // its issuer was removed or changed
	EndRevoked                            // its jti was revoked
)

func (r EndReason) String() string {
	switch r {
	case EndExpired:
		return "token expired"
	case EndKeyRemoved:
		return "token signing key removed from the issuer's JWKS"
	case EndIssuerRemoved:
		return "token issuer removed"
	case EndRevoked:
		return "token revoked"
	}
	return "unknown"
}

// Tracker ends token sessions when their right to run ends. One goroutine
// owns one timer heap for every session (no goroutine or timer per session),
// plus indexes by key, issuer and jti for the other ways a token dies.
//
// onEnd is called from the Tracker's goroutine, once per session, after the
// session has been forgotten; it must not block (closing a gortsplib
// session is fine: Close only signals) and must not call back into the
// Tracker synchronously.
type Tracker struct {
	cmds      chan func(*trackerState)
	done      chan struct{}
	closeOnce sync.Once
	onEnd     func(id string, reason EndReason)
}

type tracked struct {
	id    string
	ident Identity
	index int // in the heap
}

type trackerState struct {
	heap     expiryHeap
	byID     map[string]*tracked
	byKey    map[[2]string]map[string]*tracked // {issuer, kid} -> id -> session
	byIssuer map[string]map[string]*tracked
	byJTI    map[string]map[string]*tracked
}

// NewTracker starts a Tracker; Close stops it.
func NewTracker(onEnd func(id string, reason EndReason)) *Tracker {
	t := &Tracker{cmds: make(chan func(*trackerState)), done: make(chan struct{}), onEnd: onEnd}
	go t.run()
	return t
}

// Close stops the Tracker; sessions still tracked are not ended.
func (t *Tracker) Close() {
	t.closeOnce.Do(func() { close(t.done) })
}

func (t *Tracker) run() {
	st := &trackerState{
		byID:     map[string]*tracked{},
		byKey:    map[[2]string]map[string]*tracked{},
		byIssuer: map[string]map[string]*tracked{},
		byJTI:    map[string]map[string]*tracked{},
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Go 1.23+ timers: Reset needs no drain and a stale tick is never seen.
		if len(st.heap) > 0 {
			timer.Reset(time.Until(st.heap[0].ident.Expiry))
		} else {
			timer.Stop()
		}
		select {
		case <-t.done:
			return
		case cmd := <-t.cmds:
			cmd(st)
		case <-timer.C:
			now := time.Now()
			for len(st.heap) > 0 && !st.heap[0].ident.Expiry.After(now) {
				t.end(st, st.heap[0], EndExpired)
			}
		}
	}
}

// do runs cmd on the Tracker's goroutine; after Close it is a no-op.
func (t *Tracker) do(cmd func(*trackerState)) {
	select {
	case t.cmds <- cmd:
	case <-t.done:
	}
}

// Track starts watching a session opened with ident. A session already
// tracked under id is replaced (a token refreshed mid-session). A token
// already expired ends at once.
func (t *Tracker) Track(id string, ident Identity) {
	t.do(func(st *trackerState) {
		if old, ok := st.byID[id]; ok {
			st.forget(old)
		}
		s := &tracked{id: id, ident: ident}
		st.byID[id] = s
		heap.Push(&st.heap, s)
		add(st.byKey, [2]string{ident.Issuer, ident.KeyID}, s)
		add(st.byIssuer, ident.Issuer, s)
		if ident.JTI != "" {
			add(st.byJTI, ident.JTI, s)
		}
	})
}

// Untrack forgets a session that ended for another reason (the viewer left,
// an admin kicked it). onEnd is not called.
func (t *Tracker) Untrack(id string) {
	t.do(func(st *trackerState) {
		if s, ok := st.byID[id]; ok {
			st.forget(s)
		}
	})
}

// Len is the number of sessions tracked.
func (t *Tracker) Len() int {
	n := make(chan int, 1)
	t.do(func(st *trackerState) { n <- len(st.byID) })
	select {
	case v := <-n:
		return v
	case <-t.done:
		return 0
	}
}

// KeyRemoved ends every session whose token a removed key signed.
func (t *Tracker) KeyRemoved(issuer, kid string) {
	t.do(func(st *trackerState) { t.endAll(st, st.byKey[[2]string{issuer, kid}], EndKeyRemoved) })
}

// IssuerRemoved ends every session of the issuer.
func (t *Tracker) IssuerRemoved(issuer string) {
	t.do(func(st *trackerState) { t.endAll(st, st.byIssuer[issuer], EndIssuerRemoved) })
}

// Revoked ends every session opened with a token of this jti.
func (t *Tracker) Revoked(jti string) {
	t.do(func(st *trackerState) { t.endAll(st, st.byJTI[jti], EndRevoked) })
}

func (t *Tracker) endAll(st *trackerState, set map[string]*tracked, reason EndReason) {
	victims := make([]*tracked, 0, len(set))
	for _, s := range set {
		victims = append(victims, s)
	}
	for _, s := range victims {
		t.end(st, s, reason)
	}
}

func (t *Tracker) end(st *trackerState, s *tracked, reason EndReason) {
	st.forget(s)
	if t.onEnd != nil {
		t.onEnd(s.id, reason)
	}
}

func (st *trackerState) forget(s *tracked) {
	delete(st.byID, s.id)
	heap.Remove(&st.heap, s.index)
	remove(st.byKey, [2]string{s.ident.Issuer, s.ident.KeyID}, s.id)
	remove(st.byIssuer, s.ident.Issuer, s.id)
	if s.ident.JTI != "" {
		remove(st.byJTI, s.ident.JTI, s.id)
	}
}

func add[K comparable](idx map[K]map[string]*tracked, k K, s *tracked) {
	m := idx[k]
	if m == nil {
		m = map[string]*tracked{}
		idx[k] = m
	}
	m[s.id] = s
}

func remove[K comparable](idx map[K]map[string]*tracked, k K, id string) {
	if m := idx[k]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(idx, k)
		}
	}
}

// expiryHeap orders sessions by token expiry (container/heap).
type expiryHeap []*tracked

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].ident.Expiry.Before(h[j].ident.Expiry) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	s := x.(*tracked)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *expiryHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}
