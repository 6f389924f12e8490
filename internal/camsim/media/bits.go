package media

// bitWriter writes the H.264 RBSP bit syntax (u(n), ue(v), se(v)) MSB first.
type bitWriter struct {
	buf  []byte
	cur  byte
	nbit uint // bits already used in cur
}

func (w *bitWriter) u(n uint, v uint64) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bit(byte(v>>uint(i)) & 1)
	}
}

func (w *bitWriter) bit(b byte) {
	w.cur |= b << (7 - w.nbit)
	w.nbit++
	if w.nbit == 8 {
		w.buf = append(w.buf, w.cur)
		w.cur, w.nbit = 0, 0
	}
}

func (w *bitWriter) flag(b bool) {
	if b {
		w.bit(1)
	} else {
		w.bit(0)
	}
}

// ue writes an unsigned Exp-Golomb code.
func (w *bitWriter) ue(v uint32) {
	x := uint64(v) + 1
	n := uint(0)
	for t := x; t > 1; t >>= 1 {
		n++
	}
	w.u(n, 0)
	w.u(n+1, x)
}

// se writes a signed Exp-Golomb code.
func (w *bitWriter) se(v int32) {
	if v > 0 {
		w.ue(uint32(2*v - 1))
	} else {
		w.ue(uint32(-2 * v))
	}
}

// alignZero pads with zero bits to the next byte boundary (pcm_alignment_zero_bit).
func (w *bitWriter) alignZero() {
	for w.nbit != 0 {
		w.bit(0)
	}
}

// bytes appends whole bytes; the writer must be aligned.
func (w *bitWriter) bytes(b []byte) {
	if w.nbit != 0 {
		panic("media: bitWriter.bytes on unaligned writer")
	}
	w.buf = append(w.buf, b...)
}

// bitLen is the number of bits written so far.
func (w *bitWriter) bitLen() int { return len(w.buf)*8 + int(w.nbit) }

// trailing writes rbsp_trailing_bits and returns the RBSP.
func (w *bitWriter) trailing() []byte {
	w.bit(1)
	w.alignZero()
	return w.buf
}

// emulationPreventionAdd turns an RBSP (header byte included) into a NAL unit payload by inserting
// 0x03 after every two zero bytes that precede a byte <= 3.
func emulationPreventionAdd(rbsp []byte) []byte {
	out := make([]byte, 0, len(rbsp)+len(rbsp)/64+4)
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	// An RBSP ending in 0x00 (cabac_zero_word) would need one more 0x03; ours all end in
	// rbsp_trailing_bits, which is never 0x00.
	return out
}

// emulationPreventionRemove strips the 0x03 bytes emulationPreventionAdd inserted.
func emulationPreventionRemove(nalu []byte) []byte {
	out := make([]byte, 0, len(nalu))
	zeros := 0
	for _, b := range nalu {
		if zeros >= 2 && b == 3 {
			zeros = 0
			continue
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}
