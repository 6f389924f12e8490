// Package daemon assembles camwardend: it opens the store, loads the key,
// builds the access policy, starts the RTSP server, discovery and the admin
// API, and owns their lifecycle (sd_notify, watchdog, reload, stop).
//
// One goroutine, the loop in Run, owns all mutable daemon state: admin
// mutations, discovery results and reloads are handed to it as ops and run
// one at a time. Everything other goroutines read (configuration, policy,
// credential verifiers, discovered devices) is in an immutable snapshot
// that the loop alone builds and swaps atomically (state.go). API handlers
// read the snapshot, the store and the stream layer, and change things only
// through mutate (mutate.go); the handlers live in backend_<resource>.go.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/metrics"
	"github.com/camwarden/camwarden/daemon/servercert"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// Options are what cmd/camwardend hands to Run.
type Options struct {
	ConfigFile         string
	ConfigMayBeMissing bool              // the default path may be absent
	Flags              map[string]string // config keys set on the command line; they win over the file
	LogOutput          io.Writer         // default os.Stderr
	Version            string
}

// Daemon is the running assembly. store, streams and auth are set before
// the admin API starts and never replaced; disc is touched only by the loop
// goroutine; everything else API handlers read is in snap.
type Daemon struct {
	opts    Options
	log     hclog.InterceptLogger
	store   *store.Store
	streams *stream.Server
	auth    *authenticator
	snap    atomic.Pointer[snapshot]
	started time.Time
	metrics *metrics.Metrics // nil when monitoring is off
	// identity holds the token verifier and tracker (#13); set before the API starts.
	identity *identityState
	// viewers serves token and directory logins to the stream server.
	viewers *viewers
	// cert is the RTSPS certificate (nil without RTSPS); SIGHUP reloads it.
	cert *servercert.Source

	ops     chan func()
	stopped chan struct{} // closed when the loop has exited: do and post give up

	disc *discovery

	refusals *refusalAuditor // coalesces refused admin requests (refusals.go)

	auditMirror     hclog.Logger // the journal mirror of audit heads, at any log level
	auditMirrorRuns atomic.Bool  // the first head of this run is mirrored (marked audit_start)
}

// The audit head mirror line: module, message and keys are what
// `camwarden audit verify --journal` looks for (cmd/camwarden/journal.go).
const (
	auditMirrorModule  = "camwardend.audit"
	auditMirrorMessage = "audit head"
)

// The first head of a run (store.Open mirrors the head it found) is
// marked audit_start=true: --journal then knows where each run's last head
// is, and checks those, since a rollback happens between two runs.
func (d *Daemon) mirrorAuditHead(h store.AuditHead) {
	if d.auditMirrorRuns.CompareAndSwap(false, true) {
		d.auditMirror.Info(auditMirrorMessage, "audit_seq", h.Seq, "audit_hash", h.Hash, "audit_key", h.KeyID, "audit_start", true)
		return
	}
	d.auditMirror.Info(auditMirrorMessage, "audit_seq", h.Seq, "audit_hash", h.Hash, "audit_key", h.KeyID)
}

// defaultGCPercent is the daemon's GOGC unless the environment sets one.
const defaultGCPercent = 50

// Run starts the daemon and blocks until ctx is cancelled (SIGTERM/SIGINT in
// cmd/camwardend) or a fatal error. It returns nil after a clean stop.
func Run(ctx context.Context, opts Options) error {
	// Most of a reader's memory is goroutine stacks and GC headroom, not
	// live heap; halving the headroom cut RSS per reader by a quarter at
	// the same CPU on our 1,000-reader benchmark. GOGC in the environment
	// still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	d, err := newDaemon(opts)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

// newDaemon loads the configuration and sets up logging; run starts it.
func newDaemon(opts Options) (*Daemon, error) {
	cfg, err := LoadConfig(opts.ConfigFile, opts.ConfigMayBeMissing, opts.Flags)
	if err != nil {
		return nil, err
	}
	out := opts.LogOutput
	if out == nil {
		out = os.Stderr
	}
	log := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:       "camwardend",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		Output:     out,
		JSONFormat: cfg.LogFormat == "json",
	})
	// The audit head mirror is written whatever the log level: it is what
	// `camwarden audit verify --journal` checks the database against.
	mirror := hclog.New(&hclog.LoggerOptions{
		Name:       auditMirrorModule,
		Level:      hclog.Info,
		Output:     out,
		JSONFormat: cfg.LogFormat == "json",
	})
	d := &Daemon{opts: opts, log: log, auditMirror: mirror, started: time.Now(), ops: make(chan func()), stopped: make(chan struct{})}
	d.snap.Store(&snapshot{cfg: cfg, devices: map[string]onvif.Device{}})
	return d, nil
}

func (d *Daemon) run(ctx context.Context) error {
	log := d.log
	cfg := d.snap.Load().cfg
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("cannot create state directory %s: %w", cfg.StateDir, err)
	}
	key, err := resolveKey(cfg, log.Named("key"))
	if err != nil {
		return err
	}
	listeners, err := activatedListeners()
	if err != nil {
		return err
	}
	d.metrics = d.newMetrics(cfg, listeners["metrics"])
	var committed func(time.Duration, int, error) // nil without metrics: the store times nothing
	if d.metrics != nil {
		committed = d.metrics.Committed
	}
	dbPath := filepath.Join(cfg.StateDir, dbFileName)
	st, err := store.Open(dbPath, key, store.Options{Timeout: 2 * time.Second, Logger: log.Named("store"), AuditMirror: d.mirrorAuditHead, Committed: committed})
	if err != nil {
		var km *store.KeyMismatchError
		if errors.As(err, &km) {
			return fmt.Errorf("%s: refusing to start; point --key-file at the master key with id %s", dbPath, km.Expected)
		}
		return err
	}
	d.store = st
	defer st.Close()
	// Stopped before the store closes (defers run last-first), after the
	// API has drained: pending refusal counts are written, not lost.
	d.refusals = newRefusalAuditor(refusalWindow, time.Now, d.audit, log.Named("api"))
	go d.refusals.run()
	defer d.refusals.stop()

	cams, err := d.loadState(ctx)
	if err != nil {
		return err
	}
	d.reportDamagedSecrets(ctx)
	d.auth = newAuthenticator(d.snap.Load, st)
	if d.identity, err = d.startIdentity(ctx); err != nil {
		return err
	}
	defer d.identity.close()
	d.viewers = newViewers(d)

	if cfg.RTSPSAddr != "" || listeners["rtsps"] != nil {
		// A key file others may read is refused here, with one line.
		if d.cert, err = servercert.Load(servercert.Options{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, StateDir: cfg.StateDir}); err != nil {
			return err
		}
	}
	scfg := stream.Config{
		RTSPAddress: cfg.RTSPAddr,
		Listener:    listeners["rtsp"],
		Logger:      log.Named("stream"),
		Auth:        d.auth,
		External:    d.viewers,
		BasicAuth:   func() string { return d.snap.Load().cfg.BasicAuth },
		Policy:      func() *access.Policy { return d.snap.Load().policy },
	}
	if d.cert != nil {
		scfg.TLS, scfg.RTSPSAddress, scfg.RTSPSListener = d.cert.TLSConfig(), cfg.RTSPSAddr, listeners["rtsps"]
	}
	if d.metrics != nil {
		scfg.Observer = d.metrics
	}
	if cfg.RTSPUDP {
		scfg.UDPRTPAddress, scfg.UDPRTCPAddress = udpAddrs(cfg.RTSPAddr)
	}
	// One Go processor more than CPUs once serving (not during start-up,
	// which it only slows): the fan-out runs a writer per CPU at a lower
	// OS priority (daemon/stream), and RTSP requests and admin calls
	// always find a processor free while the writers send a frame to
	// thousands of readers. Not under a cgroup CPU limit (Go's default is
	// then below the CPU count and follows the limit: a processor more
	// would only use the quota up sooner), and GOMAXPROCS in the
	// environment still wins.
	spareProc := os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) == runtime.NumCPU()
	if spareProc {
		scfg.Writers = runtime.NumCPU()
	}
	d.streams, err = stream.New(scfg)
	if err != nil {
		return err
	}
	if err := d.streams.Start(ctx); err != nil {
		return fmt.Errorf("cannot start the RTSP server on %s (RTSPS %s): %w", cfg.RTSPAddr, cfg.RTSPSAddr, err)
	}
	defer d.streams.Close()
	d.streams.SetCameras(ctx, d.cameraSpecs(cams))

	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone, err := d.startAPI(apiCtx, cfg, listeners["admin"])
	if err != nil {
		stopAPI()
		return err
	}
	defer func() {
		stopAPI()
		<-apiDone
	}()

	metricsCtx, stopMetrics := context.WithCancel(context.Background())
	metricsDone, err := d.startMetrics(metricsCtx, cfg, listeners["metrics"])
	if err != nil {
		stopMetrics()
		return err
	}
	defer func() {
		stopMetrics()
		if metricsDone != nil {
			<-metricsDone
		}
	}()

	d.disc = newDiscovery(d)
	d.disc.restart(cfg)
	defer d.disc.stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	status := fmt.Sprintf("serving RTSP on %s, admin socket %s", d.streams.Addr(), cfg.Socket)
	notify(log, "READY=1\nSTATUS="+status)
	if spareProc {
		runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	}
	log.Info("camwardend ready", "version", d.opts.Version, "rtsp", d.streams.Addr().String(), "socket", cfg.Socket,
		"cameras", len(cams), "key_id", st.MasterKeyID(), "startup", time.Since(d.started).Round(time.Millisecond).String())

	var watchdog <-chan time.Time
	if iv, err := sd.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}

	// Deferred last, so it runs first: API requests and background
	// producers waiting on the loop give up before the API drains.
	defer close(d.stopped)
	for {
		select {
		case <-ctx.Done():
			notify(log, "STOPPING=1\nSTATUS=stopping")
			log.Info("stopping")
			return nil
		case op := <-d.ops:
			op()
		case <-hup:
			d.reload()
		case <-watchdog:
			// Sent from the loop that runs every mutation: if the loop or
			// the store hangs or fails, systemd stops hearing from us.
			if err := d.checkHealthLoop(ctx); err == nil {
				notify(log, "WATCHDOG=1")
			} else {
				log.Error("health check failed; withholding watchdog ping", "error", err)
			}
		}
	}
}

// reportDamagedSecrets opens every sealed secret once at start, so damage
// (a flipped byte) shows now, in the log and in `camwarden status`, rather
// than at that user's next login or that camera's next pull. The daemon
// still starts: the other records are fine.
func (d *Daemon) reportDamagedSecrets(ctx context.Context) {
	damaged, err := d.store.CheckSealed(ctx)
	if err != nil {
		d.log.Error("cannot check the sealed secrets", "error", err)
		return
	}
	for _, x := range damaged {
		d.log.Error("sealed secret does not open; set it again", "kind", x.Kind, "name", x.Name, "field", x.Field, "reason", x.Reason)
	}
}

// errStopped is what do returns once the loop has exited.
var errStopped = errors.New("daemon is stopping")

// do runs fn on the loop goroutine and waits for it, or for ctx, or for the
// loop to exit.
func (d *Daemon) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case d.ops <- func() { defer close(done); fn() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return errStopped
	}
	<-done
	return nil
}

// post hands fn to the loop without waiting (for background producers such
// as discovery); it gives up when ctx ends or the loop has exited.
func (d *Daemon) post(ctx context.Context, fn func()) {
	select {
	case d.ops <- fn:
	case <-ctx.Done():
	case <-d.stopped:
	}
}
