package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/camwarden/camwarden/onvif"
)

// DiscoveryResult is the discovery scenario.
type DiscoveryResult struct {
	Cameras int `json:"cameras"`
	// AllFoundWindowMs is the shortest probe window (of an increasing series)
	// after which onvif.Probe had found every camera: an upper bound on the
	// time to find them all.
	AllFoundWindowMs float64 `json:"all_found_window_ms"`
	// DefaultProbe is a Probe with the default window: found and the time
	// the call took.
	DefaultFound  int        `json:"default_window_found"`
	DefaultCallMs float64    `json:"default_window_call_ms"`
	Tries         []ProbeTry `json:"tries"`
	CamsimReadyMs float64    `json:"camsim_ready_ms"`
	Namespace     string     `json:"namespace"`
	Skipped       string     `json:"skipped,omitempty"` // why it did not run
	Error         string     `json:"error,omitempty"`
}

// ProbeTry is one Probe call of the series.
type ProbeTry struct {
	WindowMs float64 `json:"window_ms"`
	Found    int     `json:"found"`
	CallMs   float64 `json:"call_ms"`
}

// DiscoveryChildArg is the hidden first argument that makes benchrun run
// the discovery scenario in the private network namespace it was re-executed
// into.
const DiscoveryChildArg = "__discovery-child"

// runDiscovery re-executes this program under `unshare -n` (root only) and
// collects the child's JSON result.
func runDiscovery(ctx context.Context, o *Options) (res DiscoveryResult) {
	res.Namespace = "unshare -n"
	if os.Geteuid() != 0 {
		res.Skipped = "needs root for unshare -n (CI runs as root)"
		return res
	}
	exe, err := os.Executable()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", exe, DiscoveryChildArg, o.BinDir, o.WorkDir, fmt.Sprint(o.DiscoveryCameras))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		res.Error = fmt.Sprintf("discovery child: %v (%v)\n%s", err, jerr, tail(stderr.String(), 2000))
	}
	return res
}

// DiscoveryChild runs inside the private network namespace: it brings up
// lo with multicast, starts camsim with n cameras and probes lo with
// increasing windows until every camera is found. The result is printed as
// JSON on stdout.
func DiscoveryChild(ctx context.Context, binDir, workDir string, n int) int {
	res := discoveryChild(ctx, binDir, workDir, n)
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if res.Error != "" {
		return 1
	}
	return 0
}

func discoveryChild(ctx context.Context, binDir, workDir string, n int) (res DiscoveryResult) {
	res.Namespace = "unshare -n"
	res.Cameras = n
	fail := func(err error) DiscoveryResult {
		res.Error = err.Error()
		return res
	}
	// Refuse to probe anything but a fresh namespace: only lo may exist.
	ifs, err := net.Interfaces()
	if err != nil {
		return fail(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		return fail(fmt.Errorf("not in a private network namespace (interfaces %v): refusing to probe", ifs))
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "lo", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", "lo"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("ip %v: %v: %s", args, err, out))
		}
	}
	dir, err := os.MkdirTemp(workDir, "discovery-")
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	cam, err := startCamsim(ctx, binDir, dir, n, "admin", secret(), "--discovery-interfaces", "lo")
	if err != nil {
		return fail(err)
	}
	defer cam.stop()
	res.CamsimReadyMs = float64(time.Since(t0).Microseconds()) / 1000
	probe := func(window time.Duration) (int, time.Duration, error) {
		t := time.Now()
		devs, err := onvif.Probe(ctx, onvif.ProbeOptions{Interfaces: []string{"lo"}, Window: window})
		return len(devs), time.Since(t), err
	}
	for _, w := range []time.Duration{10, 20, 30, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000} {
		w *= time.Millisecond
		found, took, err := probe(w)
		if err != nil {
			return fail(fmt.Errorf("probe (window %v): %w", w, err))
		}
		res.Tries = append(res.Tries, ProbeTry{WindowMs: float64(w.Milliseconds()), Found: found, CallMs: float64(took.Microseconds()) / 1000})
		if found >= n {
			res.AllFoundWindowMs = float64(w.Milliseconds())
			break
		}
	}
	found, took, err := probe(0)
	if err != nil {
		return fail(fmt.Errorf("probe (default window): %w", err))
	}
	res.DefaultFound, res.DefaultCallMs = found, float64(took.Microseconds())/1000
	if res.AllFoundWindowMs == 0 {
		return fail(errors.New("no probe window found every camera"))
	}
	return res
}
