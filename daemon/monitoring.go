package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/camwarden/camwarden/daemon/metrics"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/store"
)

// newMetrics builds the metrics registry when a metrics listener is
// configured or socket-activated; otherwise nil, and every event hook is a
// no-op. Its sources read d.streams and d.store at scrape time, which only
// happens once the listener runs (after both are set).
func (d *Daemon) newMetrics(cfg Config, activated net.Listener) *metrics.Metrics {
	if cfg.MetricsAddr == "" && activated == nil {
		return nil
	}
	return metrics.New(d.opts.Version, metrics.Sources{
		Streams:            func() []metrics.Stream { return streamMetrics(d.streams.Streams()) },
		Sessions:           func() []metrics.Session { return sessionMetrics(d.streams.Sessions()) },
		ThrottledAddresses: func() int { return d.streams.ThrottledAddresses() },
		RTSPDefences: func() metrics.RTSPDefences {
			s := d.streams.Security()
			return metrics.RTSPDefences{ConnectionsRefused: s.ConnectionsRefused, LoginsDeferred: s.LoginsDeferred, Unauthenticated: s.Unauthenticated}
		},
		StoreSize: func() (int64, error) {
			fi, err := os.Stat(d.store.Path())
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		},
	})
}

func streamMetrics(sts []stream.StreamStatus) []metrics.Stream {
	out := make([]metrics.Stream, 0, len(sts))
	for _, s := range sts {
		out = append(out, metrics.Stream{
			Camera: s.Camera, Stream: s.Stream, State: s.State,
			BytesReceived: s.BytesReceived, PacketsReceived: s.PacketsReceived, PacketsLost: s.PacketsLost,
			Frames: s.Frames, Reconnects: s.Reconnects, FPS: s.FPS, BitrateBps: s.BitrateBps,
			Readers: s.Readers, LastFrame: s.LastFrame, LastError: s.LastError != "",
		})
	}
	return out
}

// sessionMetrics keeps only what the metrics may show of a session: never
// its user or address.
func sessionMetrics(ses []stream.SessionInfo) []metrics.Session {
	out := make([]metrics.Session, 0, len(ses))
	for _, s := range ses {
		out = append(out, metrics.Session{Action: s.Action, Transport: s.Transport})
	}
	return out
}

// startMetrics serves /metrics and /healthz on the activated listener or
// on cfg.MetricsAddr until ctx ends. It returns nil, nil when monitoring
// is off.
func (d *Daemon) startMetrics(ctx context.Context, cfg Config, activated net.Listener) (<-chan struct{}, error) {
	if d.metrics == nil {
		return nil, nil
	}
	ln := activated
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("cannot start the metrics listener on %s: %w", cfg.MetricsAddr, err)
		}
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		d.log.Warn("the metrics listener is reachable from the network; restrict it with a firewall or a reverse proxy", "addr", ln.Addr().String())
	}
	d.log.Info("metrics listener ready", "addr", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := metrics.Serve(ctx, ln, metrics.ServeOptions{Metrics: d.metrics, Health: d.health, Logger: d.log.Named("metrics")})
		if err != nil && ctx.Err() == nil {
			d.log.Error("metrics listener stopped", "error", err)
		}
	}()
	return done, nil
}

// checkHealthLoop is the daemon's one health check, behind both the
// watchdog ping and /healthz: the store commits a write (fsynced), and
// the RTSP server still serves. It runs on the loop goroutine, so that it
// answers at all also proves the loop is alive.
func (d *Daemon) checkHealthLoop(ctx context.Context) error {
	if err := d.store.Update(ctx, nil, func(*store.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store cannot commit: %v", err)
	}
	return d.streams.Alive()
}

// health runs checkHealthLoop on the loop for /healthz.
func (d *Daemon) health(ctx context.Context) error {
	var err error
	if derr := d.do(ctx, func() { err = d.checkHealthLoop(ctx) }); derr != nil {
		if errors.Is(derr, context.DeadlineExceeded) {
			return fmt.Errorf("daemon loop did not answer within %s", metrics.HealthTimeout)
		}
		return fmt.Errorf("daemon loop: %v", derr)
	}
	return err
}
