package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func sampleSources(streams *[]Stream) Sources {
	var mu sync.Mutex
	return Sources{
		Streams: func() []Stream {
			mu.Lock()
			defer mu.Unlock()
			return append([]Stream(nil), *streams...)
		},
		Sessions: func() []Session {
			return []Session{{Action: "read", Transport: "TCP"}, {Action: "read", Transport: "TCP"}, {Action: "read", Transport: "UDP"}, {Action: "publish", Transport: "weird"}}
		},
		ThrottledAddresses: func() int { return 3 },
		RTSPDefences:       func() RTSPDefences { return RTSPDefences{ConnectionsRefused: 7, LoginsDeferred: 2, Unauthenticated: 5} },
		StoreSize:          func() (int64, error) { return 32768, nil },
	}
}

func serveTest(t *testing.T, o ServeOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value returns the value of the series of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestScrapeReadsSnapshots(t *testing.T) {
	now := time.Now()
	streams := []Stream{{Camera: "door", Stream: "main", State: "live", BytesReceived: 1000, PacketsReceived: 10, PacketsLost: 2,
		Frames: 5, Reconnects: 1, FPS: 25, BitrateBps: 800000, Readers: 2, LastFrame: now.Add(-1500 * time.Millisecond)},
		{Camera: "yard", Stream: "sub", State: "backoff", LastError: true}}
	m := New("1.2.3", sampleSources(&streams))
	fams := gather(t, m)
	door := map[string]string{"camera": "door", "stream": "main"}
	for name, want := range map[string]float64{
		"camwarden_stream_received_bytes_total":     1000,
		"camwarden_stream_received_packets_total":   10,
		"camwarden_stream_lost_packets_total":       2,
		"camwarden_stream_frames_total":             5,
		"camwarden_stream_reconnects_total":         1,
		"camwarden_stream_frames_per_second":        25,
		"camwarden_stream_receive_bytes_per_second": 100000,
		"camwarden_stream_readers":                  2,
		"camwarden_stream_last_error":               0,
	} {
		if v, ok := value(t, fams, name, door); !ok || v != want {
			t.Errorf("%s{door/main} = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v, _ := value(t, fams, "camwarden_stream_last_frame_age_seconds", door); v < 1.4 || v > 60 {
		t.Errorf("last frame age = %v, want about 1.5 s", v)
	}
	if _, ok := value(t, fams, "camwarden_stream_last_frame_age_seconds", map[string]string{"camera": "yard"}); ok {
		t.Errorf("a stream without a frame has a last-frame age")
	}
	if v, _ := value(t, fams, "camwarden_stream_last_error", map[string]string{"camera": "yard"}); v != 1 {
		t.Errorf("yard last_error = %v, want 1", v)
	}
	for _, st := range StreamStates {
		want := 0.0
		if st == "backoff" {
			want = 1
		}
		if v, ok := value(t, fams, "camwarden_stream_state", map[string]string{"camera": "yard", "state": st}); !ok || v != want {
			t.Errorf("yard state %s = %v, want %v", st, v, want)
		}
	}
	for _, tc := range []struct {
		action, transport string
		want              float64
	}{{"read", "tcp", 2}, {"read", "udp", 1}, {"publish", "other", 1}, {"read", "udp_multicast", 0}} {
		if v, ok := value(t, fams, "camwarden_sessions", map[string]string{"action": tc.action, "transport": tc.transport}); !ok || v != tc.want {
			t.Errorf("sessions{%s,%s} = %v (present %v), want %v", tc.action, tc.transport, v, ok, tc.want)
		}
	}
	if v, _ := value(t, fams, "camwarden_rtsp_throttled_addresses", nil); v != 3 {
		t.Errorf("throttled = %v", v)
	}
	for name, want := range map[string]float64{"camwarden_rtsp_connections_refused_total": 7,
		"camwarden_rtsp_logins_deferred_total": 2, "camwarden_rtsp_unauthenticated_connections": 5} {
		if v, ok := value(t, fams, name, nil); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v, _ := value(t, fams, "camwarden_store_size_bytes", nil); v != 32768 {
		t.Errorf("store size = %v", v)
	}
	if v, _ := value(t, fams, "camwarden_build_info", map[string]string{"version": "1.2.3"}); v != 1 {
		t.Errorf("build_info = %v", v)
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("%s missing: process/Go collectors not registered", name)
		}
	}

	// A stream that goes away stops being reported: no stale series.
	streams = streams[:1]
	fams = gather(t, m)
	if _, ok := value(t, fams, "camwarden_stream_readers", map[string]string{"camera": "yard"}); ok {
		t.Errorf("removed stream still reported")
	}
}

func TestEventsAreCountedWithBoundedLabels(t *testing.T) {
	m := New("test", Sources{})
	fams := gather(t, m)
	// Every reason and method is there from the start, at 0.
	for _, r := range CloseReasons {
		if v, ok := value(t, fams, "camwarden_sessions_closed_total", map[string]string{"reason": r}); !ok || v != 0 {
			t.Errorf("sessions_closed_total{%s} = %v present %v, want 0", r, v, ok)
		}
	}
	for _, am := range AuthMethods {
		if _, ok := value(t, fams, "camwarden_rtsp_auth_failures_total", map[string]string{"method": am}); !ok {
			t.Errorf("auth failures{%s} missing", am)
		}
	}
	m.SessionClosed(ReasonRevoked)
	m.SessionClosed(ReasonRevoked)
	m.SessionClosed("alice's free text")
	m.AuthFailed("Digest")
	m.AuthFailed("basic")
	m.AuthFailed("Bearer x.y.z")
	m.AdminRefused()
	m.Committed(3*time.Millisecond, 2, nil)
	m.Committed(time.Millisecond, 1, errors.New("read-only file system"))
	m.FirstFrame(300 * time.Millisecond)
	fams = gather(t, m)
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if v, _ := value(t, fams, name, labels); v != want {
			t.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
	}
	check("camwarden_sessions_closed_total", map[string]string{"reason": "revoked"}, 2)
	check("camwarden_sessions_closed_total", map[string]string{"reason": "client"}, 1)
	check("camwarden_rtsp_auth_failures_total", map[string]string{"method": "digest"}, 1)
	check("camwarden_rtsp_auth_failures_total", map[string]string{"method": "basic"}, 1)
	check("camwarden_rtsp_auth_failures_total", map[string]string{"method": "other"}, 1)
	check("camwarden_admin_requests_refused_total", nil, 1)
	check("camwarden_audit_entries_appended_total", nil, 2) // the failed commit appended nothing
	check("camwarden_store_commit_failures_total", nil, 1)
	check("camwarden_store_commit_duration_seconds", nil, 2)
	check("camwarden_reader_time_to_first_frame_seconds", nil, 1)
	if n := len(fams["camwarden_sessions_closed_total"].GetMetric()); n != len(CloseReasons) {
		t.Errorf("%d close-reason series, want %d", n, len(CloseReasons))
	}
	if n := len(fams["camwarden_rtsp_auth_failures_total"].GetMetric()); n != len(AuthMethods) {
		t.Errorf("%d auth-method series, want %d", n, len(AuthMethods))
	}

	var nilMetrics *Metrics // the daemon without a metrics listener
	nilMetrics.SessionClosed(ReasonKicked)
	nilMetrics.AuthFailed("basic")
	nilMetrics.AdminRefused()
	nilMetrics.Committed(time.Second, 1, nil)
	nilMetrics.FirstFrame(time.Second)
}

// TestExpositionPassesPromtool lints what /metrics serves with the real
// promtool.
func TestExpositionPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (apt prometheus): %v", err)
	}
	streams := []Stream{{Camera: "door", Stream: "main", State: "live", LastFrame: time.Now()}}
	m := New("test", sampleSources(&streams))
	m.SessionClosed(ReasonKicked)
	m.Committed(time.Millisecond, 1, nil)
	m.FirstFrame(time.Second)
	base := serveTest(t, ServeOptions{Metrics: m})
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{`camwarden_stream_receive_bytes_per_second{camera="door",stream="main"} 0`,
		`camwarden_sessions_closed_total{reason="kicked"} 1`, "# TYPE camwarden_reader_time_to_first_frame_seconds histogram"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

func TestHealthz(t *testing.T) {
	var fail atomic.Pointer[error]
	var calls atomic.Int32
	m := New("test", Sources{})
	base := serveTest(t, ServeOptions{Metrics: m, HealthReuse: time.Nanosecond, Health: func(ctx context.Context) error {
		calls.Add(1)
		if e := fail.Load(); e != nil {
			return *e
		}
		return nil
	}})
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
	e := errors.New("store: write /var/lib/camwarden/camwarden.db:\nread-only file system")
	fail.Store(&e)
	code, body := get(t, base+"/healthz")
	if code != 503 || body != "unhealthy: store: write /var/lib/camwarden/camwarden.db: read-only file system\n" {
		t.Errorf("unhealthy: %d %q", code, body)
	}
	if strings.Count(body, "\n") != 1 {
		t.Errorf("reason is not one line: %q", body)
	}
	// Nothing else is served: no index, no admin action, no other method.
	for _, path := range []string{"/", "/debug/pprof/", "/api/v1/users", "/metrics/x"} {
		if code, _ := get(t, base+path); code != 404 {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
	res, err := http.Post(base+"/metrics", "text/plain", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want 405", res.StatusCode)
	}
}

// TestHealthzReusesARecentResult: probes in quick succession cost one
// check (each commits to the store); after HealthReuse a new one runs.
func TestHealthzReusesARecentResult(t *testing.T) {
	var calls atomic.Int32
	base := serveTest(t, ServeOptions{Metrics: New("test", Sources{}), HealthReuse: 300 * time.Millisecond,
		Health: func(ctx context.Context) error { calls.Add(1); return nil }})
	start := time.Now()
	for range 20 {
		if code, _ := get(t, base+"/healthz"); code != 200 {
			t.Fatalf("/healthz = %d", code)
		}
	}
	if time.Since(start) < 300*time.Millisecond && calls.Load() != 1 {
		t.Errorf("%d checks for 20 probes within the reuse period, want 1", calls.Load())
	}
	time.Sleep(350 * time.Millisecond) // past the reuse period, which is what is tested
	get(t, base+"/healthz")
	if n := calls.Load(); n < 2 {
		t.Errorf("no new check after the reuse period (%d checks)", n)
	}
}

// TestHealthzHungCheck: a check that never returns is reported within the
// timeout, and a burst of probes does not pile up checks.
func TestHealthzHungCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int32
	base := serveTest(t, ServeOptions{Metrics: New("test", Sources{}), Health: func(ctx context.Context) error {
		calls.Add(1)
		<-release // ignores ctx, like a stuck fsync
		return nil
	}})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := get(t, base+"/healthz")
			if code != 503 || !strings.Contains(body, "did not finish") {
				t.Errorf("hung check: %d %q", code, body)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d checks ran for a burst of 5 probes, want 1", n)
	}
}
