package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// badInputWindow is how long a track may receive nothing but packets that
// do not fit its announced codec (garbage, another codec, a payload type
// the SDP does not announce) before the connection is restarted: a fresh
// DESCRIBE picks up a camera that changed codec, and the backoff keeps a
// broken one from spinning.
const badInputWindow = 2 * time.Second

// sourceHealth is the ingest side's view of what the camera sends, checked
// once per badInputWindow; guarded by path.mu.
type sourceHealth struct {
	unknownPT    map[uint8]uint64 // packets with a payload type the SDP does not announce
	unknownTotal uint64
	lastCheck    time.Time
	marks        map[*trackStats]trackMark // counters at the last check
	unknownMark  uint64
	tooBigUDP    uint64 // RTP packets larger than a UDP read can hold (gortsplib drops them)
}

type trackMark struct{ packets, malformed uint64 }

// noteDecodeError records what gortsplib's client could not attribute to
// an announced format.
func (p *path) noteDecodeError(err error) {
	var upt liberrors.ErrClientRTPPacketUnknownPayloadType
	var big liberrors.ErrClientRTPPacketTooBigUDP
	switch {
	case errors.As(err, &big):
		p.mu.Lock()
		p.health.tooBigUDP++
		p.mu.Unlock()
		return
	case !errors.As(err, &upt):
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.health.unknownPT == nil {
		p.health.unknownPT = map[uint8]uint64{}
	}
	p.health.unknownPT[upt.PayloadType]++
	p.health.unknownTotal++
}

// resetHealthLocked starts a new connection's account; the caller holds p.mu.
func (p *path) resetHealthLocked(now time.Time) {
	p.health = sourceHealth{lastCheck: now, marks: map[*trackStats]trackMark{}}
}

// checkSource returns an error when, over the last window, a track that
// gets packets got only bad ones, or packets of undeclared payload types
// came while a track that used to receive went silent.
func (p *path) checkSource(now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := &p.health
	if now.Sub(h.lastCheck) < badInputWindow {
		return nil
	}
	h.lastCheck = now
	if h.tooBigUDP > 0 {
		n := h.tooBigUDP
		h.tooBigUDP = 0
		if p.spec.Transport == apitype.TransportUDP {
			return fmt.Errorf("the camera sends RTP packets larger than 1472 bytes, which cannot be received over UDP (%d dropped): set --transport tcp (or auto)", n)
		}
		p.udpTooBig.Store(true)
		return fmt.Errorf("the camera sends RTP packets larger than 1472 bytes, which cannot be received over UDP (%d dropped): reconnecting over TCP", n)
	}
	unknown := h.unknownTotal - h.unknownMark
	h.unknownMark = h.unknownTotal
	var err error
	for i, t := range p.tracks {
		if t.backChannel {
			continue
		}
		m := h.marks[t]
		good, bad := t.packets-m.packets, t.malformed-m.malformed
		h.marks[t] = trackMark{t.packets, t.malformed}
		if err != nil {
			continue
		}
		name, _, _ := codecInfo(t.formats[0])
		switch {
		case bad > 0 && good == 0:
			err = fmt.Errorf("track %d (%s %s): the camera sent %d packets in %v that are not %s (first bytes: %x)",
				i, t.media, name, bad, badInputWindow, name, t.firstBad)
		case unknown > 0 && good == 0 && t.packets > 0:
			err = fmt.Errorf("track %d (%s %s) went silent while the camera sends RTP payload types its SDP does not announce (%s): it changed codec?",
				i, t.media, name, p.unknownPTsLocked())
		}
	}
	if err == nil && unknown > 0 && p.allSilentLocked() {
		err = fmt.Errorf("the camera sends only RTP payload types its SDP does not announce (%s)", p.unknownPTsLocked())
	}
	return err
}

// allSilentLocked: no served track has received a valid packet.
func (p *path) allSilentLocked() bool {
	for _, t := range p.tracks {
		if !t.backChannel && t.packets > 0 {
			return false
		}
	}
	return true
}

func (p *path) unknownPTsLocked() string {
	s := ""
	for pt, n := range p.health.unknownPT {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d: %d packets", pt, n)
	}
	return s
}
