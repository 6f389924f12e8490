package metrics

import (
	"encoding/json"
	"os"
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
	streams := []Stream{{Camera: "c", Stream: "s", State: "live", LastFrame: time.Now()}}
	m := New("test", sampleSources(&streams))
	m.FirstFrame(time.Second)
	m.Committed(time.Millisecond, 1, nil)
	fams := gather(t, m)
	name := regexp.MustCompile(`\b(camwarden|process|go)_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, metric := range name.FindAllString(tg.Expr, -1) {
				n++
				base := metric
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(metric, suf); ok && fams[b] != nil {
						base = b
					}
				}
				if fams[base] == nil {
					t.Errorf("panel %q queries %s, which the daemon does not export", p.Title, metric)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d metric references in the dashboard", n)
	}
}
