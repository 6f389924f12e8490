package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/camwarden/camwarden/bench/load"
)

// TTFFResult is the time-to-first-frame scenario.
type TTFFResult struct {
	Readers     int  `json:"readers"`
	LiveReaders int  `json:"live_readers"` // other readers playing meanwhile
	Keyframe    Dist `json:"keyframe"`     // DESCRIBE -> first packet of an IDR picture
	FirstPacket Dist `json:"first_packet"` // DESCRIBE -> first RTP packet of any kind
	// GOPS is the camera's keyframe interval, the worst case without a GOP cache.
	GOPS float64 `json:"gop_s"`
	// SamplesMs are the keyframe times in join order, to spot outliers.
	SamplesMs []float64 `json:"samples_ms"`
	// Where the time goes: DESCRIBE (401 and the Digest retry), SETUP,
	// PLAY, and PLAY's answer to the first IDR packet.
	Describe   Dist   `json:"describe"`
	Setup      Dist   `json:"setup"`
	Play       Dist   `json:"play"`
	ToKeyframe Dist   `json:"play_to_keyframe"`
	Error      string `json:"error,omitempty"`
}

// runTTFF has readers join a live stream one after another at random
// moments and times their first keyframe.
func runTTFF(ctx context.Context, o *Options, cam *camsimProc, readers int) (res TTFFResult) {
	const gop = 2 * time.Second // camsim's main profile
	res.GOPS = gop.Seconds()
	fail := func(err error) TTFFResult {
		res.Error = err.Error()
		return res
	}
	pw := secret()
	_, d, err := startScenario(ctx, o, cam, "ttff", []readerUser{{"viewer", pw, "cam1/*"}})
	if err != nil {
		return fail(err)
	}
	defer d.stop()
	if o.LiveReaders > 0 {
		// The joiners come while this many readers play (raw clients).
		lp, err := startLoad(o.BinDir, pw+"\n", "--addr", d.rtsp, "--path", "cam1/main", "--readers", fmt.Sprint(o.LiveReaders),
			"--user", "viewer", "--password-stdin", "--client", "raw", "--duration", "0", "--concurrency", "32")
		if err != nil {
			return fail(err)
		}
		defer lp.finish()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		_, err = lp.next(rctx, "ready")
		cancel()
		if err != nil {
			return fail(err)
		}
		res.LiveReaders = o.LiveReaders
	}
	// Joining "a live stream": wait one GOP so the daemon has seen a
	// keyframe. (A reader that comes within the first GOP after the camera
	// went live waits for the camera's next keyframe, up to a GOP.)
	if !sleepCtx(ctx, gop+200*time.Millisecond) {
		return fail(ctx.Err())
	}
	var kf, fp []time.Duration
	var steps [4][]time.Duration
	for i := range readers {
		// A random phase within the GOP.
		if !sleepCtx(ctx, time.Duration(rand.Int64N(int64(gop)))) {
			return fail(ctx.Err())
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := load.StartReader(sctx, i, load.ReaderConfig{Addr: d.rtsp, Path: "cam1/main", User: "viewer", Password: pw})
		if err != nil {
			cancel()
			return fail(err)
		}
		for {
			if k, ok := r.FirstKeyframe(); ok {
				kf = append(kf, k)
				res.SamplesMs = append(res.SamplesMs, load.Ms(k))
				p, _ := r.FirstPacket()
				fp = append(fp, p)
				if d, su, pl, tk, ok := r.Steps(); ok {
					steps[0], steps[1], steps[2], steps[3] = append(steps[0], d), append(steps[1], su), append(steps[2], pl), append(steps[3], tk)
				}
				break
			}
			if !sleepCtx(sctx, 2*time.Millisecond) {
				r.Close()
				cancel()
				return fail(fmt.Errorf("reader %d: no keyframe within 10 s", i))
			}
		}
		cancel()
		r.Close()
	}
	res.Readers = len(kf)
	res.Keyframe, res.FirstPacket = distOf(kf), distOf(fp)
	res.Describe, res.Setup, res.Play, res.ToKeyframe = distOf(steps[0]), distOf(steps[1]), distOf(steps[2]), distOf(steps[3])
	return res
}
