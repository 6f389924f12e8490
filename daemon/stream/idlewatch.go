package stream

import "time"

// idleWatch stops an on-demand source OnDemandCloseAfter after its last
// reader left; it is owned by the source's goroutine.
type idleWatch struct {
	p *path
	t *time.Timer
	C <-chan time.Time // fires when the source has been without readers long enough
}

// check arms or disarms the timer after the readers changed.
func (w *idleWatch) check() {
	if !w.p.spec.OnDemand {
		return
	}
	if w.p.demand() {
		w.stop()
	} else if w.t == nil {
		w.t = time.NewTimer(w.p.s.cfg.OnDemandCloseAfter)
		w.C = w.t.C
	}
}

// fired reports whether the source should stop now that the timer fired
// (a reader may have come meanwhile).
func (w *idleWatch) fired() bool {
	w.t, w.C = nil, nil
	if !w.p.demand() {
		return true
	}
	w.check()
	return false
}

func (w *idleWatch) stop() {
	if w.t != nil {
		w.t.Stop()
		w.t, w.C = nil, nil
	}
}
