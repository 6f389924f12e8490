package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeCollector turns the daemon's snapshots into metrics at scrape
// time: nothing is counted on the data path, and a stream or session that
// is gone simply stops being reported (no stale series).
type scrapeCollector struct {
	src Sources
	now func() time.Time
}

var streamLabels = []string{"camera", "stream"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	descStreamState       = desc("stream_state", "1 for the stream's current state, 0 for the others.", "camera", "stream", "state")
	descStreamBytes       = desc("stream_received_bytes_total", "RTP bytes received from the stream's source.", streamLabels...)
	descStreamPackets     = desc("stream_received_packets_total", "RTP packets received from the stream's source.", streamLabels...)
	descStreamLost        = desc("stream_lost_packets_total", "RTP packets the source sent that never arrived.", streamLabels...)
	descStreamFrames      = desc("stream_frames_total", "Video frames received from the stream's source.", streamLabels...)
	descStreamReconnects  = desc("stream_reconnects_total", "Times the source connection failed and was retried.", streamLabels...)
	descStreamFPS         = desc("stream_frames_per_second", "Video frame rate over the last seconds.", streamLabels...)
	descStreamBitrate     = desc("stream_receive_bytes_per_second", "Source bitrate over the last seconds, in bytes per second (times 8 for bits).", streamLabels...)
	descStreamReaders     = desc("stream_readers", "Readers playing the stream.", streamLabels...)
	descStreamFrameAge    = desc("stream_last_frame_age_seconds", "Seconds since the last video frame (absent until the first).", streamLabels...)
	descStreamLastError   = desc("stream_last_error", "1 when the stream has a last error on record (see camwarden stream list), else 0.", streamLabels...)
	descSessions          = desc("sessions", "Authenticated RTSP sessions, by action and transport.", "action", "transport")
	descThrottled         = desc("rtsp_throttled_addresses", "Source addresses currently refused after repeated failed RTSP logins.")
	descStoreSize         = desc("store_size_bytes", "Size of the database file.")
	descConnsRefused      = desc("rtsp_connections_refused_total", "RTSP connections closed on arrival: address throttled, or over its share of unauthenticated connections.")
	descLoginsDeferred    = desc("rtsp_logins_deferred_total", "Basic logins answered 503 Retry-After without being checked, because the check queue was full.")
	descUnauthenticated   = desc("rtsp_unauthenticated_connections", "RTSP connections open now that have not authenticated yet.")
	scrapeCollectorDescs  = []*prometheus.Desc{descStreamState, descStreamBytes, descStreamPackets, descStreamLost, descStreamFrames, descStreamReconnects, descStreamFPS, descStreamBitrate, descStreamReaders, descStreamFrameAge, descStreamLastError, descSessions, descThrottled, descStoreSize, descConnsRefused, descLoginsDeferred, descUnauthenticated}
	sessionActionsOrdered = []string{"read", "publish"}
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range scrapeCollectorDescs {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	if c.src.Streams != nil {
		for _, s := range c.src.Streams() {
			c.collectStream(ch, now, s)
		}
	}
	if c.src.Sessions != nil {
		counts := map[[2]string]int{}
		for _, s := range c.src.Sessions() {
			counts[[2]string{actionLabel(s.Action), transportLabel(s.Transport)}]++
		}
		// Every combination is reported, 0 included, so the series set does
		// not change as readers come and go.
		for _, a := range sessionActionsOrdered {
			for _, t := range Transports {
				ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(counts[[2]string{a, t}]), a, t)
			}
		}
	}
	if c.src.ThrottledAddresses != nil {
		ch <- prometheus.MustNewConstMetric(descThrottled, prometheus.GaugeValue, float64(c.src.ThrottledAddresses()))
	}
	if c.src.RTSPDefences != nil {
		d := c.src.RTSPDefences()
		ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(d.ConnectionsRefused))
		ch <- prometheus.MustNewConstMetric(descLoginsDeferred, prometheus.CounterValue, float64(d.LoginsDeferred))
		ch <- prometheus.MustNewConstMetric(descUnauthenticated, prometheus.GaugeValue, float64(d.Unauthenticated))
	}
	if c.src.StoreSize != nil {
		if n, err := c.src.StoreSize(); err == nil {
			ch <- prometheus.MustNewConstMetric(descStoreSize, prometheus.GaugeValue, float64(n))
		} else {
			ch <- prometheus.NewInvalidMetric(descStoreSize, err)
		}
	}
}

func (c *scrapeCollector) collectStream(ch chan<- prometheus.Metric, now time.Time, s Stream) {
	l := []string{s.Camera, s.Stream}
	for _, st := range StreamStates {
		v := 0.0
		if st == s.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descStreamState, prometheus.GaugeValue, v, s.Camera, s.Stream, st)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter(descStreamBytes, s.BytesReceived)
	counter(descStreamPackets, s.PacketsReceived)
	counter(descStreamLost, s.PacketsLost)
	counter(descStreamFrames, s.Frames)
	counter(descStreamReconnects, s.Reconnects)
	gauge(descStreamFPS, s.FPS)
	gauge(descStreamBitrate, s.BitrateBps/8)
	gauge(descStreamReaders, float64(s.Readers))
	if !s.LastFrame.IsZero() {
		gauge(descStreamFrameAge, max(0, now.Sub(s.LastFrame).Seconds()))
	}
	lastErr := 0.0
	if s.LastError {
		lastErr = 1
	}
	gauge(descStreamLastError, lastErr)
}
