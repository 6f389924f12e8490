package media

import (
	"encoding/binary"
	"time"
)

// TimestampUUID identifies camsim's latency-probe SEI (user_data_unregistered). It is the ASCII
// text "camwarden-lat-ts".
var TimestampUUID = [16]byte{'c', 'a', 'm', 'w', 'a', 'r', 'd', 'e', 'n', '-', 'l', 'a', 't', '-', 't', 's'}

const seiUserDataUnregistered = 5

// timestampSEI builds the SEI NAL unit that opens every access unit: user_data_unregistered
// carrying TimestampUUID and the send time as big-endian UnixNano.
func timestampSEI(t time.Time) []byte {
	rbsp := make([]byte, 0, 28)
	rbsp = append(rbsp, nalSEI, seiUserDataUnregistered, 24)
	rbsp = append(rbsp, TimestampUUID[:]...)
	rbsp = binary.BigEndian.AppendUint64(rbsp, uint64(t.UnixNano()))
	rbsp = append(rbsp, 0x80) // rbsp_trailing_bits
	return emulationPreventionAdd(rbsp)
}

// ParseTimestampSEI returns the send time carried by a camsim latency-probe SEI NAL unit (header
// byte first, emulation prevention bytes still in, no start code). It reports false for any other
// NAL unit, including SEIs that carry other messages only.
func ParseTimestampSEI(nalu []byte) (time.Time, bool) {
	if len(nalu) < 2 || nalu[0]&0x80 != 0 || nalu[0]&0x1f != nalSEI {
		return time.Time{}, false
	}
	b := emulationPreventionRemove(nalu[1:])
	// sei_rbsp: sei_message()s until rbsp_trailing_bits (a lone 0x80 byte).
	for len(b) > 1 || (len(b) == 1 && b[0] != 0x80) {
		typ, n, ok := seiVarint(b)
		if !ok {
			return time.Time{}, false
		}
		b = b[n:]
		size, n, ok := seiVarint(b)
		if !ok || size > len(b)-n {
			return time.Time{}, false
		}
		payload := b[n : n+size]
		b = b[n+size:]
		if typ == seiUserDataUnregistered && size >= 24 && [16]byte(payload[:16]) == TimestampUUID {
			ns := int64(binary.BigEndian.Uint64(payload[16:24]))
			return time.Unix(0, ns), true
		}
	}
	return time.Time{}, false
}

// seiVarint reads an SEI payloadType/payloadSize: a run of 0xFF bytes (255 each) plus a last byte.
func seiVarint(b []byte) (v, n int, ok bool) {
	for n < len(b) {
		c := b[n]
		n++
		v += int(c)
		if c != 0xff {
			return v, n, true
		}
		if v > 1<<20 { // no sane SEI is this big; stop before overflowing
			return 0, 0, false
		}
	}
	return 0, 0, false
}
