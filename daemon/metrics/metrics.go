// Package metrics exposes camwardend's health and numbers to a site's
// monitoring: Prometheus text format on /metrics and a health check on
// /healthz, on a listener of its own.
//
// Most numbers are read at scrape time from snapshots the daemon already
// keeps (stream status, session list) through Sources; only events nobody
// counts otherwise (a session closing and why, a failed RTSP login, a store
// commit) are pushed, through methods that cost an atomic add.
//
// Labels are bounded by construction: camera and stream names (which the
// admin configures) and small fixed sets of values. User names, addresses
// and free text never become labels.
package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "camwarden"

// Stream states, as the stream layer names them; each gets its own series
// of camwarden_stream_state so a dashboard can count streams per state.
var StreamStates = []string{"idle", "connecting", "live", "backoff"}

// Reasons a session ends (camwarden_sessions_closed_total{reason}).
const (
	ReasonRevoked = "revoked" // the policy no longer allows it (grant revoked, user disabled, password changed)
	ReasonKicked  = "kicked"  // an admin closed it (session kick)
	ReasonEvicted = "evicted" // it stopped reading and its queue stayed full
	ReasonExpired = "expired" // a UDP session stopped sending keep-alives
	ReasonClient  = "client"  // the client tore it down, disconnected, or its TCP connection went silent
	ReasonStopped = "stopped" // its stream went away (source down, camera removed, daemon stopping)
)

// CloseReasons lists every reason, in the order the metric shows them.
var CloseReasons = []string{ReasonRevoked, ReasonKicked, ReasonEvicted, ReasonExpired, ReasonClient, ReasonStopped}

// Authentication methods (camwarden_rtsp_auth_failures_total{method}).
var AuthMethods = []string{"basic", "digest", "other"}

// Transports of sessions (camwarden_sessions{transport}).
var Transports = []string{"tcp", "udp", "udp_multicast", "other"}

// Stream is one stream's numbers at scrape time.
type Stream struct {
	Camera, Stream  string
	State           string // one of StreamStates
	BytesReceived   uint64
	PacketsReceived uint64
	PacketsLost     uint64
	Frames          uint64
	Reconnects      uint64
	FPS             float64
	BitrateBps      float64
	Readers         int
	LastFrame       time.Time // zero if no frame arrived yet
	LastError       bool      // the stream has a last error on record
}

// Session is one authenticated RTSP session at scrape time.
type Session struct {
	Action    string // "read" or "publish"
	Transport string
}

// RTSPDefences is the state of the RTSP server's flood defences.
type RTSPDefences struct {
	ConnectionsRefused uint64 // closed on arrival (throttled address, or over its share of unauthenticated connections)
	LoginsDeferred     uint64 // Basic logins answered 503 Retry-After, unchecked, because the check queue was full
	Unauthenticated    int    // connections open now that have not authenticated yet
}

// Sources are read at scrape time; any may be nil. They must be safe to
// call from any goroutine and must not block for long (a scrape waits).
type Sources struct {
	Streams            func() []Stream
	Sessions           func() []Session
	ThrottledAddresses func() int // source addresses currently refused for failed logins
	RTSPDefences       func() RTSPDefences
	StoreSize          func() (int64, error) // database file size in bytes
}

// Metrics is the registry and the push-side counters. Its methods are safe
// for concurrent use and cost about an atomic add; a nil *Metrics ignores
// every event, so callers need no checks.
type Metrics struct {
	reg *prometheus.Registry

	sessionsClosed  *prometheus.CounterVec
	ttff            prometheus.Histogram
	authFailures    *prometheus.CounterVec
	adminRefused    prometheus.Counter
	auditAppended   prometheus.Counter
	commitDuration  prometheus.Histogram
	commitFailures  prometheus.Counter
	closedByReason  map[string]prometheus.Counter
	failureByMethod map[string]prometheus.Counter
}

// New builds the registry: the scrape-time collector over src, the event
// counters, build info and the client library's process and Go collectors.
func New(version string, src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.sessionsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "sessions_closed_total",
		Help: "RTSP sessions closed, by reason: revoked, kicked, evicted, expired, client, stopped.",
	}, []string{"reason"})
	m.ttff = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "reader_time_to_first_frame_seconds",
		Help:    "Time from a reader's connection to the first keyframe sent to it.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16},
	})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "rtsp_auth_failures_total",
		Help: "Refused RTSP authentications (wrong credentials, disabled user, or no right to the path), by method.",
	}, []string{"method"})
	m.adminRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "admin_requests_refused_total",
		Help: "Admin API requests refused before reaching a handler (caller not allowed, browser headers).",
	})
	m.auditAppended = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "audit_entries_appended_total",
		Help: "Entries appended to the audit chain.",
	})
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "store_commit_duration_seconds",
		Help:    "Duration of store write transactions, fsync included.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	})
	m.commitFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "store_commit_failures_total",
		Help: "Store write transactions that failed to commit (read-only or failing disk, full disk).",
	})
	// Every label value exists from the start: a query for a revocation
	// gets 0, not "no data", before the first one.
	m.closedByReason = map[string]prometheus.Counter{}
	for _, r := range CloseReasons {
		m.closedByReason[r] = m.sessionsClosed.WithLabelValues(r)
	}
	m.failureByMethod = map[string]prometheus.Counter{}
	for _, am := range AuthMethods {
		m.failureByMethod[am] = m.authFailures.WithLabelValues(am)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the version is a label.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(
		&scrapeCollector{src: src, now: time.Now},
		m.sessionsClosed, m.ttff, m.authFailures, m.adminRefused, m.auditAppended,
		m.commitDuration, m.commitFailures, build,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return m
}

// Registry is the registry /metrics serves (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SessionClosed counts one authenticated session that ended. An unknown
// reason is counted as "client" rather than growing a label.
func (m *Metrics) SessionClosed(reason string) {
	if m == nil {
		return
	}
	c, ok := m.closedByReason[reason]
	if !ok {
		c = m.closedByReason[ReasonClient]
	}
	c.Inc()
}

// FirstFrame records a reader's time to its first keyframe.
func (m *Metrics) FirstFrame(wait time.Duration) {
	if m == nil {
		return
	}
	m.ttff.Observe(wait.Seconds())
}

// AuthFailed counts one refused RTSP authentication; method is "basic",
// "digest" or anything else (counted as "other").
func (m *Metrics) AuthFailed(method string) {
	if m == nil {
		return
	}
	c, ok := m.failureByMethod[strings.ToLower(method)]
	if !ok {
		c = m.failureByMethod["other"]
	}
	c.Inc()
}

// AdminRefused counts one refused admin API request.
func (m *Metrics) AdminRefused() {
	if m == nil {
		return
	}
	m.adminRefused.Inc()
}

// Committed records one store write transaction: how long it took, whether
// it failed, and how many audit entries it appended.
func (m *Metrics) Committed(took time.Duration, auditEntries int, err error) {
	if m == nil {
		return
	}
	m.commitDuration.Observe(took.Seconds())
	if err != nil {
		m.commitFailures.Inc()
		return
	}
	if auditEntries > 0 {
		m.auditAppended.Add(float64(auditEntries))
	}
}

// transportLabel maps a transport as gortsplib names it ("TCP", "UDP",
// "UDP-multicast") to a label value from Transports.
func transportLabel(t string) string {
	switch strings.ToLower(t) {
	case "tcp":
		return "tcp"
	case "udp":
		return "udp"
	case "udp-multicast", "udp_multicast":
		return "udp_multicast"
	}
	return "other"
}

// actionLabel bounds the session action label.
func actionLabel(a string) string {
	if a == "publish" {
		return "publish"
	}
	return "read"
}
