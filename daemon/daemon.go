// Package daemon assembles camwardend: it opens the store, loads the key,
// builds the access policy, starts the RTSP server, discovery and the admin
// API, and owns their lifecycle (sd_notify, watchdog, reload, stop).
//
// One goroutine, the loop in Run, owns all mutable daemon state: admin
// mutations, discovery results and reloads are handed to it as ops and run
// one at a time. Readers of the current policy use an immutable snapshot
// that the loop swaps atomically.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/stream"
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

// snapshot is the immutable view of users and rights that readers consult.
type snapshot struct {
	policy *access.Policy
	hashes map[string]string // user -> argon2id hash, for Basic auth
}

// Daemon is the running assembly. Its fields other than the atomics and
// channels are touched only by the loop goroutine.
type Daemon struct {
	opts    Options
	cfg     Config
	log     hclog.InterceptLogger
	store   *store.Store
	streams *stream.Server
	auth    *authenticator
	snap    atomic.Pointer[snapshot]
	started time.Time

	ops chan func()

	disc *discovery
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
	cfg, err := LoadConfig(opts.ConfigFile, opts.ConfigMayBeMissing, opts.Flags)
	if err != nil {
		return err
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
	d := &Daemon{opts: opts, cfg: cfg, log: log, started: time.Now(), ops: make(chan func())}
	return d.run(ctx)
}

func (d *Daemon) run(ctx context.Context) error {
	log := d.log
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("cannot create state directory %s: %w", d.cfg.StateDir, err)
	}
	key, err := resolveKey(d.cfg, log.Named("key"))
	if err != nil {
		return err
	}
	dbPath := filepath.Join(d.cfg.StateDir, dbFileName)
	st, err := store.Open(dbPath, key, store.Options{Timeout: 2 * time.Second, Logger: log.Named("store")})
	if err != nil {
		var km *store.KeyMismatchError
		if errors.As(err, &km) {
			return fmt.Errorf("%s: refusing to start; point --key-file at the master key with id %s", dbPath, km.Expected)
		}
		return err
	}
	d.store = st
	defer st.Close()

	snap, cams, err := d.loadState(ctx)
	if err != nil {
		return err
	}
	d.snap.Store(snap)
	d.auth = newAuthenticator(d.snap.Load, st)

	listeners, err := activatedListeners()
	if err != nil {
		return err
	}

	scfg := stream.Config{
		RTSPAddress: d.cfg.RTSPAddr,
		Listener:    listeners["rtsp"],
		Logger:      log.Named("stream"),
		Auth:        d.auth,
		Policy:      func() *access.Policy { return d.snap.Load().policy },
	}
	if d.cfg.RTSPUDP {
		scfg.UDPRTPAddress, scfg.UDPRTCPAddress = udpAddrs(d.cfg.RTSPAddr)
	}
	d.streams, err = stream.New(scfg)
	if err != nil {
		return err
	}
	if err := d.streams.Start(ctx); err != nil {
		return fmt.Errorf("cannot start the RTSP server on %s: %w", d.cfg.RTSPAddr, err)
	}
	defer d.streams.Close()
	d.streams.SetCameras(ctx, d.cameraSpecs(cams))

	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone, err := d.startAPI(apiCtx, listeners["admin"])
	if err != nil {
		stopAPI()
		return err
	}
	defer func() {
		stopAPI()
		<-apiDone
	}()

	d.disc = newDiscovery(d)
	d.disc.restart(d.cfg)
	defer d.disc.stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	status := fmt.Sprintf("serving RTSP on %s, admin socket %s", d.streams.Addr(), d.cfg.Socket)
	notify(log, "READY=1\nSTATUS="+status)
	log.Info("camwardend ready", "version", d.opts.Version, "rtsp", d.streams.Addr().String(), "socket", d.cfg.Socket,
		"cameras", len(cams), "key_id", st.MasterKeyID(), "startup", time.Since(d.started).Round(time.Millisecond).String())

	var watchdog <-chan time.Time
	if iv, err := sd.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}

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
			// the store hangs, systemd stops hearing from us.
			if err := st.View(ctx, func(*store.Tx) error { return nil }); err == nil {
				notify(log, "WATCHDOG=1")
			} else {
				log.Error("store check failed; withholding watchdog ping", "error", err)
			}
		}
	}
}

// do runs fn on the loop goroutine and waits for it, or for ctx.
func (d *Daemon) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case d.ops <- func() { defer close(done); fn() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// post hands fn to the loop without waiting (for background producers such
// as discovery); it gives up when ctx ends.
func (d *Daemon) post(ctx context.Context, fn func()) {
	select {
	case d.ops <- fn:
	case <-ctx.Done():
	}
}

func (d *Daemon) loadState(ctx context.Context) (*snapshot, []store.Camera, error) {
	var snap *snapshot
	var cams []store.Camera
	err := d.store.View(ctx, func(tx *store.Tx) error {
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		if snap, err = buildSnapshot(pd); err != nil {
			return err
		}
		cams, err = tx.Cameras()
		return err
	})
	return snap, cams, err
}

// buildSnapshot converts the store's view into an immutable policy.
func buildSnapshot(pd store.PolicyData) (*snapshot, error) {
	users := make([]access.User, 0, len(pd.Users))
	hashes := make(map[string]string, len(pd.Users))
	for _, u := range pd.Users {
		users = append(users, access.User{Name: u.Name, Disabled: u.Disabled, CredentialVersion: u.CredentialVersion})
		hashes[u.Name] = u.PasswordHash
	}
	groups := make(map[string][]string, len(pd.Groups))
	for _, g := range pd.Groups {
		groups[g.Name] = g.Members
	}
	grants := make([]access.Grant, 0, len(pd.Grants))
	for _, g := range pd.Grants {
		a, err := access.ParseAction(g.Action)
		if err != nil {
			return nil, fmt.Errorf("stored grant %s %s %s: %w", g.Subject, g.Action, g.Pattern, err)
		}
		grants = append(grants, access.Grant{Subject: g.Subject, Action: a, Pattern: g.Pattern})
	}
	p, err := access.New(users, groups, grants)
	if err != nil {
		return nil, err
	}
	return &snapshot{policy: p, hashes: hashes}, nil
}

// cameraSpecs turns stored cameras into what the stream layer runs. The
// password callback unseals the secret only when a puller connects.
func (d *Daemon) cameraSpecs(cams []store.Camera) []stream.CameraSpec {
	specs := make([]stream.CameraSpec, 0, len(cams))
	for _, c := range cams {
		spec := stream.CameraSpec{Name: c.Name}
		name := c.Name
		var password func(context.Context) (string, error)
		if c.HasPassword {
			password = func(ctx context.Context) (string, error) {
				var pw string
				err := d.store.View(ctx, func(tx *store.Tx) error {
					var err error
					pw, err = tx.CameraPassword(name)
					return err
				})
				return pw, err
			}
		}
		for _, s := range c.Streams {
			spec.Streams = append(spec.Streams, stream.StreamSpec{
				Name:      s.Name,
				URL:       s.URL,
				Username:  c.Username,
				Transport: s.Transport,
				OnDemand:  s.OnDemand,
				Revision:  fmt.Sprintf("%d|%s|%s|%t", c.Revision, s.URL, s.Transport, s.OnDemand),
				Password:  password,
			})
		}
		specs = append(specs, spec)
	}
	return specs
}

// reload re-reads the config file on SIGHUP. Settings that can change live
// are applied; the rest need a restart and are reported. A bad file is
// rejected and the running config stays in force.
func (d *Daemon) reload() {
	notify(d.log, fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading configuration", monotonicUsec()))
	defer notify(d.log, "READY=1\nSTATUS=configuration reloaded")
	next, err := LoadConfig(d.opts.ConfigFile, d.opts.ConfigMayBeMissing, d.opts.Flags)
	if err != nil {
		d.log.Error("reload rejected; the previous configuration stays in force", "error", err)
		return
	}
	var restart []string
	if next.StateDir != d.cfg.StateDir {
		restart = append(restart, "state_dir")
	}
	if next.Socket != d.cfg.Socket {
		restart = append(restart, "socket")
	}
	if next.RTSPAddr != d.cfg.RTSPAddr || next.RTSPUDP != d.cfg.RTSPUDP {
		restart = append(restart, "rtsp_addr/rtsp_udp")
	}
	if next.KeyFile != d.cfg.KeyFile {
		restart = append(restart, "key_file")
	}
	if next.AdminGroup != d.cfg.AdminGroup {
		restart = append(restart, "admin_group")
	}
	if len(restart) > 0 {
		d.log.Warn("some settings change only on restart; keeping their running values", "settings", strings.Join(restart, ", "))
		next.StateDir, next.Socket, next.RTSPAddr, next.RTSPUDP = d.cfg.StateDir, d.cfg.Socket, d.cfg.RTSPAddr, d.cfg.RTSPUDP
		next.KeyFile, next.AdminGroup = d.cfg.KeyFile, d.cfg.AdminGroup
	}
	d.log.SetLevel(hclog.LevelFromString(next.LogLevel))
	discoveryChanged := strings.Join(next.DiscoveryInterfaces, ",") != strings.Join(d.cfg.DiscoveryInterfaces, ",") ||
		next.DiscoveryInterval != d.cfg.DiscoveryInterval
	d.cfg = next
	if discoveryChanged {
		d.disc.restart(next)
	}
	d.log.Info("configuration reloaded", "log_level", next.LogLevel)
}

func notify(log hclog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "error", err)
	}
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}

var activationOnce sync.Once

// activatedListeners returns systemd socket-activated listeners by their
// FileDescriptorName ("rtsp", "admin"). Unnamed sockets are refused with a
// clear error rather than guessed at.
func activatedListeners() (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	var err error
	activationOnce.Do(func() {
		var named map[string][]net.Listener
		named, err = activation.ListenersWithNames()
		if err != nil {
			err = fmt.Errorf("socket activation: %w", err)
			return
		}
		for name, ls := range named {
			if name != "rtsp" && name != "admin" {
				err = fmt.Errorf("socket activation: unexpected socket name %q; name sockets rtsp or admin with FileDescriptorName=", name)
				return
			}
			if len(ls) != 1 || ls[0] == nil {
				err = fmt.Errorf("socket activation: want exactly one stream socket named %q", name)
				return
			}
			out[name] = ls[0]
		}
	})
	return out, err
}

// udpAddrs derives the reader UDP port pair from the RTSP port P: RTP on
// the even port above P+1 and RTCP on the next (8554 -> 8556/8557, 554 ->
// 556/557). An ephemeral RTSP port (0) leaves UDP off.
func udpAddrs(rtspAddr string) (string, string) {
	host, port, err := net.SplitHostPort(rtspAddr)
	if err != nil || port == "0" {
		return "", ""
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65530 {
		return "", ""
	}
	rtp := (p + 2) &^ 1
	return net.JoinHostPort(host, strconv.Itoa(rtp)), net.JoinHostPort(host, strconv.Itoa(rtp+1))
}
