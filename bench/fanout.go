package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/camwarden/camwarden/bench/load"
)

// FanoutResult is one row of the fan-out table.
type FanoutResult struct {
	Readers int `json:"readers"`
	// Client is rtspload's reader implementation: "gortsplib" or "raw".
	Client string `json:"client"`
	// Server is "camwarden" or "floor" (load.Floor, the bare Go fan-out).
	Server string `json:"server"`
	// FloorCores is the floor's CPU at the same readers in the same run
	// (camwarden rows); FloorRatio is DaemonCores / FloorCores.
	FloorCores     float64 `json:"floor_cores,omitempty"`
	FloorRatio     float64 `json:"floor_ratio,omitempty"`
	Connected      int     `json:"connected"` // readers that connected and received
	RampS          float64 `json:"ramp_s"`
	WindowS        float64 `json:"window_s"`
	DaemonCores    float64 `json:"daemon_cores"`
	BaselineRSSKB  int64   `json:"baseline_rss_kb"` // daemon with the camera live and 0 readers
	RSSKB          int64   `json:"rss_kb"`
	RSSPerReaderKB float64 `json:"rss_per_reader_kb"` // (RSS - baseline) / readers
	// RSSMarginalKB is the growth over the previous (smaller) step, per
	// added reader: it cancels what the baseline holds that readers reuse
	// (e.g. the argon2id buffer of the daemon's start-up).
	RSSMarginalKB   float64 `json:"rss_marginal_kb_per_reader,omitempty"`
	PacketsPerS     float64 `json:"packets_per_reader_s"`
	LostTotal       uint64  `json:"lost_total"`
	LostPerReader   float64 `json:"lost_per_reader"`
	MaxLostReader   uint64  `json:"max_lost_one_reader"`
	SeqResets       uint64  `json:"seq_resets"`
	ReadersEnded    int     `json:"readers_ended"`
	LatencyP50Ms    float64 `json:"latency_p50_ms"`
	LatencyP99Ms    float64 `json:"latency_p99_ms"`
	LatencyMaxMs    float64 `json:"latency_max_ms"`
	LoadClientCores float64 `json:"load_client_cores"`
	CamsimCores     float64 `json:"camsim_cores"`
	// MachineCores is the whole machine's busy CPU in the window; what the
	// daemon, load client and camsim do not explain is other work on the box.
	MachineCores float64 `json:"machine_cores"`
	// DaemonWritesPerPkt is the daemon's write syscalls (write, writev) per
	// RTP packet delivered to a reader: 1 without coalescing, ~1/16 when a
	// whole frame burst leaves in one writev.
	DaemonWritesPerPkt float64 `json:"daemon_writes_per_packet"`
	// LoadReadsPerPkt is the same for the load client's reads.
	LoadReadsPerPkt float64 `json:"load_reads_per_packet"`
	IngestKbps      float64 `json:"ingest_kbps"` // the daemon's view of the camera's bitrate
	// The daemon's Go runtime (its /metrics) with the readers live, less
	// the same with none, per reader: where a reader's RSS goes.
	GoroutinesPerReader float64 `json:"goroutines_per_reader,omitempty"`
	StackKBPerReader    float64 `json:"stack_kb_per_reader,omitempty"`
	HeapKBPerReader     float64 `json:"heap_kb_per_reader,omitempty"`
	Error               string  `json:"error,omitempty"`
}

// runFanout measures one camsim camera fanned out to n TCP readers by a
// fresh daemon.
func runFanout(ctx context.Context, o *Options, cam *camsimProc, n int, client string) (res FanoutResult) {
	res.Readers, res.Client, res.Server = n, client, "camwarden"
	userPW := secret()
	_, d, err := startScenario(ctx, o, cam, fmt.Sprintf("fanout-%d", n), []readerUser{{"viewer", userPW, "cam1/*"}})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer d.stop()
	res = measureFanout(ctx, o, res, d.pid(), d.metrics, cam, d.rtsp, "viewer", userPW)
	if sl, err := d.client.StreamList(ctx); err == nil {
		for _, s := range sl.Streams {
			if s.Path == "cam1/main" {
				res.IngestKbps = s.BitrateKbps
			}
		}
	}
	return res
}

// runFloor measures the same camera fanned out to n raw readers by
// load.Floor, the bare Go fan-out (one write per reader per frame): the
// floor the daemon's CPU is compared with in the same run.
func runFloor(ctx context.Context, o *Options, cam *camsimProc, n int) (res FanoutResult) {
	res.Readers, res.Client, res.Server = n, "raw", "floor"
	fp, err := startLoad(o.BinDir, o.cameraPassword+"\n", "floor", "--source", cam.main[0], "--user", "admin", "--password-stdin")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer fp.finish()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ev, err := fp.next(rctx, "floor_ready")
	cancel()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	return measureFanout(ctx, o, res, fp.cmd.Process.Pid, "", cam, ev.Addr, "nobody", "-")
}

// measureFanout runs rtspload's n readers of cam1/main against the server
// at addr (process pid, its /metrics at metrics unless that is empty) and
// fills res with the window's figures.
func measureFanout(ctx context.Context, o *Options, res FanoutResult, pid int, metrics string, cam *camsimProc, addr, user, pw string) FanoutResult {
	return measureFanoutPaths(ctx, o, res, pid, metrics, cam, addr, "cam1/main", user, pw)
}

// measureFanoutPaths is measureFanout with reader i playing entry i of the
// comma-separated paths (modulo their number).
func measureFanoutPaths(ctx context.Context, o *Options, res FanoutResult, pid int, metrics string, cam *camsimProc, addr, paths, user, pw string) FanoutResult {
	n, client := res.Readers, res.Client
	fail := func(err error) FanoutResult {
		res.Error = err.Error()
		return res
	}
	base, err := settledRSS(ctx, pid)
	if err != nil {
		return fail(err)
	}
	res.BaselineRSSKB = base.RSSKB
	var goBase goStats
	if metrics != "" {
		if goBase, err = scrapeGoStats(ctx, metrics); err != nil {
			return fail(err)
		}
	}
	args := []string{"--addr", addr, "--path", paths, "--readers", fmt.Sprint(n),
		"--user", user, "--password-stdin", "--concurrency", "32", "--client", client,
		"--warmup", o.Warmup.String(), "--duration", o.Measure.String()}
	if o.ProfileDir != "" {
		args = append(args, "--cpuprofile", filepath.Join(o.ProfileDir, fmt.Sprintf("rtspload-%s-%d-%s.pprof", res.Server, n, client)))
	}
	lp, err := startLoad(o.BinDir, pw+"\n", args...)
	if err != nil {
		return fail(err)
	}
	defer lp.finish()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	ready, err := lp.next(rctx, "ready")
	if err != nil {
		return fail(err)
	}
	res.RampS = ready.RampMs / 1000
	if _, err := lp.next(rctx, "measure_start"); err != nil {
		return fail(err)
	}
	d0, err := load.SampleProc(pid)
	if err != nil {
		return fail(err)
	}
	if metrics != "" {
		// every reader is playing now (rtspload's report at the end may
		// race with its readers leaving)
		gs, err := scrapeGoStats(ctx, metrics)
		if err != nil {
			return fail(err)
		}
		res.GoroutinesPerReader = float64(gs.Goroutines-goBase.Goroutines) / float64(n)
		res.StackKBPerReader = float64(gs.StackBytes-goBase.StackBytes) / 1024 / float64(n)
		res.HeapKBPerReader = float64(gs.HeapBytes-goBase.HeapBytes) / 1024 / float64(n)
	}
	c0, _ := load.SampleProc(cam.pid())
	m0, _ := load.SampleMachine()
	var perf *exec.Cmd
	if o.ProfileDir != "" && res.Server == "camwarden" {
		// perf samples the daemon's stacks over the window (needs a binary with symbols).
		perf = exec.Command("perf", "record", "-F", "499", "-g", "-p", fmt.Sprint(pid),
			"-o", filepath.Join(o.ProfileDir, fmt.Sprintf("camwardend-%d-%s.perf.data", n, client)), "--", "sleep", fmt.Sprint(o.Measure.Seconds()))
		if err := perf.Start(); err != nil {
			perf = nil
			o.Logger.Warn("perf not started", "error", err)
		}
	}
	ev, err := lp.next(rctx, "report")
	if perf != nil {
		_ = perf.Wait()
	}
	if err != nil {
		return fail(err)
	}
	d1, err := load.SampleProc(pid)
	if err != nil {
		return fail(err)
	}
	c1, _ := load.SampleProc(cam.pid())
	m1, _ := load.SampleMachine()
	res.MachineCores = load.MachineCores(m0, m1)
	r := ev.Report
	res.Connected = r.Readers - r.ConnectErrors
	res.WindowS = r.WindowS
	res.DaemonCores = load.Cores(d0, d1)
	res.CamsimCores = load.Cores(c0, c1)
	res.RSSKB = d1.RSSKB
	if r.Packets > 0 {
		res.DaemonWritesPerPkt = float64(d1.SyscW-d0.SyscW) / float64(r.Packets)
		res.LoadReadsPerPkt = float64(r.ReadSyscalls) / float64(r.Packets)
	}
	res.RSSPerReaderKB = float64(d1.RSSKB-base.RSSKB) / float64(n)
	res.PacketsPerS = r.PacketsPerReaderS
	res.LostTotal = r.Lost
	res.LostPerReader = r.LostPerReader
	res.MaxLostReader = r.MaxLostOneReader
	res.SeqResets = r.SeqResets
	res.ReadersEnded = r.Ended
	res.LatencyP50Ms = r.Latency.P50Ms
	res.LatencyP99Ms = r.Latency.P99Ms
	res.LatencyMaxMs = r.Latency.MaxMs
	res.LoadClientCores = r.CPUCores
	return res
}

// settledRSS samples the daemon until its RSS has stopped falling (the Go
// scavenger returns start-up garbage, such as the argon2id buffer of the
// timing-safe dummy hash, only after the ingest has run some GC cycles):
// no new minimum for 3 s, at most 30 s.
func settledRSS(ctx context.Context, pid int) (load.ProcSample, error) {
	deadline := time.Now().Add(30 * time.Second)
	low, err := load.SampleProc(pid)
	if err != nil {
		return low, err
	}
	lowAt := time.Now()
	for time.Since(lowAt) < 3*time.Second && time.Now().Before(deadline) {
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return low, ctx.Err()
		}
		s, err := load.SampleProc(pid)
		if err != nil {
			return low, err
		}
		// 1% hysteresis so page-level noise does not restart the clock.
		if s.RSSKB < low.RSSKB-low.RSSKB/100 {
			lowAt = time.Now()
		}
		if s.RSSKB < low.RSSKB {
			low = s
		}
	}
	return low, nil
}
