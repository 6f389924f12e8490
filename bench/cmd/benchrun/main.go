// Command benchrun is `make bench`: it runs camwarden's benchmark suite
// against the binaries in --bin-dir, prints one table and writes the
// results as JSON (latest.json and a timestamped copy) into --out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/bench"
)

func main() {
	// Re-executed under `unshare -n` for the discovery scenario.
	if len(os.Args) == 5 && os.Args[1] == bench.DiscoveryChildArg {
		n, _ := strconv.Atoi(os.Args[4])
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		os.Exit(bench.DiscoveryChild(ctx, os.Args[2], os.Args[3], n))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o       bench.Options
		fanout  = fs.String("fanout", "100", "fan-out steps read by gortsplib clients; empty = none")
		rawFan  = fs.String("raw-fanout", "500,1000,2000", "fan-out steps read by rtspload's light raw client, each after the floor (bare Go fan-out) at the same count; empty = none")
		only    = fs.String("only", "", "comma-separated scenarios to run ("+strings.Join(bench.Scenarios, ", ")+"); empty = all")
		out     = fs.String("out", "bench/results", "directory for latest.json and the timestamped copy")
		verbose = fs.Bool("v", false, "log progress to stderr")
	)
	fs.StringVar(&o.BinDir, "bin-dir", "bin", "directory holding camwardend, camsim and rtspload")
	fs.BoolVar(&o.NoFloor, "no-floor", false, "do not run the floor before each raw fan-out step")
	fs.StringVar(&o.RepoDir, "repo", ".", "module root (for go test -bench)")
	fs.DurationVar(&o.Measure, "measure", 10*time.Second, "fan-out measurement window")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "fan-out warm-up after every reader receives")
	fs.IntVar(&o.StartupRuns, "startup-runs", 5, "daemon starts timed by the start-up scenario")
	fs.IntVar(&o.TTFFReaders, "ttff-readers", 50, "readers of the time-to-first-frame scenario")
	fs.IntVar(&o.DiscoveryCameras, "discovery-cameras", 100, "cameras of the discovery scenario")
	fs.IntVar(&o.Cameras, "cameras", 64, "cameras of the many-cameras scenario")
	fs.IntVar(&o.CameraKbps, "camera-kbps", 2000, "their bitrate (kbit/s)")
	fs.IntVar(&o.LiveReaders, "live-readers", 2000, "readers playing while the time-to-first-frame readers join")
	fs.StringVar(&o.ProfileDir, "profile-dir", "", "record perf data of the daemon and a CPU profile of rtspload per fan-out step here")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ok bool
	if o.Fanout, ok = counts(*fanout, "--fanout", stderr); !ok {
		return 2
	}
	if o.RawFanout, ok = counts(*rawFan, "--raw-fanout", stderr); !ok {
		return 2
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	level := hclog.Warn
	if *verbose {
		level = hclog.Info
	}
	o.Logger = hclog.New(&hclog.LoggerOptions{Name: "bench", Output: stderr, Level: level})
	work, err := os.MkdirTemp("", "camwarden-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	defer os.RemoveAll(work)
	o.WorkDir = work

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, o)
	if res == nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	latest, stamped, werr := res.WriteJSON(*out)
	fmt.Fprint(stdout, res.Table())
	if werr != nil {
		fmt.Fprintln(stderr, "benchrun: write results:", werr)
		return 1
	}
	fmt.Fprintf(stdout, "results: %s (copy %s)\n", latest, stamped)
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	if len(res.Errors) > 0 {
		return 1
	}
	return 0
}

func counts(list, flag string, stderr io.Writer) ([]int, bool) {
	out := []int{} // empty, not nil: an empty flag means no steps
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "benchrun: bad %s entry %q\n", flag, s)
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}
