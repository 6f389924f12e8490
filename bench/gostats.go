package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// goStats is what the daemon's Go runtime says about itself on /metrics:
// the per-reader memory split into counted parts (stacks, heap).
type goStats struct {
	Goroutines int64
	StackBytes int64 // go_memstats_stack_inuse_bytes
	HeapBytes  int64 // go_memstats_heap_inuse_bytes
}

// scrapeGoStats reads the daemon's /metrics at addr (HOST:PORT).
func scrapeGoStats(ctx context.Context, addr string) (goStats, error) {
	var gs goStats
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return gs, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return gs, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gs, fmt.Errorf("metrics: %s", resp.Status)
	}
	want := map[string]*int64{
		"go_goroutines":                 &gs.Goroutines,
		"go_memstats_stack_inuse_bytes": &gs.StackBytes,
		"go_memstats_heap_inuse_bytes":  &gs.HeapBytes,
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		dst := want[name]
		if !ok || dst == nil {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return gs, fmt.Errorf("metrics: %s: %w", name, err)
		}
		*dst = int64(f)
		found++
	}
	if err := sc.Err(); err != nil {
		return gs, err
	}
	if found < len(want) {
		return gs, fmt.Errorf("metrics: %d of %d Go runtime figures found", found, len(want))
	}
	return gs, nil
}
