package media

import (
	"fmt"
	"math"
)

// A tiny bit-exact H.264 Constrained Baseline encoder, so the simulator needs no external encoder.
//
// The picture is a flat grey background with a coloured square that moves one macroblock per frame
// and changes colour. IDR pictures code the background as I_16x16 DC-predicted macroblocks with no
// residual (about one byte each) and the square as I_PCM; P pictures are P_Skip everywhere except
// the square (I_PCM in its new colour) and the macroblocks it left (I_PCM grey). Every P_Skip has a
// zero motion vector because every neighbour is either P_Skip or intra, so the decoded picture is
// exactly what we describe.

const (
	nalSlice   = 1
	nalIDR     = 5
	nalSEI     = 6
	nalSPS     = 7
	nalPPS     = 8
	nalFiller  = 12
	grey       = 128
	log2MaxFrm = 16 // log2_max_frame_num
)

type mbKind uint8

const (
	mbSkip mbKind = iota
	mbI16         // I_16x16, DC prediction, no residual
	mbPCM
)

type mbPlan struct {
	kind    mbKind
	y, u, v byte
}

type h264Encoder struct {
	width, height int
	wMBs, hMBs    int
	fps           int
	maxSliceBytes int // 0: one slice per picture

	sps, pps []byte // NAL units, header byte included

	side     int // square size in macroblocks
	frameNum uint32
	idrID    uint32
	frame    int // pictures since start: drives the square's position and colour
	prevSq   int // top-left mb address of the square in the previous picture, -1 if none
	plan     []mbPlan
}

func newH264Encoder(width, height, fps, bitrateKbps, maxSliceBytes int) (*h264Encoder, error) {
	if width < 16 || height < 16 || width%2 != 0 || height%2 != 0 || width > 4096 || height > 2304 {
		return nil, fmt.Errorf("unsupported size %dx%d: need even sizes from 16x16 to 4096x2304", width, height)
	}
	if fps < 1 || fps > 120 {
		return nil, fmt.Errorf("unsupported fps %d: need 1..120", fps)
	}
	e := &h264Encoder{
		width: width, height: height,
		wMBs: (width + 15) / 16, hMBs: (height + 15) / 16,
		fps: fps, maxSliceBytes: maxSliceBytes,
		prevSq: -1,
	}
	e.side = max(1, e.wMBs/30)
	e.side = min(e.side, e.hMBs)
	e.plan = make([]mbPlan, e.wMBs*e.hMBs)
	e.sps = e.buildSPS(levelFor(e.wMBs*e.hMBs, fps, bitrateKbps))
	e.pps = buildPPS()
	return e, nil
}

// levelFor picks the lowest level whose limits (Table A-1) hold the stream.
func levelFor(frameMBs, fps, kbps int) uint8 {
	levels := []struct {
		idc          uint8
		mbps, fs, br int
	}{
		{10, 1485, 99, 64}, {11, 3000, 396, 192}, {12, 6000, 396, 384}, {13, 11880, 396, 768},
		{20, 11880, 396, 2000}, {21, 19800, 792, 4000}, {22, 20250, 1620, 4000},
		{30, 40500, 1620, 10000}, {31, 108000, 3600, 14000}, {32, 216000, 5120, 20000},
		{40, 245760, 8192, 20000}, {41, 245760, 8192, 50000}, {42, 522240, 8704, 50000},
		{50, 589824, 22080, 135000}, {51, 983040, 36864, 240000}, {52, 2073600, 36864, 240000},
	}
	for _, l := range levels {
		if frameMBs <= l.fs && frameMBs*fps <= l.mbps && kbps <= l.br {
			return l.idc
		}
	}
	return 52
}

func nalu(refIdc, typ byte, rbspBody []byte) []byte {
	rbsp := make([]byte, 0, len(rbspBody)+1)
	rbsp = append(rbsp, refIdc<<5|typ)
	rbsp = append(rbsp, rbspBody...)
	return emulationPreventionAdd(rbsp)
}

func (e *h264Encoder) buildSPS(level uint8) []byte {
	var w bitWriter
	w.u(8, 66)         // profile_idc: Baseline
	w.u(8, 0b11000000) // constraint_set0 and set1: Constrained Baseline
	w.u(8, uint64(level))
	w.ue(0)              // seq_parameter_set_id
	w.ue(log2MaxFrm - 4) // log2_max_frame_num_minus4
	w.ue(2)              // pic_order_cnt_type 2: output order = decode order
	w.ue(1)              // max_num_ref_frames
	w.flag(false)        // gaps_in_frame_num_value_allowed_flag
	w.ue(uint32(e.wMBs - 1))
	w.ue(uint32(e.hMBs - 1))
	w.flag(true) // frame_mbs_only_flag
	w.flag(true) // direct_8x8_inference_flag
	cropR, cropB := (e.wMBs*16-e.width)/2, (e.hMBs*16-e.height)/2
	w.flag(cropR != 0 || cropB != 0)
	if cropR != 0 || cropB != 0 {
		w.ue(0)
		w.ue(uint32(cropR))
		w.ue(0)
		w.ue(uint32(cropB))
	}
	w.flag(true)  // vui_parameters_present_flag
	w.flag(false) // aspect_ratio_info_present_flag
	w.flag(false) // overscan_info_present_flag
	w.flag(false) // video_signal_type_present_flag
	w.flag(false) // chroma_loc_info_present_flag
	w.flag(true)  // timing_info_present_flag
	w.u(32, 1)
	w.u(32, uint64(2*e.fps))
	w.flag(true)  // fixed_frame_rate_flag
	w.flag(false) // nal_hrd_parameters_present_flag
	w.flag(false) // vcl_hrd_parameters_present_flag
	w.flag(false) // pic_struct_present_flag
	w.flag(true)  // bitstream_restriction_flag: tells decoders not to wait for reordering
	w.flag(true)  // motion_vectors_over_pic_boundaries_flag
	w.ue(0)       // max_bytes_per_pic_denom
	w.ue(0)       // max_bits_per_mb_denom
	w.ue(16)      // log2_max_mv_length_horizontal
	w.ue(16)      // log2_max_mv_length_vertical
	w.ue(0)       // max_num_reorder_frames
	w.ue(1)       // max_dec_frame_buffering
	return nalu(3, nalSPS, w.trailing())
}

func buildPPS() []byte {
	var w bitWriter
	w.ue(0)       // pic_parameter_set_id
	w.ue(0)       // seq_parameter_set_id
	w.flag(false) // entropy_coding_mode_flag: CAVLC
	w.flag(false) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)       // num_slice_groups_minus1
	w.ue(0)       // num_ref_idx_l0_default_active_minus1
	w.ue(0)       // num_ref_idx_l1_default_active_minus1
	w.flag(false) // weighted_pred_flag
	w.u(2, 0)     // weighted_bipred_idc
	w.se(0)       // pic_init_qp_minus26
	w.se(0)       // pic_init_qs_minus26
	w.se(0)       // chroma_qp_index_offset
	w.flag(true)  // deblocking_filter_control_present_flag: lets slices switch it off
	w.flag(false) // constrained_intra_pred_flag
	w.flag(false) // redundant_pic_cnt_present_flag
	return nalu(3, nalPPS, w.trailing())
}

// squareColour cycles the hue every four seconds.
func (e *h264Encoder) squareColour() (y, u, v byte) {
	a := 2 * math.Pi * float64(e.frame) / float64(4*e.fps)
	clamp := func(f float64) byte { return byte(max(16, min(240, math.Round(f)))) }
	return 170, clamp(128 + 100*math.Cos(a)), clamp(128 + 100*math.Sin(a))
}

// squareAt returns the top-left macroblock address of the square in the current picture.
func (e *h264Encoder) squareAt() int {
	span := e.wMBs - e.side + 1
	x := e.frame % span
	y := (e.hMBs - e.side) / 2
	return y*e.wMBs + x
}

func (e *h264Encoder) inSquare(top, addr int) bool {
	if top < 0 {
		return false
	}
	tx, ty := top%e.wMBs, top/e.wMBs
	x, y := addr%e.wMBs, addr/e.wMBs
	return x >= tx && x < tx+e.side && y >= ty && y < ty+e.side
}

// encodePicture returns the slice NAL units of the next picture.
func (e *h264Encoder) encodePicture(idr bool) [][]byte {
	sq := e.squareAt()
	cy, cu, cv := e.squareColour()
	for addr := range e.plan {
		p := &e.plan[addr]
		switch {
		case e.inSquare(sq, addr):
			*p = mbPlan{kind: mbPCM, y: cy, u: cu, v: cv}
		case idr:
			x, y := addr%e.wMBs, addr/e.wMBs
			// Macroblocks right of or below the square would DC-predict from it and smear its
			// colour across the picture: code them as grey I_PCM instead.
			if (x > 0 && e.inSquare(sq, addr-1)) || (y > 0 && e.inSquare(sq, addr-e.wMBs)) {
				*p = mbPlan{kind: mbPCM, y: grey, u: grey, v: grey}
			} else {
				*p = mbPlan{kind: mbI16}
			}
		case e.inSquare(e.prevSq, addr):
			*p = mbPlan{kind: mbPCM, y: grey, u: grey, v: grey}
		default:
			*p = mbPlan{kind: mbSkip}
		}
	}
	if idr {
		e.frameNum = 0
	}
	slices := e.encodeSlices(idr)
	if idr {
		e.idrID = (e.idrID + 1) % 65536
	}
	e.frameNum = (e.frameNum + 1) % (1 << log2MaxFrm)
	e.prevSq = sq
	e.frame++
	return slices
}

func (e *h264Encoder) sliceHeader(w *bitWriter, idr bool, firstMB int) {
	w.ue(uint32(firstMB))
	if idr {
		w.ue(7) // slice_type: I, and every slice of the picture is I
	} else {
		w.ue(5) // P, every slice P
	}
	w.ue(0) // pic_parameter_set_id
	w.u(log2MaxFrm, uint64(e.frameNum))
	if idr {
		w.ue(e.idrID)
	} else {
		w.flag(false) // num_ref_idx_active_override_flag
		w.flag(false) // ref_pic_list_modification_flag_l0
	}
	if idr {
		w.flag(false) // no_output_of_prior_pics_flag
		w.flag(false) // long_term_reference_flag
	} else {
		w.flag(false) // adaptive_ref_pic_marking_mode_flag
	}
	w.se(0) // slice_qp_delta
	w.ue(1) // disable_deblocking_filter_idc: keep the square's edges exact
}

// encodeSlices codes e.plan as one slice, or as several of at most maxSliceBytes each.
func (e *h264Encoder) encodeSlices(idr bool) [][]byte {
	var out [][]byte
	typ, ref := byte(nalSlice), byte(2)
	if idr {
		typ, ref = nalIDR, 3
	}
	limitBits := 0
	if e.maxSliceBytes > 0 {
		// Leave room for the NAL header, trailing bits and emulation prevention bytes.
		limitBits = (e.maxSliceBytes*9/10 - 8) * 8
	}

	var w bitWriter
	first, skips, coded := 0, 0, 0
	start := func(addr int) {
		w = bitWriter{}
		first, skips, coded = addr, 0, 0
		e.sliceHeader(&w, idr, addr)
	}
	finish := func() {
		if skips > 0 {
			w.ue(uint32(skips))
		}
		out = append(out, nalu(ref, typ, w.trailing()))
	}
	start(0)
	for addr := range e.plan {
		p := e.plan[addr]
		if p.kind == mbSkip {
			skips++
			continue
		}
		for {
			mark := w
			mark.buf = w.buf[:len(w.buf):len(w.buf)]
			if !idr {
				w.ue(uint32(skips))
			}
			e.writeMB(&w, idr, addr, first)
			if limitBits == 0 || w.bitLen() <= limitBits || coded == 0 && skips == 0 {
				break
			}
			// Too big: close the slice before this macroblock (its skips stay in it) and retry
			// the macroblock at the start of a new slice, where its neighbours differ.
			w = mark
			finish()
			start(addr)
		}
		coded++
		skips = 0
	}
	finish()
	return out
}

func (e *h264Encoder) writeMB(w *bitWriter, idr bool, addr, first int) {
	p := e.plan[addr]
	if p.kind == mbPCM {
		if idr {
			w.ue(25) // I_PCM in an I slice
		} else {
			w.ue(30) // I_PCM in a P slice (5 + 25)
		}
		w.alignZero()
		var s [384]byte
		for i := range 256 {
			s[i] = p.y
		}
		for i := 256; i < 320; i++ {
			s[i] = p.u
		}
		for i := 320; i < 384; i++ {
			s[i] = p.v
		}
		w.bytes(s[:])
		return
	}
	// I_16x16, prediction mode 2 (DC), coded_block_pattern 0: mb_type 1+2 = 3.
	w.ue(3)
	w.ue(0) // intra_chroma_pred_mode: DC
	w.se(0) // mb_qp_delta
	// Intra16x16DCLevel with TotalCoeff 0: coeff_token depends on nC from the neighbours
	// (Table 9-5); I_PCM neighbours count as 16 coefficients, ours as 0.
	x, y := addr%e.wMBs, addr/e.wMBs
	availA := x > 0 && addr-1 >= first
	availB := y > 0 && addr-e.wMBs >= first
	n := func(a int) int {
		if e.plan[a].kind == mbPCM {
			return 16
		}
		return 0
	}
	var nC int
	switch {
	case availA && availB:
		nC = (n(addr-1) + n(addr-e.wMBs) + 1) >> 1
	case availA:
		nC = n(addr - 1)
	case availB:
		nC = n(addr - e.wMBs)
	}
	switch {
	case nC < 2:
		w.u(1, 0b1)
	case nC < 4:
		w.u(2, 0b11)
	case nC < 8:
		w.u(4, 0b1111)
	default:
		w.u(6, 0b000011)
	}
}

// fillerNALs returns filler-data NAL units totalling about n bytes, none bigger than maxNAL.
func fillerNALs(n, maxNAL int) [][]byte {
	var out [][]byte
	for n >= 3 {
		size := min(n, maxNAL)
		f := make([]byte, size)
		f[0] = nalFiller
		for i := 1; i < size-1; i++ {
			f[i] = 0xff
		}
		f[size-1] = 0x80 // rbsp_trailing_bits
		out = append(out, f)
		n -= size
	}
	return out
}
