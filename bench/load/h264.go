package load

import (
	"encoding/binary"
	"time"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

// H.264 NAL unit types the readers look at (RFC 6184 for 24 and 28).
const (
	nalIDR   = 5
	nalSEI   = 6
	nalSTAPA = 24
	nalFUA   = 28
)

// PayloadInfo is what a reader needs to know about one H.264 RTP payload.
type PayloadInfo struct {
	SentAt time.Time // camsim's send time, from a timestamp SEI in this payload (zero if none)
	IDR    bool      // the payload carries (the start of) an IDR slice
}

// Inspect looks into one H.264 RTP payload: a single NAL unit, a STAP-A
// aggregate, or an FU-A fragment (only the first fragment says its type).
// It never panics, whatever the bytes (FuzzInspect).
func Inspect(payload []byte) PayloadInfo {
	var pi PayloadInfo
	if len(payload) < 1 {
		return pi
	}
	switch typ := payload[0] & 0x1f; typ {
	case nalSTAPA:
		b := payload[1:]
		for len(b) >= 2 {
			n := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			if n == 0 || n > len(b) {
				break
			}
			pi.single(b[:n])
			b = b[n:]
		}
	case nalFUA:
		if len(payload) >= 2 && payload[1]&0x80 != 0 && payload[1]&0x1f == nalIDR {
			pi.IDR = true
		}
	default:
		pi.single(payload)
	}
	return pi
}

func (pi *PayloadInfo) single(nalu []byte) {
	if len(nalu) == 0 {
		return
	}
	switch nalu[0] & 0x1f {
	case nalIDR:
		pi.IDR = true
	case nalSEI:
		if t, ok := media.ParseTimestampSEI(nalu); ok {
			pi.SentAt = t
		}
	}
}
