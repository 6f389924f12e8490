package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Scenario names, in the order Run runs them.
var Scenarios = []string{"policy", "startup", "discovery", "fanout", "cameras", "ttff", "revocation"}

// Options configure Run.
type Options struct {
	BinDir  string // camwardend, camwarden, camsim, rtspload
	RepoDir string // module root, for `go test -bench`
	WorkDir string // temporary files; removed by the caller
	GoTool  string // default "go"
	Fanout  []int  // reader counts (default 10, 100, 500, 1000)
	// RawFanout are the fan-out steps read by rtspload's raw client, whose
	// cost per packet is a fraction of gortsplib's: they show what the
	// daemon does when the load client is not competing for the CPU. Each
	// runs the floor (load.Floor) first, unless NoFloor.
	RawFanout        []int
	NoFloor          bool
	Warmup, Measure  time.Duration // per fan-out step (default 2 s, 10 s)
	StartupRuns      int           // default 5
	DiscoveryCameras int           // default 100
	TTFFReaders      int           // default 50
	LiveReaders      int           // readers playing while the TTFF readers join (default 2000)
	RevokeUsers      int           // revoked users, one reader each (default 100)
	RevokeUnaffected int           // readers of the unaffected user (default 1900: 2000 live with the revoked)
	StartupCameras   int           // default 1000
	Cameras          int           // many-cameras scenario: cameras (default 64)
	CameraKbps       int           // their main profile's bitrate (default 2000)
	CameraReaders    int           // readers of each (default 3)
	StartupUsers     int           // default 10000
	Only             []string      // scenarios to run; empty = all
	ProfileDir       string        // if set: perf record of the daemon and a CPU profile of rtspload per fan-out step
	Logger           hclog.Logger

	cameraPassword string
}

// Machine describes where the figures were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	GOARCH    string `json:"goarch"`
}

// Results is everything one run measured; it is the JSON under bench/results.
type Results struct {
	Started    time.Time         `json:"started"`
	DurationS  float64           `json:"duration_s"`
	Machine    Machine           `json:"machine"`
	Policy     *PolicyResult     `json:"policy,omitempty"`
	Startup    *StartupResult    `json:"startup,omitempty"`
	Discovery  *DiscoveryResult  `json:"discovery,omitempty"`
	Fanout     []FanoutResult    `json:"fanout,omitempty"`
	Cameras    *CamerasResult    `json:"cameras,omitempty"`
	TTFF       *TTFFResult       `json:"ttff,omitempty"`
	Revocation *RevocationResult `json:"revocation,omitempty"`
	Errors     []string          `json:"errors,omitempty"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOARCH: runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func (o *Options) defaults() {
	if o.GoTool == "" {
		o.GoTool = "go"
	}
	if o.Fanout == nil {
		o.Fanout = []int{100}
	}
	if o.RawFanout == nil {
		o.RawFanout = []int{500, 1000, 2000}
	}
	if o.Warmup <= 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Measure <= 0 {
		o.Measure = 10 * time.Second
	}
	if o.StartupRuns <= 0 {
		o.StartupRuns = 5
	}
	if o.DiscoveryCameras <= 0 {
		o.DiscoveryCameras = 100
	}
	if o.TTFFReaders <= 0 {
		o.TTFFReaders = 50
	}
	if o.RevokeUsers <= 0 {
		o.RevokeUsers = 100
	}
	if o.RevokeUnaffected <= 0 {
		o.RevokeUnaffected = 1900
	}
	if o.LiveReaders == 0 {
		o.LiveReaders = 2000
	}
	if o.Cameras <= 0 {
		o.Cameras = 64
	}
	if o.CameraKbps <= 0 {
		o.CameraKbps = 2000
	}
	if o.CameraReaders <= 0 {
		o.CameraReaders = 3
	}
	if o.StartupCameras <= 0 {
		o.StartupCameras = 1000
	}
	if o.StartupUsers <= 0 {
		o.StartupUsers = 10000
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}

func (o *Options) wants(s string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, s) }

// Run runs the selected scenarios one after another (never two at once, so
// none disturbs another's CPU figures) and returns what they measured. A
// failing scenario records its error and the others still run.
func Run(ctx context.Context, o Options) (*Results, error) {
	o.defaults()
	for _, s := range o.Only {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	for _, b := range []string{"camwardend", "camsim", "rtspload"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s not built in %s (run make build): %w", b, o.BinDir, err)
		}
	}
	o.cameraPassword = secret()
	res := &Results{Started: time.Now().UTC(), Machine: machine()}
	log := o.Logger
	step := func(name string, f func()) {
		if !o.wants(name) || ctx.Err() != nil {
			return
		}
		log.Info("running", "scenario", name)
		t := time.Now()
		f()
		log.Info("done", "scenario", name, "took", time.Since(t).Round(time.Millisecond))
	}
	note := func(scenario, e string) {
		if e != "" {
			res.Errors = append(res.Errors, scenario+": "+e)
		}
	}
	step("policy", func() {
		r := runPolicy(ctx, &o)
		res.Policy = &r
		note("policy", r.Error)
	})
	step("startup", func() {
		r := runStartup(ctx, &o)
		res.Startup = &r
		note("startup", r.Error)
	})
	step("discovery", func() {
		r := runDiscovery(ctx, &o)
		res.Discovery = &r
		note("discovery", r.Error)
	})
	var cam *camsimProc
	needCam := o.wants("fanout") || o.wants("cameras") || o.wants("ttff") || o.wants("revocation")
	if needCam && ctx.Err() == nil {
		dir, err := os.MkdirTemp(o.WorkDir, "camsim-")
		if err == nil {
			cam, err = startCamsim(ctx, o.BinDir, dir, 1, "admin", o.cameraPassword,
				"--discovery-interfaces", "none", "--discovery-port", "0")
		}
		if err != nil {
			note("camsim", err.Error())
		} else {
			defer cam.stop()
		}
	}
	if cam != nil {
		step("fanout", func() {
			for _, n := range o.Fanout {
				if ctx.Err() != nil {
					return
				}
				log.Info("fan-out", "readers", n)
				r := runFanout(ctx, &o, cam, n, "gortsplib")
				if k := len(res.Fanout); k > 0 && r.Error == "" {
					if prev := res.Fanout[k-1]; prev.Error == "" && r.Readers > prev.Readers {
						r.RSSMarginalKB = float64((r.RSSKB-r.BaselineRSSKB)-(prev.RSSKB-prev.BaselineRSSKB)) / float64(r.Readers-prev.Readers)
					}
				}
				res.Fanout = append(res.Fanout, r)
				note(fmt.Sprintf("fanout %d", n), r.Error)
			}
			var prev *FanoutResult
			for _, n := range o.RawFanout {
				if ctx.Err() != nil {
					return
				}
				var fl FanoutResult
				if !o.NoFloor {
					log.Info("floor (bare Go fan-out, raw client)", "readers", n)
					fl = runFloor(ctx, &o, cam, n)
					res.Fanout = append(res.Fanout, fl)
					note(fmt.Sprintf("floor %d", n), fl.Error)
				}
				log.Info("fan-out (raw client)", "readers", n)
				r := runFanout(ctx, &o, cam, n, "raw")
				if fl.Error == "" && fl.DaemonCores > 0 && r.Error == "" {
					r.FloorCores, r.FloorRatio = fl.DaemonCores, r.DaemonCores/fl.DaemonCores
				}
				if prev != nil && r.Error == "" && r.Readers > prev.Readers {
					r.RSSMarginalKB = float64((r.RSSKB-r.BaselineRSSKB)-(prev.RSSKB-prev.BaselineRSSKB)) / float64(r.Readers-prev.Readers)
				}
				res.Fanout = append(res.Fanout, r)
				if r.Error == "" {
					prev = &res.Fanout[len(res.Fanout)-1]
				}
				note(fmt.Sprintf("fanout %d raw", n), r.Error)
			}
		})
		step("cameras", func() {
			r := runCameras(ctx, &o)
			res.Cameras = &r
			note("cameras", r.Error)
		})
		step("ttff", func() {
			r := runTTFF(ctx, &o, cam, o.TTFFReaders)
			res.TTFF = &r
			note("ttff", r.Error)
		})
		step("revocation", func() {
			r := runRevocation(ctx, &o, cam)
			res.Revocation = &r
			note("revocation", r.Error)
		})
	}
	res.DurationS = time.Since(res.Started).Seconds()
	return res, ctx.Err()
}

// WriteJSON writes latest.json and a timestamped copy into dir.
func (r *Results) WriteJSON(dir string) (latest, stamped string, err error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	b = append(b, '\n')
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	latest = filepath.Join(dir, "latest.json")
	stamped = filepath.Join(dir, r.Started.Format("20060102T150405Z")+".json")
	for _, p := range []string{stamped, latest} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", "", err
		}
	}
	return latest, stamped, nil
}
