package e2e

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// ---- a real Prometheus, started by the test ----

type promProc struct {
	base string
	cmd  *exec.Cmd
}

// startPrometheus runs Debian's prometheus on 127.0.0.1 scraping target
// every second, with its storage in a temporary directory; it is stopped by
// its PID when the test ends.
func startPrometheus(t *testing.T, target string) *promProc {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (apt prometheus): %v", err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: camwarden
    static_configs:
      - targets: ['%s']
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := &promProc{base: "http://" + addr}
	p.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	log := testutil.LogFile(t, "prometheus")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-exited
	})
	testutil.WaitFor(t, 60*time.Second, "prometheus ready", func() bool {
		res, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return p
}

type promSample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query through Prometheus's HTTP API.
func (p *promProc) query(t *testing.T, q string) []promSample {
	t.Helper()
	res, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: %s %s", q, body.Status, body.Error)
	}
	var out []promSample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, r.Value)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	return out
}

// waitValue waits until q returns exactly one sample for which ok holds.
func (p *promProc) waitValue(t *testing.T, q string, what string, ok func(float64) bool) float64 {
	t.Helper()
	var last []promSample
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		last = p.query(t, q)
		if len(last) == 1 && ok(last[0].Value) {
			return last[0].Value
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: Prometheus query %s never satisfied; last result %+v", what, q, last)
	return 0
}

// ---- the daemon's metrics listener ----

func startMetricsDaemon(t *testing.T, wrapper []string) (*daemonProc, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	d := startDaemonIn(t, "", wrapper, "--metrics-addr", addr)
	return d, addr
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestPrometheusScrapesTheDaemon: a real Prometheus scrapes a real daemon
// with a camsim camera and real readers, and sees the stream's bitrate and
// reader count, a revocation and a failed login; promtool accepts the
// exposition, which names no user, address or secret.
func TestPrometheusScrapesTheDaemon(t *testing.T) {
	d, maddr := startMetricsDaemon(t, nil)
	cam := startCamera(t)
	d.addCamera("door", cam)
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must(bobPassword+"\n", "user", "add", "bob", "--password-stdin")
	d.must("", "grant", "alice", "read", "door/*")
	d.must("", "grant", "bob", "read", "door/main")
	d.reader("door/main", "alice", alicePassword)
	bob := d.reader("door/main", "bob", bobPassword)

	prom := startPrometheus(t, maddr)
	prom.waitValue(t, `up{job="camwarden"}`, "target up", func(v float64) bool { return v == 1 })
	// camsim sends 800 kbit/s: 100 kB/s.
	bps := prom.waitValue(t, `camwarden_stream_receive_bytes_per_second{camera="door",stream="main"}`, "bitrate",
		func(v float64) bool { return v > 50e3 && v < 400e3 })
	prom.waitValue(t, `camwarden_stream_readers{camera="door",stream="main"}`, "two readers", func(v float64) bool { return v == 2 })
	prom.waitValue(t, `camwarden_stream_state{camera="door",stream="main",state="live"}`, "live", func(v float64) bool { return v == 1 })
	prom.waitValue(t, `camwarden_sessions_closed_total{reason="revoked"}`, "no revocation yet", func(v float64) bool { return v == 0 })

	// Revocation: bob loses his grant and his session is closed.
	if n := d.closedBy("", "revoke", "bob", "read", "door/main"); n != 1 {
		t.Fatalf("revoke closed %d sessions, want 1", n)
	}
	select {
	case <-bob.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("bob still reading after the revocation")
	}
	prom.waitValue(t, `camwarden_sessions_closed_total{reason="revoked"}`, "revocation", func(v float64) bool { return v == 1 })
	prom.waitValue(t, `camwarden_stream_readers{camera="door",stream="main"}`, "one reader left", func(v float64) bool { return v == 1 })

	// A failed login.
	if r, err := testutil.StartReader(d.rtsp, "door/main", "alice", "not-her-password"); err == nil {
		r.Close()
		t.Fatal("a wrong password was accepted")
	}
	prom.waitValue(t, `sum(camwarden_rtsp_auth_failures_total)`, "auth failure", func(v float64) bool { return v >= 1 })
	prom.waitValue(t, `sum(camwarden_reader_time_to_first_frame_seconds_count)`, "first frames", func(v float64) bool { return v >= 2 })
	prom.waitValue(t, `camwarden_audit_entries_appended_total`, "audit entries", func(v float64) bool { return v >= 5 })
	t.Logf("bitrate %.0f B/s seen through Prometheus", bps)

	code, body := httpGet(t, "http://"+maddr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(body)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, s := range append([]string{"alice", "bob", "127.0.0.1", "intruder"}, allSecrets...) {
		if strings.Contains(body, s) {
			t.Errorf("the exposition contains %q", s)
		}
	}
	if code, body := httpGet(t, "http://"+maddr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

// seriesSet is the set of series (name and labels, no values) in an exposition.
func seriesSet(body string) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

var digestNonce = regexp.MustCompile(`nonce="([^"]+)"`)

// failDigest makes one failed RTSP Digest login from source address src.
func failDigest(t *testing.T, rtsp, src, path string) {
	t.Helper()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := dialer.Dial("tcp", rtsp)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	uri := "rtsp://" + rtsp + "/" + path
	send := func(cseq int, auth string) (int, string) {
		req := fmt.Sprintf("DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\n%s\r\n", uri, cseq, auth)
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatalf("write from %s: %v", src, err)
		}
		status, hdr := 0, ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return -1, hdr
			}
			line = strings.TrimRight(line, "\r\n")
			if status == 0 {
				f := strings.Fields(line)
				if len(f) >= 2 {
					status, _ = strconv.Atoi(f[1])
				}
				continue
			}
			if line == "" {
				return status, hdr
			}
			hdr += line + "\n"
		}
	}
	st, hdr := send(1, "")
	m := digestNonce.FindStringSubmatch(hdr)
	if st != 401 || m == nil {
		t.Fatalf("challenge from %s: %d %q", src, st, hdr)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	resp := h(h("intruder:camwarden:guess") + ":" + m[1] + ":" + h("DESCRIBE:"+uri))
	auth := fmt.Sprintf("Authorization: Digest username=\"intruder\", realm=\"camwarden\", nonce=\"%s\", uri=\"%s\", response=\"%s\"\r\n", m[1], uri, resp)
	if st, _ := send(2, auth); st != 401 && st != -1 {
		t.Fatalf("wrong Digest from %s answered %d", src, st)
	}
}

// TestMetricsCardinalityBounded: 1,000 failed logins from 1,000 source
// addresses are counted, and add no series.
func TestMetricsCardinalityBounded(t *testing.T) {
	d, maddr := startMetricsDaemon(t, nil)
	cam := startCamera(t)
	d.addCamera("door", cam)
	failDigest(t, d.rtsp, "127.0.0.1", "door/main")
	// Every series exists once a frame has arrived and one login failed.
	var before string
	testutil.WaitFor(t, 15*time.Second, "first frame in the metrics", func() bool {
		_, before = httpGet(t, "http://"+maddr+"/metrics")
		return strings.Contains(before, "camwarden_stream_last_frame_age_seconds{")
	})
	failuresBefore := sampleValue(t, before, `camwarden_rtsp_auth_failures_total{method="digest"}`)

	const n = 1000
	for i := range n {
		failDigest(t, d.rtsp, fmt.Sprintf("127.%d.%d.%d", 10+i/62500, i/250%250, i%250+2), "door/main")
	}
	_, after := httpGet(t, "http://"+maddr+"/metrics")
	if got := sampleValue(t, after, `camwarden_rtsp_auth_failures_total{method="digest"}`) - failuresBefore; got != n {
		t.Errorf("%v failed logins counted, want %d", got, n)
	}
	b, a := seriesSet(before), seriesSet(after)
	var added, removed []string
	for s := range a {
		if !b[s] {
			added = append(added, s)
		}
	}
	for s := range b {
		if !a[s] {
			removed = append(removed, s)
		}
	}
	sort.Strings(added)
	if len(added) > 0 || len(removed) > 0 {
		t.Errorf("series changed with %d failed logins: %d before, %d after; added %v, removed %v", n, len(b), len(a), added, removed)
	}
	t.Logf("%d series before and after %d failed logins from %d addresses", len(b), n, n)
}

// sampleValue finds one series' value in an exposition.
func sampleValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("series %s not in the exposition", series)
	return 0
}

// TestHealthzWhenStoreUnwritable: the state directory is an ext4 file
// system (on a loop device, mounted in the daemon's private mount
// namespace with errors=remount-ro); the test makes the kernel declare it
// failed, as after a disk error, so it turns read-only under the open
// database. /healthz then answers 503 with the store's reason, the failed
// commits are counted, and the systemd watchdog ping (the same check)
// stops.
func TestHealthzWhenStoreUnwritable(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "300000") // a tick every 150 ms
	img := filepath.Join(t.TempDir(), "state.img")
	mustRun(t, "truncate", "-s", "32M", img)
	mustRun(t, "mkfs.ext4", "-q", "-F", img)
	loop := strings.TrimSpace(mustRun(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// The mount lives only in the daemon's namespace: it goes away with it.
	wrapper := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -o errors=remount-ro "$0" "$1" && chmod 0700 "$1" && shift && exec "$@"`, loop, state}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	d := startDaemonIn(t, dir, wrapper, "--metrics-addr", addr)
	base := "http://" + addr
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz before = %d %q\n%s", code, body, tail(d.logs.String(), 2000))
	}
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin") // the store takes writes
	d.notify.WaitIndex(t, 0, "WATCHDOG=1", 10*time.Second)

	trigger := "/sys/fs/ext4/" + filepath.Base(loop) + "/trigger_fs_error"
	if err := os.WriteFile(trigger, []byte("camwarden test: simulated disk error\n"), 0o200); err != nil {
		t.Fatalf("cannot fail the file system via %s: %v", trigger, err)
	}
	var code int
	var body string
	testutil.WaitFor(t, 30*time.Second, "/healthz 503", func() bool {
		code, body = httpGet(t, base+"/healthz")
		return code == 503
	})
	if !strings.HasPrefix(body, "unhealthy: store cannot commit:") || !strings.Contains(body, "read-only file system") ||
		strings.Count(body, "\n") != 1 {
		t.Errorf("/healthz body %q: want one line naming the store and the read-only file system", body)
	}
	t.Logf("/healthz after the disk error: %d %q", code, body)
	pings := func() int { return strings.Count(strings.Join(d.notify.Messages(), "\n"), "WATCHDOG=1") }
	before := pings()
	testutil.WaitFor(t, 15*time.Second, "three withheld watchdog pings", func() bool {
		return strings.Count(d.logs.String(), "withholding watchdog ping") >= 3
	})
	if n := pings() - before; n > 1 {
		t.Errorf("%d watchdog pings sent while the store could not commit", n)
	}
	_, m := httpGet(t, base+"/metrics")
	if v := sampleValue(t, m, "camwarden_store_commit_failures_total"); v < 1 {
		t.Errorf("commit failures = %v after the store failed", v)
	}
	// An admin change now fails cleanly, and the daemon keeps serving.
	if out, code := d.cli(bobPassword+"\n", "user", "add", "bob", "--password-stdin"); code == 0 {
		t.Errorf("user add succeeded on a read-only store: %s", out)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 503 {
		t.Errorf("/healthz recovered on a read-only store: %d", code)
	}
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSocketActivatedMetrics: a listener systemd passes named "metrics"
// serves /metrics and /healthz without --metrics-addr.
func TestSocketActivatedMetrics(t *testing.T) {
	dir := t.TempDir()
	rtsp := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	maddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	sock := filepath.Join(dir, "admin.sock")
	notify := testutil.ListenNotify(t, t.TempDir())
	var logs testutil.SyncBuffer
	cmd := exec.Command("systemd-socket-activate",
		"-l", rtsp, "-l", sock, "-l", maddr, "--fdname=rtsp:admin:metrics",
		"-E", "NOTIFY_SOCKET="+notify.Path,
		testutil.Binary(t, "camwardend"), "--config", "/dev/null", "--state-dir", filepath.Join(dir, "state"),
		"--socket", filepath.Join(dir, "unused.sock"), "--rtsp-addr", "127.0.0.1:1", "--rtsps-addr", "127.0.0.1:0", "--rtsp-udp", "false",
		"--discovery-interfaces", "none")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The first connection makes systemd-socket-activate exec the daemon;
	// until it is ready the request waits in the listen queue.
	var code int
	var body string
	testutil.WaitFor(t, 15*time.Second, "daemon answering on the activated metrics socket", func() bool {
		res, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + maddr + "/healthz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		code, body = res.StatusCode, string(b)
		return true
	})
	if code != 200 || body != "ok\n" {
		t.Errorf("/healthz on the activated socket = %d %q\n%s", code, body, logs.String())
	}
	notify.WaitIndex(t, 0, "READY=1", 5*time.Second)
	if code, body := httpGet(t, "http://"+maddr+"/metrics"); code != 200 || !strings.Contains(body, "camwarden_build_info{") {
		t.Errorf("/metrics on the activated socket = %d\n%s", code, tail(body, 500))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, logs.String())
	}
}
