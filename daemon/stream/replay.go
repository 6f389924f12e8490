package stream

import (
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtp"
)

// A reader joining a live path gets the cached packets since the last
// keyframe and then the live ones, with no gap and no duplicate. gortsplib
// adds the session to the stream's active readers after OnPlay returns and
// before it answers PLAY; a packet written to the stream in between would
// miss the joiner, and one written to the joiner directly as well would
// reach it twice. So OnPlay replays the cache and opens a join on the path
// in one critical section; while a join is open, ingest holds its output,
// in order and bounded, instead of writing it; OnResponse (or the
// connection closing) ends the join and the held packets go to every
// reader, the joiner now included. p.mu is never held across gortsplib
// callbacks and no timer is involved.

// maxHeldPackets bounds what ingest holds while joins are open: a joiner
// whose PLAY answer never goes out delays the other readers by at most
// this many packets before the hold is given up.
const maxHeldPackets = 512

// join is one reader between its PLAY and gortsplib's answer to it.
type join struct{}

type gopPkt struct {
	medi *description.Media // served media
	pkt  *rtp.Packet
	// ntp is when the packet arrived. It is written with it: gortsplib's
	// per-reader RTCP sender maps RTP time to this NTP time and readers
	// (ffmpeg) sync tracks by it; "now" would make replayed or held packets
	// look later than the live ones of the other tracks (non-monotonic DTS).
	ntp time.Time
}

// beginJoinLocked replays the cache to ss and, when it replayed anything,
// opens a join and returns the function that ends it (safe to call more
// than once, from any goroutine). The caller holds p.mu.
func (p *path) beginJoinLocked(ss *gortsplib.ServerSession) (replayed int, end func()) {
	replayed = p.replayGOPLocked(ss)
	if replayed == 0 {
		return 0, nil
	}
	j := &join{}
	if p.joins == nil {
		p.joins = map[*join]struct{}{}
	}
	p.joins[j] = struct{}{}
	return replayed, func() { p.endJoin(j) }
}

// endJoin closes j; the last open join releases the held packets.
func (p *path) endJoin(j *join) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, open := p.joins[j]; !open {
		return
	}
	delete(p.joins, j)
	if len(p.joins) == 0 {
		p.flushHeldLocked()
	}
}

// holdLocked keeps a live packet back while a join is open and reports
// whether it did. The caller holds p.mu.
func (p *path) holdLocked(medi *description.Media, pkt *rtp.Packet, ntp time.Time) bool {
	if len(p.joins) == 0 {
		return false
	}
	if len(p.held) >= maxHeldPackets {
		p.s.log.Warn("a joining reader's PLAY answer is late; releasing held packets", "path", p.name, "held", len(p.held))
		p.joins = nil
		p.flushHeldLocked()
		return false
	}
	p.held = append(p.held, gopPkt{medi: medi, pkt: clonePacket(pkt), ntp: ntp})
	return true
}

func (p *path) flushHeldLocked() {
	held := p.held
	p.held = nil
	if p.stream == nil {
		return
	}
	for _, h := range held {
		_ = p.stream.WritePacketRTPWithNTP(h.medi, h.pkt, h.ntp)
	}
}

// dropJoinsLocked forgets open joins and held packets when the served
// stream is replaced or closed (its readers go with it).
func (p *path) dropJoinsLocked() {
	p.joins, p.held = nil, nil
}

func clonePacket(pkt *rtp.Packet) *rtp.Packet {
	c := &rtp.Packet{Header: pkt.Header, Payload: append([]byte(nil), pkt.Payload...)}
	c.Header.CSRC = append([]uint32(nil), pkt.CSRC...)
	c.Header.Extensions = nil
	c.Header.Extension = false
	return c
}

// replayGOPLocked sends the cached packets since the last keyframe to a
// reader that is about to start playing. The caller holds p.mu.
func (p *path) replayGOPLocked(ss *gortsplib.ServerSession) int {
	if !p.gopOn || len(p.gop) == 0 {
		return 0
	}
	setup := map[*description.Media]bool{}
	for _, m := range ss.Medias() {
		setup[m] = true
	}
	n := 0
	for _, g := range p.gop {
		if !setup[g.medi] {
			continue
		}
		c := *g.pkt // WritePacketRTP rewrites the SSRC in place
		if err := ss.WritePacketRTPWithNTP(g.medi, &c, g.ntp); err != nil {
			break
		}
		n++
	}
	return n
}
