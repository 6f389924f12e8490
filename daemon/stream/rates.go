package stream

import "time"

// rateWindow counts bytes and frames in one-second buckets over the last
// rateSpan seconds.
const rateSpan = 5

type rateWindow struct {
	start   time.Time
	buckets [rateSpan + 1]struct {
		sec    int64
		bytes  uint64
		frames uint64
	}
}

func (w *rateWindow) add(now time.Time, n int, frame bool) {
	sec := now.Unix()
	b := &w.buckets[sec%int64(len(w.buckets))]
	if b.sec != sec {
		b.sec, b.bytes, b.frames = sec, 0, 0
	}
	b.bytes += uint64(n)
	if frame {
		b.frames++
	}
}

// minRateElapsed keeps a window a few packets old from showing spikes.
const minRateElapsed = 250 * time.Millisecond

// rates returns bits per second and frames per second. A window younger
// than rateSpan counts everything since it started, the current second
// included, over the time elapsed, so a stream shows real rates from its
// first second; an older one counts its last rateSpan complete seconds.
func (w *rateWindow) rates(now time.Time) (bps, fps float64) {
	sec := now.Unix()
	if el := now.Sub(w.start); el < rateSpan*time.Second {
		el = max(el, minRateElapsed)
		from := w.start.Unix()
		var bytes, frames uint64
		for _, b := range w.buckets {
			if b.sec >= from && b.sec <= sec {
				bytes += b.bytes
				frames += b.frames
			}
		}
		return float64(bytes*8) / el.Seconds(), float64(frames) / el.Seconds()
	}
	var bytes, frames uint64
	for _, b := range w.buckets {
		if b.sec >= sec-rateSpan && b.sec < sec {
			bytes += b.bytes
			frames += b.frames
		}
	}
	return float64(bytes*8) / rateSpan, float64(frames) / rateSpan
}
