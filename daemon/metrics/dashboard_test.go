package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDashboardQueriesExistingMetrics: every metric the shipped Grafana
// dashboard queries is one the daemon exports, so a rename cannot leave a
// panel empty.
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	data, err := os.ReadFile("../../packaging/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	known := exported(t)
	n := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, metric := range unknownMetrics(known, tg.Expr, &n) {
				t.Errorf("panel %q queries %s, which the daemon does not export", p.Title, metric)
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d metric references in the dashboard", n)
	}
}

// TestAlertRules: the shipped alerting rules pass the real promtool and
// use only metrics the daemon exports.
func TestAlertRules(t *testing.T) {
	const rules = "../../packaging/prometheus-alerts.yml"
	out, err := exec.Command("promtool", "check", "rules", rules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	data, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if expr, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			for _, metric := range unknownMetrics(known, expr, &n) {
				t.Errorf("rule queries %s, which the daemon does not export", metric)
			}
		}
	}
	if n < 6 {
		t.Errorf("only %d metric references in the rules", n)
	}
}

// exported is every metric family the daemon exports, with sample data.
func exported(t *testing.T) map[string]bool {
	streams := []Stream{{Camera: "c", Stream: "s", State: "live", LastFrame: time.Now()}}
	m := New("test", sampleSources(&streams))
	m.FirstFrame(time.Second)
	m.Committed(time.Millisecond, 1, nil)
	known := map[string]bool{"up": true} // Prometheus's own
	for name := range gather(t, m) {
		known[name] = true
	}
	return known
}

var metricName = regexp.MustCompile(`\b(camwarden|process|go)_[a-z_]+|\bup\b`)

// unknownMetrics returns the metric names in expr that are not exported
// (histogram series by their family), counting every name in *n.
func unknownMetrics(known map[string]bool, expr string, n *int) []string {
	var out []string
	for _, metric := range metricName.FindAllString(expr, -1) {
		*n++
		base := metric
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(metric, suf); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			out = append(out, metric)
		}
	}
	return out
}
