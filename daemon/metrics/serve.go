package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HealthTimeout bounds one health check: a store or loop that does not
// answer within it is reported unhealthy.
const HealthTimeout = 5 * time.Second

// ServeOptions configure Serve.
type ServeOptions struct {
	Metrics *Metrics
	// Health is the daemon's health check (the one its watchdog uses): nil
	// means healthy, an error's text is the one-line reason.
	Health func(ctx context.Context) error
	// HealthReuse is how long a health result answers later probes too
	// (default 1 s): the check commits to the store, and anyone who can
	// reach the listener must not be able to make the disk fsync in a loop.
	HealthReuse time.Duration
	Logger      hclog.Logger
}

// Handler serves /metrics and /healthz, GET and HEAD only. It serves no
// admin action and nothing else.
func Handler(o ServeOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry(), promhttp.HandlerOpts{
		ErrorLog:            promLogger{o.Logger},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	if o.HealthReuse <= 0 {
		o.HealthReuse = time.Second
	}
	h := &healthHandler{check: o.Health, reuse: o.HealthReuse, now: time.Now}
	mux.Handle("GET /healthz", h)
	return mux
}

// Serve serves Handler(o) on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, o ServeOptions) error {
	srv := &http.Server{
		Handler:           Handler(o),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// healthHandler answers 200 "ok" or 503 with a one-line reason. Probes
// that arrive while a check runs, or within reuse of the last one, share
// its result, so a burst of probes costs one check.
type healthHandler struct {
	check func(ctx context.Context) error
	reuse time.Duration
	now   func() time.Time

	mu       sync.Mutex
	inFlight chan struct{}
	result   error
	at       time.Time // when result was found
}

func (h *healthHandler) run() error {
	h.mu.Lock()
	if h.inFlight == nil && !h.at.IsZero() && h.now().Sub(h.at) < h.reuse {
		defer h.mu.Unlock()
		return h.result
	}
	if h.inFlight == nil {
		done := make(chan struct{})
		h.inFlight = done
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), HealthTimeout)
			defer cancel()
			err := h.checkOnce(ctx)
			h.mu.Lock()
			h.result, h.inFlight, h.at = err, nil, h.now()
			h.mu.Unlock()
			close(done)
		}()
	}
	done := h.inFlight
	h.mu.Unlock()
	t := time.NewTimer(HealthTimeout + time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return fmt.Errorf("health check did not finish within %s", HealthTimeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.result
}

func (h *healthHandler) checkOnce(ctx context.Context) error {
	if h.check == nil {
		return nil
	}
	return h.check(ctx)
}

func (h *healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.run(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unhealthy: %s\n", oneLine(err.Error()))
		return
	}
	fmt.Fprintln(w, "ok")
}

// oneLine keeps a reason to one line, whatever the error text holds.
func oneLine(s string) string {
	return textutil.Shorten(strings.Join(strings.Fields(s), " "), 300)
}

// promLogger adapts hclog to promhttp's logger.
type promLogger struct{ l hclog.Logger }

func (p promLogger) Println(v ...any) { p.l.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...))) }
