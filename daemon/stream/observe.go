package stream

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
)

// Observer hears about events the stream layer does not keep a count of
// itself (the daemon's metrics). Calls may come with a path's lock held
// and from the data path: implementations must be about as cheap as an
// atomic add and must never block or call back into the Server.
type Observer interface {
	// SessionClosed: an authenticated session ended, for one of the Close* reasons.
	SessionClosed(reason string)
	// FirstFrame: a reader got its first keyframe this long after it connected.
	FirstFrame(wait time.Duration)
	// AuthFailed: an RTSP authentication was refused; method is "basic", "digest" or "other".
	AuthFailed(method string)
}

// Why a session ended (Observer.SessionClosed).
const (
	CloseRevoked = "revoked" // the policy no longer allows it
	CloseKicked  = "kicked"  // Kick
	CloseEvicted = "evicted" // it stopped reading
	CloseExpired = "expired" // a UDP session without keep-alives timed out
	CloseClient  = "client"  // the client tore it down, disconnected, or its TCP connection went silent
	CloseStopped = "stopped" // its stream or the server went away
)

type nopObserver struct{}

func (nopObserver) SessionClosed(string)     {}
func (nopObserver) FirstFrame(time.Duration) {}
func (nopObserver) AuthFailed(string)        {}

// closeReason says why gortsplib closed a session we did not close on
// purpose (those carry their reason in session.closeReason).
func closeReason(err error) string {
	var timedOut liberrors.ErrServerSessionTimedOut
	var terminated liberrors.ErrServerTerminated
	switch {
	case errors.As(err, &timedOut):
		return CloseExpired
	case errors.As(err, &terminated):
		return CloseStopped
	}
	return CloseClient
}

// ThrottledAddresses is how many source addresses are refused right now
// for failed logins.
func (s *Server) ThrottledAddresses() int { return s.thr.blockedCount() }

// securityCounters count refusals nobody else counts; atomics, so the
// refusal paths stay as cheap as they are.
type securityCounters struct {
	refusedConns atomic.Uint64
	busyLogins   atomic.Uint64
}

// SecurityCounts is the state of the RTSP server's flood defences.
type SecurityCounts struct {
	ConnectionsRefused uint64 // closed on arrival: address throttled or over its share of unauthenticated connections
	LoginsDeferred     uint64 // Basic logins answered 503 Retry-After, unchecked, because the check queue was full
	Unauthenticated    int    // connections open now that have not authenticated yet
}

// Security returns the counters since the server started.
func (s *Server) Security() SecurityCounts {
	return SecurityCounts{
		ConnectionsRefused: s.counts.refusedConns.Load(),
		LoginsDeferred:     s.counts.busyLogins.Load(),
		Unauthenticated:    s.unauth.pending(),
	}
}

// Alive reports whether the RTSP server is still serving: nil, or why not
// (its listener failed, for instance on too many open files). It is the
// RTSP part of the daemon's health check.
func (s *Server) Alive() error {
	s.mu.Lock()
	srv, done, closed := s.rtsp, s.serveDone, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return errors.New("RTSP server closed")
	case srv == nil || done == nil:
		return errors.New("RTSP server not started")
	}
	select {
	case <-done:
		return errors.New("RTSP server stopped: " + s.serveErr.Error())
	default:
		return nil
	}
}

// watchServe records when gortsplib's server stops on its own.
func (s *Server) watchServe(srv interface{ Wait() error }) chan struct{} {
	done := make(chan struct{})
	go func() {
		err := srv.Wait()
		if err == nil {
			err = errors.New("no error reported")
		}
		s.serveErr = err // written before done closes; read only after
		close(done)
	}()
	return done
}

// awaitKeyframe remembers when a reader that got no cached keyframe
// started, so the next keyframe can report its time to first frame.
// The caller holds p.mu.
func (p *path) awaitKeyframeLocked(se *session, since time.Time) {
	if p.awaitKey == nil {
		p.awaitKey = map[*session]time.Time{}
	}
	p.awaitKey[se] = since
}

// keyframeLocked reports the waiting readers' first frame. The caller holds p.mu.
func (p *path) keyframeLocked(now time.Time) {
	for se, since := range p.awaitKey {
		p.s.cfg.Observer.FirstFrame(now.Sub(since))
		delete(p.awaitKey, se)
	}
}
