package stream

import (
	"bytes"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/hashicorp/go-hclog"
	"github.com/pion/rtp"
)

// formatFwd normalises one source format for readers:
//   - H.264 packetization-mode 0 is served as mode 1 (a mode-0 stream is a
//     valid mode-1 stream; gortsplib refuses mode 0 when UDP is on);
//   - H.264 and H.265 packets larger than the server's packet size switch
//     the format to re-packetising (nalRepacketiser): complete NAL units go
//     out again as single-NAL or FU packets at the server's packet size;
//     H.265 with DON fields is always re-packetised (and served without);
//   - in-band SPS/PPS (and VPS) changes update the served format (and so
//     the SDP);
//   - a source SSRC change (camera restart) keeps sequence numbers and
//     timestamps continuous for readers;
//   - oversized packets of any other codec cannot be split here: they are
//     dropped and counted (the track's status says so).
//
// Everything else passes through with its payload untouched.
type formatFwd struct {
	src, out format.Format
	h264     *format.H264 // served H.264 format, nil otherwise
	h265     *format.H265
	clock    int

	rp         *nalRepacketiser // non-nil once re-packetising
	donl       bool
	haveOut    bool
	lastOutSeq uint16
	seqOffset  uint16
	lastOutTS  uint32
	lastWall   time.Time
	tsOffset   uint32
	ssrc       uint32
	haveSSRC   bool

	oversized uint64 // packets dropped for being larger than the packet size
	malformed uint64 // packets the re-packetiser could not parse

	mjpeg        bool // RTP/JPEG: the size comes from each frame's JPEG header
	jpegW, jpegH int
}

func newFormatFwd(f format.Format) *formatFwd {
	ff := &formatFwd{src: f, out: f, clock: f.ClockRate()}
	switch t := f.(type) {
	case *format.MJPEG:
		ff.mjpeg = true
	case *format.H264:
		sps, pps := t.SPS, t.PPS
		ff.h264 = &format.H264{
			PayloadTyp:        t.PayloadTyp,
			SPS:               bytes.Clone(sps),
			PPS:               bytes.Clone(pps),
			PacketizationMode: 1,
		}
		ff.out = ff.h264
	case *format.H265:
		vps, sps, pps := t.VPS, t.SPS, t.PPS
		ff.h265 = &format.H265{PayloadTyp: t.PayloadTyp, VPS: bytes.Clone(vps), SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}
		ff.donl = t.MaxDONDiff > 0
		ff.out = ff.h265
	}
	return ff
}

// resolution parses the served SPS; fps is the frame rate it declares (0 if none).
func (ff *formatFwd) resolution() (w, h int, fps float64) {
	switch {
	case ff.h264 != nil:
		sps := ff.h264.SPS
		var s h264.SPS
		if len(sps) > 0 && s.Unmarshal(sps) == nil {
			return s.Width(), s.Height(), s.FPS()
		}
	case ff.h265 != nil:
		sps := ff.h265.SPS
		var s h265.SPS
		if len(sps) > 0 && s.Unmarshal(sps) == nil {
			return s.Width(), s.Height(), s.FPS()
		}
	case ff.mjpeg:
		return ff.jpegW, ff.jpegH, 0
	}
	return 0, 0, 0
}

// process turns one source packet into the packets to serve.
func (ff *formatFwd) process(in *rtp.Packet, now time.Time, maxPacket int, log hclog.Logger, pathName string) (outs []*rtp.Packet, paramsChanged bool) {
	if ff.haveSSRC && in.SSRC != ff.ssrc && ff.haveOut {
		// The camera restarted its RTP session: continue our timeline.
		el := uint32(now.Sub(ff.lastWall).Seconds() * float64(ff.clock))
		if el == 0 {
			el = 1
		}
		ff.tsOffset = ff.lastOutTS + el - in.Timestamp
		ff.seqOffset = ff.lastOutSeq + 1 - in.SequenceNumber
		if ff.rp != nil {
			ff.rp.reset()
		}
		log.Debug("source SSRC changed", "path", pathName)
	}
	ff.ssrc, ff.haveSSRC = in.SSRC, true
	ts := in.Timestamp + ff.tsOffset

	switch {
	case ff.mjpeg:
		// RFC 2435 main header of a frame's first fragment (offset 0):
		// width and height in 8-pixel units in bytes 6 and 7 (0: not given).
		if p := in.Payload; len(p) >= 8 && p[1] == 0 && p[2] == 0 && p[3] == 0 && p[6] != 0 && p[7] != 0 {
			ff.jpegW, ff.jpegH = int(p[6])*8, int(p[7])*8
		}
	case ff.h264 != nil:
		_, sps, pps := h264Scan(in.Payload)
		if sps != nil || pps != nil {
			curSPS, curPPS := ff.h264.SPS, ff.h264.PPS
			if sps == nil {
				sps = curSPS
			}
			if pps == nil {
				pps = curPPS
			}
			if !bytes.Equal(sps, curSPS) || !bytes.Equal(pps, curPPS) {
				// Set directly, then the caller reloads the description
				// (ServerStream.ReloadDesc): gortsplib serves DESCRIBE from a copy.
				ff.h264.SPS, ff.h264.PPS = bytes.Clone(sps), bytes.Clone(pps)
				paramsChanged = true
			}
		}
	case ff.h265 != nil:
		_, vps, sps, pps := h265Scan(in.Payload)
		if vps != nil || sps != nil || pps != nil {
			cv, cs, cp := ff.h265.VPS, ff.h265.SPS, ff.h265.PPS
			nv, ns, np := pick(vps, cv), pick(sps, cs), pick(pps, cp)
			if !bytes.Equal(nv, cv) || !bytes.Equal(ns, cs) || !bytes.Equal(np, cp) {
				ff.h265.VPS, ff.h265.SPS, ff.h265.PPS = bytes.Clone(nv), bytes.Clone(ns), bytes.Clone(np)
				paramsChanged = true
			}
		}
	}
	if (ff.h264 != nil || ff.h265 != nil) && ff.rp == nil && (in.MarshalSize() > maxPacket || ff.donl) {
		seq := in.SequenceNumber + ff.seqOffset
		if ff.haveOut {
			seq = ff.lastOutSeq + 1
		}
		ff.rp = newNALRepacketiser(ff.h265 != nil, ff.donl, maxPacket-12, seq)
		log.Info("source sends RTP packets larger than the server's packet size: re-packetising", "path", pathName,
			"codec", codecName(ff.src), "size", in.MarshalSize(), "max", maxPacket)
	}
	if ff.rp != nil {
		outs, err := ff.rp.process(in, ts)
		if err != nil {
			ff.malformed++
			return nil, paramsChanged
		}
		for _, o := range outs {
			ff.emitted(o, now)
		}
		return outs, paramsChanged
	}
	if in.MarshalSize() > maxPacket {
		if ff.oversized == 0 {
			log.Warn("source sends RTP packets larger than the server's packet size for a codec that cannot be re-packetised here: dropping them",
				"path", pathName, "codec", codecName(ff.src), "size", in.MarshalSize(), "max", maxPacket)
		}
		ff.oversized++
		return nil, paramsChanged
	}
	out := &rtp.Packet{Header: in.Header, Payload: in.Payload}
	out.SequenceNumber = in.SequenceNumber + ff.seqOffset
	out.Timestamp = ts
	ff.emitted(out, now)
	return []*rtp.Packet{out}, paramsChanged
}

// isKey reports whether a served packet starts a keyframe (parameter sets
// or an IDR/IRAP picture): where a new reader can start decoding.
func (ff *formatFwd) isKey(payload []byte) bool {
	switch {
	case ff.h264 != nil:
		k, _, _ := h264Scan(payload)
		return k
	case ff.h265 != nil:
		k, _, _, _ := h265Scan(payload)
		return k
	}
	return false
}

func pick(n, cur []byte) []byte {
	if n == nil {
		return cur
	}
	return n
}

func (ff *formatFwd) emitted(out *rtp.Packet, now time.Time) {
	ff.haveOut = true
	ff.lastOutSeq = out.SequenceNumber
	ff.lastOutTS = out.Timestamp
	ff.lastWall = now
}

// h264Scan reports whether an H.264 RTP payload starts a keyframe and
// returns any SPS/PPS it carries whole (single NAL unit or STAP-A).
func h264Scan(p []byte) (key bool, sps, pps []byte) {
	if len(p) == 0 {
		return false, nil, nil
	}
	one := func(n []byte) {
		if len(n) == 0 {
			return
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps, key = n, true
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeIDR:
			key = true
		}
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		one(p)
	case t == 24: // STAP-A
		for b := p[1:]; len(b) >= 2; {
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n > len(b) {
				break
			}
			one(b[:n])
			b = b[n:]
		}
	case t == 28: // FU-A
		if len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == byte(h264.NALUTypeIDR) {
			key = true
		}
	}
	return key, sps, pps
}

// h265Scan is h264Scan for H.265 (single, AP and FU packets).
func h265Scan(p []byte) (key bool, vps, sps, pps []byte) {
	if len(p) < 2 {
		return false, nil, nil, nil
	}
	one := func(n []byte) {
		if len(n) < 2 {
			return
		}
		switch t := (n[0] >> 1) & 0x3f; {
		case t == 32:
			vps, key = n, true
		case t == 33:
			sps = n
		case t == 34:
			pps = n
		case t >= 16 && t <= 21:
			key = true
		}
	}
	switch t := (p[0] >> 1) & 0x3f; {
	case t == 48: // AP
		for b := p[2:]; len(b) >= 2; {
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n > len(b) {
				break
			}
			one(b[:n])
			b = b[n:]
		}
	case t == 49: // FU
		if len(p) >= 3 && p[2]&0x80 != 0 {
			if ft := p[2] & 0x3f; ft >= 16 && ft <= 21 {
				key = true
			}
		}
	default:
		one(p)
	}
	return key, vps, sps, pps
}

// codecName names a format for stream status (gortsplib's Format.Codec is
// deprecated); the names are the ones it used.
func codecName(f format.Format) string {
	switch f.(type) {
	case *format.H264:
		return "H264"
	case *format.H265:
		return "H265"
	case *format.AV1:
		return "AV1"
	case *format.VP8:
		return "VP8"
	case *format.VP9:
		return "VP9"
	case *format.MJPEG:
		return "M-JPEG"
	case *format.MPEG1Video:
		return "MPEG-1/2 Video"
	case *format.MPEG4Video:
		return "MPEG-4 Video"
	case *format.MPEG4Audio:
		return "MPEG-4 Audio"
	case *format.MPEG4AudioLATM:
		return "MPEG-4 Audio LATM"
	case *format.MPEG1Audio:
		return "MPEG-1/2 Audio"
	case *format.G711:
		return "G711"
	case *format.G722:
		return "G722"
	case *format.G726:
		return "G726"
	case *format.LPCM:
		return "LPCM"
	case *format.Opus:
		return "Opus"
	case *format.Vorbis:
		return "Vorbis"
	case *format.Speex:
		return "Speex"
	case *format.AC3:
		return "AC-3"
	case *format.KLV:
		return "KLV"
	case *format.MPEGTS:
		return "MPEG-TS"
	}
	return "Generic"
}
