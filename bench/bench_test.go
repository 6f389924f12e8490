package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/internal/testutil"
)

func TestParseBenchOutput(t *testing.T) {
	out := []byte("goos: linux\ngoarch: amd64\npkg: github.com/camwarden/camwarden/daemon/access\n" +
		"cpu: Intel(R) Xeon(R) Processor\nBenchmarkAllows-2   \t41234567\t        28.10 ns/op\t       0 B/op\t       0 allocs/op\nPASS\n")
	r, err := parseBenchOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Benchmark != "BenchmarkAllows-2" || r.NsPerOp != 28.1 || r.AllocsPerOp != 0 || r.BytesPerOp != 0 {
		t.Fatalf("%+v", r)
	}
	if _, err := parseBenchOutput([]byte("FAIL\tgithub.com/x [build failed]\n")); err == nil {
		t.Fatal("a failed build parsed")
	}
}

func TestDistOf(t *testing.T) {
	if d := distOf(nil); d.N != 0 {
		t.Fatalf("%+v", d)
	}
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	d := distOf(s)
	if d.N != 100 || d.MinMs != 1 || d.P50Ms != 50 || d.P99Ms != 99 || d.MaxMs != 100 {
		t.Fatalf("%+v", d)
	}
	if s[0] != 100*time.Millisecond {
		t.Fatal("distOf sorted its argument in place")
	}
}

func TestTableShowsVerdicts(t *testing.T) {
	r := &Results{Machine: Machine{CPUs: 2, CPUModel: "x", GoVersion: "go1.26.8"},
		Fanout: []FanoutResult{
			{Readers: 1000, Server: "floor", Client: "raw", Connected: 1000, DaemonCores: 0.15, PacketsPerS: 400},
			{Readers: 1000, Server: "camwarden", Client: "raw", Connected: 1000, DaemonCores: 0.3, FloorCores: 0.15, FloorRatio: 2, RSSMarginalKB: 50, PacketsPerS: 400},
			{Readers: 2000, Server: "camwarden", Client: "raw", Connected: 2000, DaemonCores: 0.5, PacketsPerS: 400, LatencyP99Ms: 30, RSSMarginalKB: 20},
			{Readers: 10, Error: "boom"}},
		Policy:     &PolicyResult{Benchmark: "BenchmarkAllows-2", NsPerOp: 28, AllocsPerOp: 0},
		Revocation: &RevocationResult{LiveReaders: 200, Revocations: 100, Closed: 100, Latency: Dist{P99Ms: 250}},
		Startup:    &StartupResult{Ready: Dist{P50Ms: 100, MaxMs: 120, N: 5}},
		TTFF:       &TTFFResult{Readers: 20, Keyframe: Dist{P99Ms: 50}},
		Errors:     []string{"fanout 10: boom"}}
	tab := r.Table()
	for _, want := range []string{
		"CPU <= 1.5x the floor: MISSED (2.00x", // 0.3 vs 0.15
		"at 1000 readers: steady-state RSS growth <= 40 KB/reader: MISSED",
		"at 2000 readers: steady-state RSS growth <= 40 KB/reader: ok",
		"every reader keeps up: ok",
		"p99 <= 50 ms: ok",
		"<= 0.8 cores: ok",
		"0 allocs: ok",
		"target p99 < 10 ms and 0 lost: MISSED", // 250 ms
		"target p50 < 300 ms: ok",
		"first IDR packet p50 0.0 ms, p99 50.0 ms",
		"ERROR",
		"fanout 10: boom",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	dir := t.TempDir()
	latest, stamped, err := r.WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{latest, stamped} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var back Results
		if err := json.Unmarshal(b, &back); err != nil || back.Machine.CPUs != 2 || len(back.Fanout) != 4 {
			t.Fatalf("%s: %v %+v", p, err, back.Machine)
		}
	}
}

// TestRunSmoke runs every scenario at toy sizes on the real binaries: it
// proves the plumbing (processes, notify socket, admin API, rtspload's
// events, the namespace re-exec) that make bench relies on.
func TestRunSmoke(t *testing.T) {
	bin := filepath.Dir(testutil.Binary(t, "camwardend"))
	work := t.TempDir()
	only := []string{"startup", "fanout", "ttff", "revocation"}
	if os.Geteuid() == 0 {
		// The discovery child is this test binary re-executed; see TestMain.
		only = append(only, "discovery")
	}
	res, err := Run(context.Background(), Options{
		BinDir: bin, RepoDir: testutil.RepoRoot(), WorkDir: work, Only: only,
		Fanout: []int{2, 4}, RawFanout: []int{3}, Warmup: 200 * time.Millisecond, Measure: time.Second,
		StartupRuns: 2, StartupCameras: 20, StartupUsers: 50, DiscoveryCameras: 3,
		TTFFReaders: 2, LiveReaders: 5, RevokeUsers: 3, RevokeUnaffected: 2,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("errors:\n%s", strings.Join(res.Errors, "\n"))
	}
	// gortsplib 2 and 4, then the floor and camwarden at 3 raw readers.
	if len(res.Fanout) != 4 || res.Fanout[0].Client != "gortsplib" || res.Fanout[2].Server != "floor" ||
		res.Fanout[3].Client != "raw" || res.Fanout[3].Server != "camwarden" || res.Fanout[3].Readers != 3 {
		t.Fatalf("fan-out rows %+v", res.Fanout)
	}
	for _, f := range res.Fanout {
		if f.Connected != f.Readers || f.PacketsPerS < 100 || f.DaemonCores < 0 || f.RSSKB <= 0 ||
			f.LatencyP50Ms <= 0 || f.ReadersEnded != 0 || f.Server == "camwarden" && f.IngestKbps < 1000 {
			t.Errorf("fan-out %+v", f)
		}
	}
	// At toy sizes the floor may use no measurable CPU; when it does, the
	// camwarden row carries the ratio.
	if fl, f := res.Fanout[2], res.Fanout[3]; fl.DaemonCores > 0 && (f.FloorCores != fl.DaemonCores || f.FloorRatio <= 0) {
		t.Errorf("no floor ratio on the camwarden row: %+v (floor %+v)", f, fl)
	}
	if res.Fanout[1].RSSMarginalKB == 0 {
		t.Error("no marginal RSS for the second step")
	}
	if s := res.Startup; s.Ready.N != 2 || s.Ready.P50Ms <= 0 || s.Cameras != 20 || s.EmptyReady.N != 2 {
		t.Errorf("startup %+v", s)
	}
	if v := res.Revocation; v.Closed != 3 || v.Latency.N != 3 || v.UnaffectedGone != 0 || v.UnaffectedPkts == 0 {
		t.Errorf("revocation %+v", v)
	}
	if f := res.TTFF; f.Readers != 2 || f.Keyframe.P50Ms <= 0 {
		t.Errorf("ttff %+v", f)
	}
	if d := res.Discovery; d != nil && (d.AllFoundWindowMs == 0 || d.DefaultFound != 3) {
		t.Errorf("discovery %+v", d)
	}
	if !strings.Contains(res.Table(), "Fan-out") {
		t.Error("table has no fan-out section")
	}
}

// TestMain lets the discovery scenario re-execute this test binary as its
// namespace child, as it re-executes benchrun under make bench.
func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == DiscoveryChildArg {
		n := 0
		for _, c := range os.Args[4] {
			n = n*10 + int(c-'0')
		}
		os.Exit(DiscoveryChild(context.Background(), os.Args[2], os.Args[3], n))
	}
	os.Exit(m.Run())
}
