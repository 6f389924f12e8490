package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"math"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/rtp"
)

// maxPayload caps RTP payloads like a camera on a 1500-byte MTU does.
const maxPayload = 1400

func random32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// generate produces the profile's access units at its frame rate until ctx ends. It owns ps.h264.
func (in *instance) generate(ctx context.Context, ps *profileStream) {
	p := ps.p
	log := in.s.log.With("profile", p.Name)
	var fua *rtph264.Encoder
	if !p.PacketizationMode0 {
		fua = &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: maxPayload}
		if err := fua.Init(); err != nil {
			log.Error("rtp encoder", "error", err)
			return
		}
	}
	seq := uint16(random32()) // packetization-mode=0 numbering
	tsBase := random32()
	gopFrames := max(1, int(p.GOP.Seconds()*float64(p.FPS)+0.5))
	frameBytes := p.BitrateKbps * 1000 / 8 / p.FPS

	period := time.Second / time.Duration(p.FPS)
	tick := time.NewTicker(period)
	defer tick.Stop()
	start := time.Now() // monotonic: RTP time never jumps with the wall clock
	sinceIDR := 0
	lastIdx := int64(-1)
	fillerMax := 60000 // stays below the 64 KiB interleaved frame limit when Oversized merges it
	if p.PacketizationMode0 {
		fillerMax = maxPayload
	}
	forceIDR := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if in.s.currentFaults().Stall {
			// A stalled camera sends nothing; restart with a keyframe so readers recover at once.
			forceIDR = true
			continue
		}
		now := time.Now()
		idr := forceIDR || sinceIDR >= gopFrames
		if idr {
			sinceIDR, forceIDR = 0, false
		}
		sinceIDR++

		au := [][]byte{timestampSEI(now)}
		if idr {
			au = append(au, ps.h264.sps, ps.h264.pps)
		}
		au = append(au, ps.h264.encodePicture(idr)...)
		size := 0
		for _, n := range au {
			size += len(n)
		}
		// Filler NALs follow the slices, as H.264 requires. One big filler NAL fragments into
		// full-size FU-A packets; mode 0 needs one packet per NAL.
		au = append(au, fillerNALs(frameBytes-size, fillerMax)...)

		// The 90 kHz clock follows the monotonic clock, snapped to the frame grid so scheduling
		// jitter never gives two frames the same or a reversed timestamp.
		frameIdx := int64(math.Round(now.Sub(start).Seconds() * float64(p.FPS)))
		frameIdx = max(frameIdx, lastIdx+1)
		lastIdx = frameIdx
		ts := tsBase + uint32(frameIdx*90000/int64(p.FPS))
		var pkts []*rtp.Packet
		if fua != nil {
			var err error
			pkts, err = fua.Encode(au)
			if err != nil {
				log.Error("rtp encode", "error", err)
				return
			}
		} else {
			for i, n := range au {
				pkts = append(pkts, &rtp.Packet{
					Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq,
						Marker: i == len(au)-1},
					Payload: n,
				})
				seq++
			}
		}
		for _, pkt := range pkts {
			pkt.Timestamp = ts
			if err := ps.stream.WritePacketRTPWithNTP(ps.media, pkt, now); err != nil {
				log.Debug("write packet", "error", err)
			}
		}
	}
}
