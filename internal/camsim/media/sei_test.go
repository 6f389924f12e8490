package media

import (
	"bytes"
	"testing"
	"time"
)

func TestTimestampSEIRoundTrip(t *testing.T) {
	for _, ts := range []time.Time{
		time.Now(),
		time.Unix(0, 0x0000000300000001), // zero bytes that need emulation prevention
		time.Unix(0, 0x0000010000000000),
		time.Unix(1, 0),
	} {
		n := timestampSEI(ts)
		rbsp := emulationPreventionRemove(n)
		if len(rbsp) != 28 {
			t.Fatalf("SEI RBSP is %d bytes, want 28", len(rbsp))
		}
		if bytes.Contains(n, []byte{0, 0, 0}) || bytes.Contains(n, []byte{0, 0, 1}) || bytes.Contains(n, []byte{0, 0, 2}) {
			t.Fatalf("SEI % x contains a start-code emulation", n)
		}
		got, ok := ParseTimestampSEI(n)
		if !ok || !got.Equal(ts) {
			t.Fatalf("ParseTimestampSEI = %v, %v; want %v", got, ok, ts)
		}
	}
}

func TestParseTimestampSEIRejects(t *testing.T) {
	good := timestampSEI(time.Unix(0, 12345))
	other := bytes.Clone(good)
	other[4] ^= 0xff // UUID byte
	// A recovery point SEI (type 6) followed by our message still parses.
	chained := emulationPreventionAdd(append([]byte{nalSEI, 6, 1, 0x84},
		emulationPreventionRemove(good)[1:]...))
	for _, tc := range []struct {
		name string
		nalu []byte
		ok   bool
	}{
		{"empty", nil, false},
		{"slice", []byte{0x65, 0x88, 0x80}, false},
		{"forbidden bit", append([]byte{0x86}, good[1:]...), false},
		{"other uuid", other, false},
		{"truncated", good[:20], false},
		{"size past end", []byte{nalSEI, 5, 0xff, 0xff, 10}, false},
		{"chained", chained, true},
	} {
		_, ok := ParseTimestampSEI(tc.nalu)
		if ok != tc.ok {
			t.Errorf("%s: ok=%v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func FuzzParseTimestampSEI(f *testing.F) {
	f.Add(timestampSEI(time.Unix(0, 0x0000000300000001)))
	f.Add(timestampSEI(time.Now()))
	f.Add([]byte{nalSEI, 5, 0xff, 0xff, 0xff})
	f.Add([]byte{nalSEI, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{nalSEI, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, ok := ParseTimestampSEI(b)
		if !ok {
			return
		}
		// Whatever parsed must round-trip through our own writer.
		again, ok2 := ParseTimestampSEI(timestampSEI(ts))
		if !ok2 || !again.Equal(ts) {
			t.Fatalf("re-encoded %v parsed as %v, %v", ts, again, ok2)
		}
	})
}

func FuzzEmulationPrevention(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 3, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 && b[len(b)-1] == 0 {
			return // RBSPs never end in 0x00 (see emulationPreventionAdd)
		}
		n := emulationPreventionAdd(b)
		for i := 2; i < len(n); i++ {
			if n[i-2] == 0 && n[i-1] == 0 && n[i] <= 2 {
				t.Fatalf("start-code emulation at %d in % x", i, n)
			}
		}
		if back := emulationPreventionRemove(n); !bytes.Equal(back, b) {
			t.Fatalf("round trip % x -> % x -> % x", b, n, back)
		}
	})
}
