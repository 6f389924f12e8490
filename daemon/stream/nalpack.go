package stream

import (
	"errors"

	"github.com/pion/rtp"
)

// nalRepacketiser re-packetises an H.264 (RFC 6184) or H.265 (RFC 7798)
// stream packet by packet: each source packet's complete NAL units go out
// again as single-NAL packets when they fit our packet size and as
// fragmentation units (FU-A / FU) when they do not. The source's timestamps
// and marker bits are kept as they are, so it needs no access-unit logic
// (B-frames, cameras that never set the marker bit) and adds no delay
// except for reassembling a source's own fragments.
type nalRepacketiser struct {
	h265       bool
	donl       bool // H.265 sprop-max-don-diff > 0: packets carry DONL/DOND fields
	maxPayload int

	frag     []byte // NAL unit being reassembled from source fragments
	fragOn   bool
	lastIn   uint16
	haveIn   bool
	seq      uint16 // next output sequence number
	dropped  uint64 // NAL units lost to broken fragments
	maxFrame int
}

var errBadNAL = errors.New("malformed NAL unit packet")

// maxNALSize bounds a reassembled NAL unit (a 4K keyframe is a few MB).
const maxNALSize = 8 << 20

func newNALRepacketiser(h265, donl bool, maxPayload int, firstSeq uint16) *nalRepacketiser {
	return &nalRepacketiser{h265: h265, donl: donl, maxPayload: maxPayload, seq: firstSeq, maxFrame: maxNALSize}
}

// reset forgets a partly reassembled NAL unit (source restart).
func (r *nalRepacketiser) reset() {
	r.frag, r.fragOn, r.haveIn = nil, false, false
}

// process turns one source packet into served packets; ts is the served
// timestamp. A malformed packet returns errBadNAL and nothing.
func (r *nalRepacketiser) process(in *rtp.Packet, ts uint32) ([]*rtp.Packet, error) {
	if r.haveIn && in.SequenceNumber != r.lastIn+1 && r.fragOn {
		// A fragment went missing: the NAL unit being reassembled is lost.
		r.frag, r.fragOn = nil, false
		r.dropped++
	}
	r.lastIn, r.haveIn = in.SequenceNumber, true
	nalus, err := r.depacketise(in.Payload)
	if err != nil {
		return nil, err
	}
	for _, n := range nalus {
		if !r.validNAL(n) {
			return nil, errBadNAL
		}
	}
	var outs []*rtp.Packet
	for _, n := range nalus {
		outs = r.packetise(outs, n, in, ts)
	}
	if len(outs) > 0 {
		outs[len(outs)-1].Marker = in.Marker
	}
	return outs, nil
}

// validNAL reports whether n is a plain NAL unit (not a packetisation
// type) with a well-formed header: what we serve must parse again.
func (r *nalRepacketiser) validNAL(n []byte) bool {
	if r.h265 {
		return len(n) >= 2 && n[0]&0x80 == 0 && n[1]&0x07 != 0 && (n[0]>>1)&0x3f <= 40
	}
	return len(n) >= 1 && n[0]&0x80 == 0 && n[0]&0x1f >= 1 && n[0]&0x1f <= 23
}

// depacketise returns the NAL units a payload completes.
func (r *nalRepacketiser) depacketise(p []byte) ([][]byte, error) {
	if r.h265 {
		return r.depacketise265(p)
	}
	if len(p) < 1 || p[0]&0x80 != 0 {
		return nil, errBadNAL
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		r.fragOn = false
		return [][]byte{p}, nil
	case t == 24: // STAP-A
		r.fragOn = false
		return splitAggregate(p[1:])
	case t == 28: // FU-A
		if len(p) < 3 {
			return nil, errBadNAL
		}
		hdr := (p[0] & 0xe0) | (p[1] & 0x1f)
		return r.fragment(p[1]&0x80 != 0, p[1]&0x40 != 0, []byte{hdr}, p[2:])
	}
	return nil, errBadNAL // STAP-B, MTAP, FU-B: interleaved mode, not supported
}

func (r *nalRepacketiser) depacketise265(p []byte) ([][]byte, error) {
	if len(p) < 2 || p[0]&0x80 != 0 || p[1]&0x07 == 0 {
		return nil, errBadNAL
	}
	don := 0
	if r.donl {
		don = 2
	}
	switch t := (p[0] >> 1) & 0x3f; {
	case t <= 40:
		r.fragOn = false
		if don > 0 {
			if len(p) < 2+don+1 {
				return nil, errBadNAL
			}
			return [][]byte{append([]byte{p[0], p[1]}, p[2+don:]...)}, nil
		}
		return [][]byte{p}, nil
	case t == 48: // AP
		r.fragOn = false
		b := p[2:]
		if don > 0 {
			// First unit has a DONL, the others a 1-byte DOND.
			return splitAggregateDON(b)
		}
		return splitAggregate(b)
	case t == 49: // FU
		if len(p) < 3 {
			return nil, errBadNAL
		}
		fu := p[2]
		body := p[3:]
		if don > 0 && fu&0x80 != 0 {
			if len(body) < 2 {
				return nil, errBadNAL
			}
			body = body[2:]
		}
		ft := fu & 0x3f
		hdr := []byte{(p[0] & 0x81) | ft<<1, p[1]}
		return r.fragment(fu&0x80 != 0, fu&0x40 != 0, hdr, body)
	}
	return nil, errBadNAL // PACI and reserved types
}

// fragment adds one FU to the NAL unit being reassembled.
func (r *nalRepacketiser) fragment(start, end bool, hdr, body []byte) ([][]byte, error) {
	if start {
		if r.fragOn {
			r.dropped++ // the previous NAL unit never ended
		}
		r.frag = append(append(r.frag[:0:0], hdr...), body...)
		r.fragOn = true
	} else {
		if !r.fragOn {
			return nil, nil // joined mid-NAL: wait for the next start
		}
		if len(r.frag)+len(body) > r.maxFrame {
			r.frag, r.fragOn = nil, false
			r.dropped++
			return nil, errBadNAL
		}
		r.frag = append(r.frag, body...)
	}
	if !end {
		return nil, nil
	}
	n := r.frag
	r.frag, r.fragOn = nil, false
	return [][]byte{n}, nil
}

// splitAggregate splits an aggregation payload of 16-bit-length-prefixed units.
func splitAggregate(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errBadNAL
		}
		n := int(b[0])<<8 | int(b[1])
		b = b[2:]
		if n == 0 || n > len(b) {
			return nil, errBadNAL
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(out) == 0 {
		return nil, errBadNAL
	}
	return out, nil
}

func splitAggregateDON(b []byte) ([][]byte, error) {
	var out [][]byte
	for first := true; len(b) > 0; first = false {
		skip := 1
		if first {
			skip = 2
		}
		if len(b) < skip+2 {
			return nil, errBadNAL
		}
		b = b[skip:]
		n := int(b[0])<<8 | int(b[1])
		b = b[2:]
		if n == 0 || n > len(b) {
			return nil, errBadNAL
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(out) == 0 {
		return nil, errBadNAL
	}
	return out, nil
}

// packetise appends the packets of one NAL unit.
func (r *nalRepacketiser) packetise(outs []*rtp.Packet, n []byte, in *rtp.Packet, ts uint32) []*rtp.Packet {
	mk := func(payload []byte) *rtp.Packet {
		p := &rtp.Packet{Header: rtp.Header{
			Version: 2, PayloadType: in.PayloadType, SequenceNumber: r.seq, Timestamp: ts, SSRC: in.SSRC,
		}, Payload: payload}
		r.seq++
		return p
	}
	if len(n) <= r.maxPayload {
		return append(outs, mk(n))
	}
	hdrLen := 1
	if r.h265 {
		hdrLen = 2
	}
	if len(n) <= hdrLen {
		return outs
	}
	var ind []byte // FU indicator (H.264) or payload header (H.265), then the FU header
	var typ byte
	if r.h265 {
		typ = (n[0] >> 1) & 0x3f
		ind = []byte{(n[0] & 0x81) | 49<<1, n[1]}
	} else {
		typ = n[0] & 0x1f
		ind = []byte{(n[0] & 0xe0) | 28}
	}
	body := n[hdrLen:]
	chunk := r.maxPayload - len(ind) - 1
	for first := true; len(body) > 0; first = false {
		c := min(chunk, len(body))
		fu := typ
		if first {
			fu |= 0x80
		}
		if c == len(body) {
			fu |= 0x40
		}
		p := make([]byte, 0, len(ind)+1+c)
		p = append(append(append(p, ind...), fu), body[:c]...)
		outs = append(outs, mk(p))
		body = body[c:]
	}
	return outs
}
