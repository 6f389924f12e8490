package load

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

func TestBucketsCoverAndBound(t *testing.T) {
	prevB := -1
	for _, us := range []uint64{0, 1, 15, 16, 17, 31, 32, 33, 100, 999, 1000, 4095, 4096, 65535, 1 << 20, 1 << 30} {
		b := bucketOf(us)
		if b < prevB {
			t.Fatalf("bucketOf(%d) = %d < previous %d: not monotonic", us, b, prevB)
		}
		prevB = b
		up := bucketUpper(b)
		if up < us {
			t.Fatalf("bucketUpper(bucketOf(%d)) = %d < value", us, up)
		}
		if us >= histSub && float64(up-us) > float64(us)/histSub+1 {
			t.Fatalf("bucket of %d too wide: upper %d", us, up)
		}
		if b > 0 && bucketUpper(b-1) >= us {
			t.Fatalf("value %d also fits bucket %d (upper %d)", us, b-1, bucketUpper(b-1))
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	// 1..1000 ms: p50 ~ 500 ms, p99 ~ 990 ms, within one bucket (6.25%).
	vals := make([]time.Duration, 1000)
	for i := range vals {
		vals[i] = time.Duration(i+1) * time.Millisecond
	}
	rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	var a, b Histogram
	for i, v := range vals {
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	h.Merge(&a)
	h.Merge(&b)
	if h.N != 1000 || h.Min != time.Millisecond || h.Max != time.Second {
		t.Fatalf("N=%d Min=%v Max=%v", h.N, h.Min, h.Max)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/histSub {
			t.Errorf("q%.2f = %v, want %v (+6%%)", c.q, got, c.want)
		}
	}
	s := h.Summary(true)
	var n uint64
	for _, bk := range s.Buckets {
		n += bk[1]
	}
	if n != 1000 || s.P50Ms < 500 || s.MaxMs != 1000 {
		t.Fatalf("summary %+v", s)
	}
	h.Record(-time.Second)
	if h.Min != 0 {
		t.Fatalf("negative duration recorded as %v", h.Min)
	}
}

// sei builds camsim's timestamp SEI for UnixNano ns (no emulation
// prevention needed for the values used here).
func sei(ns int64) []byte {
	b := []byte{0x06, 5, 24}
	b = append(b, "camwarden-lat-ts"...)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	return append(b, 0x80)
}

func stapA(nalus ...[]byte) []byte {
	out := []byte{0x18} // F=0 NRI=0 type 24
	for _, n := range nalus {
		out = binary.BigEndian.AppendUint16(out, uint16(len(n)))
		out = append(out, n...)
	}
	return out
}

func TestInspect(t *testing.T) {
	const ns = 0x1122334455667788
	sps := []byte{0x67, 0x42, 0xc0, 0x28}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := []byte{0x65, 0x88, 0x84}
	nonIDR := []byte{0x41, 0x9a}
	cases := []struct {
		name    string
		payload []byte
		idr     bool
		ts      bool
	}{
		{"single SEI", sei(ns), false, true},
		{"single IDR", idr, true, false},
		{"single non-IDR", nonIDR, false, false},
		{"STAP-A SEI SPS PPS IDR", stapA(sei(ns), sps, pps, idr), true, true},
		{"STAP-A SEI non-IDR", stapA(sei(ns), nonIDR), false, true},
		{"FU-A IDR start", []byte{0x7c, 0x85, 1, 2, 3}, true, false},
		{"FU-A IDR middle", []byte{0x7c, 0x05, 1, 2, 3}, false, false},
		{"FU-A non-IDR start", []byte{0x7c, 0x81, 1, 2}, false, false},
		{"STAP-A truncated", []byte{0x18, 0x00, 0x09, 0x65}, false, false},
		{"empty", nil, false, false},
		{"other SEI", []byte{0x06, 1, 1, 0, 0x80}, false, false},
	}
	for _, c := range cases {
		pi := Inspect(c.payload)
		if pi.IDR != c.idr || pi.SentAt.IsZero() == c.ts {
			t.Errorf("%s: got IDR=%v SentAt=%v, want IDR=%v ts=%v", c.name, pi.IDR, pi.SentAt, c.idr, c.ts)
		}
		if c.ts && pi.SentAt.UnixNano() != ns {
			t.Errorf("%s: SentAt %d, want %d", c.name, pi.SentAt.UnixNano(), int64(ns))
		}
	}
}

func FuzzInspect(f *testing.F) {
	f.Add(sei(0x1122334455667788))
	f.Add(stapA(sei(1), []byte{0x65, 1}))
	f.Add([]byte{0x7c, 0x85, 1})
	f.Add([]byte{0x18, 0xff, 0xff})
	f.Add([]byte{0x06, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Inspect(b)
	})
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	stat := []byte("4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 500 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 3*time.Second { // (250+50) ticks at 100 Hz
		t.Fatalf("cpu = %v, want 3s", cpu)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short stat parsed")
	}
	status := []byte("Name:\tx\nVmPeak:\t  2000 kB\nVmRSS:\t   1234 kB\n")
	if v := parseStatusKB(status, "VmRSS:"); v != 1234 {
		t.Fatalf("VmRSS = %d", v)
	}
	if v := parseStatusKB(status, "VmSwap:"); v != -1 {
		t.Fatalf("missing key = %d", v)
	}
	ps, err := parseProcStat([]byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n"), time.Unix(10, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ps.Busy != 1500*time.Millisecond || ps.Idle != 8500*time.Millisecond {
		t.Fatalf("busy %v idle %v", ps.Busy, ps.Idle)
	}
	if _, err := parseProcStat([]byte("intr 1 2 3\n"), time.Now()); err == nil {
		t.Fatal("bad /proc/stat parsed")
	}
	a := MachineSample{At: time.Unix(0, 0), Busy: 0}
	b := MachineSample{At: time.Unix(2, 0), Busy: 3 * time.Second}
	if c := MachineCores(a, b); c != 1.5 {
		t.Fatalf("MachineCores = %v", c)
	}
}

func TestSampleProcSelf(t *testing.T) {
	s0, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn a little CPU so the counter moves.
	deadline := time.Now().Add(150 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	s1, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s1.RSSKB <= 0 || s1.SyscR < 0 {
		t.Fatalf("sample %+v", s1)
	}
	if c := Cores(s0, s1); c <= 0 || c > 64 {
		t.Fatalf("cores %v after a busy loop (x=%d)", c, x)
	}
	if _, err := SampleProc(1 << 30); err == nil {
		t.Fatal("sampled a process that does not exist")
	}
	if x == 0 {
		t.Fatal("busy loop did not run")
	}
}
