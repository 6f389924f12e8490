package stream

import (
	"math"
	"testing"
	"time"
)

// A stream's bitrate and frame rate are real from its first second, not 0
// (the window used to count only complete seconds since it started).
func TestRatesFromTheFirstSecond(t *testing.T) {
	start := time.Unix(1_700_000_000, 500_000_000) // half-way through a second
	w := rateWindow{start: start}
	const fps, frameBytes = 25, 10_000
	at := func(d time.Duration) (float64, float64) {
		// Feed the frames up to start+d, 40 ms apart, then measure at start+d.
		return w.rates(start.Add(d))
	}
	next := time.Duration(0)
	feed := func(until time.Duration) {
		for ; next < until; next += time.Second / fps {
			w.add(start.Add(next), frameBytes, true)
		}
	}
	for _, d := range []time.Duration{500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 7 * time.Second} {
		feed(d)
		bps, gotFPS := at(d)
		if math.Abs(gotFPS-fps) > 0.1*fps {
			t.Errorf("after %v: %.1f fps, want about %d", d, gotFPS, fps)
		}
		if want := float64(fps * frameBytes * 8); math.Abs(bps-want) > 0.1*want {
			t.Errorf("after %v: %.0f bit/s, want about %.0f", d, bps, want)
		}
	}
	if bps, f := (&rateWindow{start: start}).rates(start.Add(2 * time.Second)); bps != 0 || f != 0 {
		t.Errorf("a silent stream shows %.0f bit/s %.1f fps", bps, f)
	}
}
