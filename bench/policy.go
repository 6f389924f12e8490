package bench

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// PolicyResult is BenchmarkAllows of package daemon/access.
type PolicyResult struct {
	Benchmark   string  `json:"benchmark"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	Error       string  `json:"error,omitempty"`
}

var benchLineRE = regexp.MustCompile(`^(BenchmarkAllows\S*)\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) B/op\s+([\d.]+) allocs/op`)

// parseBenchOutput finds the BenchmarkAllows line of `go test -bench`.
func parseBenchOutput(out []byte) (PolicyResult, error) {
	for _, line := range regexp.MustCompile(`\r?\n`).Split(string(out), -1) {
		m := benchLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := PolicyResult{Benchmark: m[1]}
		r.NsPerOp, _ = strconv.ParseFloat(m[2], 64)
		r.BytesPerOp, _ = strconv.ParseFloat(m[3], 64)
		r.AllocsPerOp, _ = strconv.ParseFloat(m[4], 64)
		return r, nil
	}
	return PolicyResult{}, fmt.Errorf("no BenchmarkAllows result in output:\n%s", tail(string(out), 1500))
}

func runPolicy(ctx context.Context, o *Options) PolicyResult {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.GoTool, "test", "-count", "1", "-run", "^$", "-bench", "BenchmarkAllows", "-benchmem", "./daemon/access")
	cmd.Dir = o.RepoDir
	out, err := cmd.CombinedOutput()
	r, perr := parseBenchOutput(out)
	if perr != nil {
		if err != nil {
			perr = fmt.Errorf("go test: %v: %w", err, perr)
		}
		r.Error = perr.Error()
	}
	return r
}
