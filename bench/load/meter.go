package load

import (
	"sync"
	"time"
)

// meter is the accounting both reader kinds share: packets, sequence gaps,
// first packet and keyframe, and camera-to-reader latency. Each reader's
// read goroutine records; anyone may read the figures.
type meter struct {
	started time.Time // just before DESCRIBE

	mu       sync.Mutex // guards everything below
	stats    ReaderStats
	auSent   time.Time // SEI time of the access unit being received
	hist     Histogram
	firstPkt time.Time
	firstIDR time.Time
	// when each start-up step answered (the gortsplib reader's)
	described, setUp, played time.Time
	endedAt                  time.Time
	err                      error
}

// record counts one RTP packet; gap is its sequence number minus the
// previous one's minus one, meaningful only when seen (not the first).
func (m *meter) record(gap uint16, seen bool, payload []byte, marker bool, now time.Time) {
	pi := Inspect(payload)
	m.mu.Lock()
	defer m.mu.Unlock()
	if seen {
		switch {
		case gap == 0:
		case gap < 0x8000:
			m.stats.Lost += uint64(gap)
		default:
			m.stats.SeqResets++
		}
	}
	m.stats.Packets++
	m.stats.Bytes += uint64(len(payload))
	if m.firstPkt.IsZero() {
		m.firstPkt = now
	}
	if pi.IDR && m.firstIDR.IsZero() {
		m.firstIDR = now
	}
	if !pi.SentAt.IsZero() {
		m.auSent = pi.SentAt
	}
	// Latency is counted when the access unit is complete (marker bit).
	if marker && !m.auSent.IsZero() {
		m.hist.Record(now.Sub(m.auSent))
		m.auSent = time.Time{}
	}
}

// Stats returns the cumulative counters.
func (m *meter) Stats() ReaderStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// TakeLatency returns the latency histogram gathered since the last call and
// starts a new one.
func (m *meter) TakeLatency() Histogram {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hist
	m.hist = Histogram{}
	return h
}

// Receiving reports whether at least one packet arrived.
func (m *meter) Receiving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats.Packets > 0
}

// FirstKeyframe is the time from just before DESCRIBE to the first packet
// carrying an IDR slice; ok is false until one arrived.
func (m *meter) FirstKeyframe() (d time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.firstIDR.IsZero() {
		return 0, false
	}
	return m.firstIDR.Sub(m.started), true
}

// mark records when a start-up step answered.
func (m *meter) mark(at *time.Time) {
	m.mu.Lock()
	*at = time.Now()
	m.mu.Unlock()
}

// Steps is how long each start-up step took: DESCRIBE (with its 401 and
// the Digest retry), SETUP, PLAY, and PLAY's answer to the first IDR
// packet; ok is false until a keyframe arrived (or for a reader that does
// not mark its steps).
func (m *meter) Steps() (describe, setup, play, toKeyframe time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.firstIDR.IsZero() || m.played.IsZero() {
		return 0, 0, 0, 0, false
	}
	return m.described.Sub(m.started), m.setUp.Sub(m.described), m.played.Sub(m.setUp), m.firstIDR.Sub(m.played), true
}

// FirstPacket is the time from just before DESCRIBE to the first packet.
func (m *meter) FirstPacket() (d time.Duration, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.firstPkt.IsZero() {
		return 0, false
	}
	return m.firstPkt.Sub(m.started), true
}
