package stream

import (
	"bytes"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// depacketiseAll reassembles the NAL units of served packets.
func depacketiseAll(t *testing.T, h265 bool, pkts []*rtp.Packet) [][]byte {
	t.Helper()
	rd := newNALRepacketiser(h265, false, 1<<16, 0)
	var out [][]byte
	for _, p := range pkts {
		n, err := rd.depacketise(p.Payload)
		if err != nil {
			t.Fatalf("served packet does not parse: %v (% x)", err, p.Payload[:min(8, len(p.Payload))])
		}
		out = append(out, n...)
	}
	return out
}

func TestNALRepacketiserSplitsAndKeepsTiming(t *testing.T) {
	for _, h265 := range []bool{false, true} {
		idr := fill(0x65, 9000, 1)
		if h265 {
			idr = append([]byte{19 << 1, 1}, fill(0x01, 9000, 1)[1:]...) // IDR_W_RADL
		}
		rp := newNALRepacketiser(h265, false, 1460, 100)
		// The camera sends the 9000-byte NAL unit whole, then split in its own FUs of 4000.
		outs, err := rp.process(&rtp.Packet{Header: rtp.Header{SequenceNumber: 1, Timestamp: 7, Marker: true}, Payload: idr}, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if len(o.Payload) > 1460 || o.Timestamp != 5 || o.SequenceNumber != uint16(100+i) || o.Marker != (i == len(outs)-1) {
				t.Fatalf("h265=%v packet %d: len %d ts %d seq %d marker %v", h265, i, len(o.Payload), o.Timestamp, o.SequenceNumber, o.Marker)
			}
		}
		got := depacketiseAll(t, h265, outs)
		if len(got) != 1 || !bytes.Equal(got[0], idr) {
			t.Fatalf("h265=%v: NAL unit not reassembled intact", h265)
		}
	}
}

func TestNALRepacketiserDropsBrokenFragments(t *testing.T) {
	rp := newNALRepacketiser(false, false, 1460, 0)
	start := &rtp.Packet{Header: rtp.Header{SequenceNumber: 1}, Payload: append([]byte{0x7c, 0x85}, make([]byte, 100)...)}
	end := &rtp.Packet{Header: rtp.Header{SequenceNumber: 3}, Payload: append([]byte{0x7c, 0x45}, make([]byte, 100)...)} // seq 2 lost
	if o, _ := rp.process(start, 0); len(o) != 0 {
		t.Fatal("start fragment produced output")
	}
	if o, _ := rp.process(end, 0); len(o) != 0 {
		t.Fatalf("a NAL unit with a lost middle fragment was served (%d packets)", len(o))
	}
	if rp.dropped != 1 {
		t.Fatalf("dropped = %d", rp.dropped)
	}
}

// FuzzNALRepacketise: any payload, as either codec, never panics; whatever
// comes out fits the packet size and parses again to the same NAL units.
func FuzzNALRepacketise(f *testing.F) {
	f.Add([]byte{0x65, 1, 2, 3}, false, true)
	f.Add([]byte{0x7c, 0x85, 1, 2}, false, false)
	f.Add([]byte{0x18, 0, 2, 0x67, 1, 0, 1, 0x68}, false, true)
	f.Add([]byte{0x26, 0x01, 1, 2, 3}, true, true)
	f.Add([]byte{0x62, 0x01, 0x93, 1, 2}, true, false)
	f.Add([]byte{0x60, 0x01, 0, 3, 0x40, 1, 2}, true, true)
	f.Fuzz(func(t *testing.T, payload []byte, h265, marker bool) {
		rp := newNALRepacketiser(h265, false, 64, 0)
		var all []*rtp.Packet
		for i := 0; i < 3; i++ {
			outs, err := rp.process(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Marker: marker}, Payload: payload}, 0)
			if err != nil {
				if len(outs) != 0 {
					t.Fatal("error with output")
				}
				continue
			}
			for _, o := range outs {
				if len(o.Payload) > 64 {
					t.Fatalf("served payload of %d bytes > 64", len(o.Payload))
				}
			}
			all = append(all, outs...)
		}
		rd := newNALRepacketiser(h265, false, 1<<20, 0)
		for i, p := range all {
			p.SequenceNumber = uint16(i)
			if _, err := rd.process(p, 0); err != nil {
				t.Fatalf("served packet does not parse: %v", err)
			}
		}
		_ = validPayload(nil, payload)
	})
}

func FuzzH265Scan(f *testing.F) {
	f.Add([]byte{0x40, 0x01, 0x0c})
	f.Add([]byte{0x60, 0x01, 0, 3, 0x40, 1, 2})
	f.Add([]byte{0x62, 0x01, 0x93, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		key, vps, sps, pps := h265Scan(p)
		if !key && vps != nil {
			t.Fatal("a VPS without key")
		}
		_, _ = sps, pps
	})
}

// FuzzValidPayload: the codec check of every payload never panics.
func FuzzValidPayload(f *testing.F) {
	f.Add([]byte{0x65, 1})
	f.Add([]byte{0, 16, 1, 2})
	f.Add([]byte{0x40, 0x01})
	formats := []format.Format{
		&format.H264{}, &format.H265{}, &format.MJPEG{}, &format.MPEG4Audio{SizeLength: 13},
		&format.MPEG4Audio{}, &format.LPCM{BitDepth: 24, ChannelCount: 2}, &format.LPCM{}, &format.Opus{}, nil,
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, fo := range formats {
			_ = validPayload(fo, p)
		}
	})
}
