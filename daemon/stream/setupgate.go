package stream

// The setup gate: one reader SETUP of a path at a time inside gortsplib.
//
// gortsplib (v5.6.5) accepts a reader's SETUP in the session's goroutine:
// it writes the session's transport and set-up media under the session's
// own lock and, at the first SETUP, adds the reader to the stream. A UDP
// reader's first SETUP walks the stream's other readers and reads those
// same fields under the stream's lock only. Two readers setting up one path
// at once (several tracks each, one address: a NAT, a player with audio) are
// a data race, and a map read beside a map write, which ends the process.
//
// So a reader's accepted SETUP takes its path's gate in OnSetup and gives it
// back in OnResponse: gortsplib runs that in the connection goroutine once
// the session goroutine has handed over its answer, after everything it did
// for that SETUP. The gate holds for microseconds; a SETUP that waited
// setupGateWait for it goes on without (logged) rather than hang its session.

import "time"

const setupGateWait = 5 * time.Second

// enterSetupGate takes p's gate for the SETUP cs is answering.
func (h *handler) enterSetupGate(cs *connState, p *path) {
	if cs == nil {
		return
	}
	t := time.NewTimer(setupGateWait)
	defer t.Stop()
	select {
	case p.setupGate <- struct{}{}:
		cs.mu.Lock()
		cs.inSetupGate = p.setupGate
		cs.mu.Unlock()
	case <-t.C:
		h.s.log.Warn("a reader's SETUP waited too long for the path's setup gate: going on without it", "path", p.name, "waited", setupGateWait)
	case <-h.s.ctx.Done():
	}
}

// leaveSetupGate gives back the gate the connection's SETUP holds, if any.
func (cs *connState) leaveSetupGate() {
	cs.mu.Lock()
	g := cs.inSetupGate
	cs.inSetupGate = nil
	cs.mu.Unlock()
	if g != nil {
		<-g
	}
}
