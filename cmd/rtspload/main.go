// Command rtspload plays one RTSP path with many readers (gortsplib clients
// over TCP) in one process and reports, as JSON lines on stdout, how many
// packets they received, how many were lost (RTP sequence gaps), the
// latency from camsim's timestamp SEI to each complete frame, and its own
// CPU use, so a benchmark can tell the load client apart from the server.
//
// Credentials never come from argv: --user with --password-stdin or
// --password-file, or --credentials-file with one "user:password" per line
// (reader i uses line i modulo the number of lines).
//
// With --duration D it ramps up, waits until every reader receives, warms
// up, measures for D, prints a report and exits. With --duration 0 it
// waits for commands on stdin after ramping up (after the password line
// when --password-stdin): "mark" starts a window, "report" prints the
// window so far, "quit" (or end of input) exits.
//
//	{"event":"ready","t_unix_ns":...,"ramp_ms":812.4}
//	{"event":"measure_start","t_unix_ns":...}
//	{"event":"closed","reader":17,"user":"u17","t_unix_ns":...,"error":"EOF"}   (with --events)
//	{"event":"report","t_unix_ns":...,"report":{...}}
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/camwarden/camwarden/bench/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type cred struct{ user, password string }

type options struct {
	addr, path       string
	readers          int
	creds            []cred
	concurrency      int
	readyTimeout     time.Duration
	warmup, duration time.Duration
	events           bool
	raw              bool
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "floor" {
		return runFloor(args[1:], stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("rtspload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o         options
		user      = fs.String("user", "", "user of every reader (with --password-stdin or --password-file)")
		passStdin = fs.Bool("password-stdin", false, "read the password from the first line of stdin")
		passFile  = fs.String("password-file", "", "read the password from this file")
		credsFile = fs.String("credentials-file", "", `"user:password" lines; reader i uses line i mod lines`)
	)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8554", "RTSP server host:port")
	fs.StringVar(&o.path, "path", "", "camera/stream to play; a comma-separated list: reader i plays entry i modulo its length")
	fs.IntVar(&o.readers, "readers", 10, "number of readers")
	fs.IntVar(&o.concurrency, "concurrency", 32, "readers connecting at once")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 90*time.Second, "how long every reader may take to receive its first packet")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "wait after every reader receives, before measuring (--duration mode)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measurement window; 0 = take commands from stdin")
	fs.BoolVar(&o.events, "events", false, `print a "closed" event when a reader's session ends`)
	client := fs.String("client", "gortsplib", "reader implementation: gortsplib (a full client per reader) or raw (minimal RTSP/TCP reader, a fraction of the CPU per packet)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this load client to this file")
	gcPercent := fs.Int("gogc", 400, "garbage collector target percentage for this process (gortsplib allocates per packet; fewer GC cycles keep the load client light)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		// The arguments are not echoed: one may be a misplaced password.
		fmt.Fprintf(stderr, "rtspload: %d unexpected argument(s) (passwords are never arguments: use --password-stdin, --password-file or --credentials-file)\n", fs.NArg())
		return 2
	}
	switch *client {
	case "gortsplib":
	case "raw":
		o.raw = true
	default:
		fmt.Fprintln(stderr, "rtspload: --client is gortsplib or raw")
		return 2
	}
	if o.path == "" || o.readers < 1 || o.concurrency < 1 {
		fmt.Fprintln(stderr, "rtspload: --path and --readers >= 1 are required")
		return 2
	}
	in := bufio.NewReader(stdin)
	var err error
	switch {
	case *credsFile != "":
		if *user != "" || *passStdin || *passFile != "" {
			fmt.Fprintln(stderr, "rtspload: --credentials-file excludes --user/--password-*")
			return 2
		}
		o.creds, err = readCredentials(*credsFile)
	case *user != "":
		var pw string
		pw, err = readPassword(*passStdin, *passFile, in)
		o.creds = []cred{{*user, pw}}
	default:
		fmt.Fprintln(stderr, "rtspload: give --user (with --password-stdin or --password-file) or --credentials-file")
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "rtspload:", err)
		return 2
	}
	debug.SetGCPercent(*gcPercent)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "rtspload:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "rtspload:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runLoad(ctx, o, in, &eventWriter{enc: json.NewEncoder(stdout)}); err != nil {
		fmt.Fprintln(stderr, "rtspload:", err)
		return 1
	}
	return 0
}

// runFloor serves the bare fan-out floor (load.Floor) of --source on
// --listen until stdin closes or a signal comes. It prints
// {"event":"floor_ready","addr":"127.0.0.1:PORT"} once it listens.
func runFloor(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtspload floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address readers connect to")
	source := fs.String("source", "", "rtsp:// URL of the camera (no credentials in it)")
	user := fs.String("user", "", "camera user (with --password-stdin)")
	passStdin := fs.Bool("password-stdin", false, "read the camera password from the first line of stdin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *source == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rtspload floor: --source is required and there are no arguments")
		return 2
	}
	in := bufio.NewReader(stdin)
	pw := ""
	if *passStdin {
		var err error
		if pw, err = readPassword(true, "", in); err != nil {
			fmt.Fprintln(stderr, "rtspload floor:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := load.StartFloor(ctx, *listen, *source, *user, pw)
	if err != nil {
		fmt.Fprintln(stderr, "rtspload floor:", err)
		return 1
	}
	defer f.Close()
	ew := &eventWriter{enc: json.NewEncoder(stdout)}
	ew.emit(load.Event{Event: "floor_ready", Addr: f.Addr()})
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(done)
	}()
	select {
	case <-ctx.Done():
	case <-done:
	}
	return 0
}

func readPassword(fromStdin bool, file string, in *bufio.Reader) (string, error) {
	switch {
	case fromStdin && file != "":
		return "", errors.New("--password-stdin and --password-file exclude each other")
	case fromStdin:
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", errors.New("--user needs --password-stdin or --password-file")
}

func readCredentials(file string) ([]cred, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read credentials file: %w", err)
	}
	var out []cred
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		u, p, ok := strings.Cut(line, ":")
		if !ok || u == "" {
			// The line number only: the line may hold a password.
			return nil, fmt.Errorf("credentials file line %d: want user:password", i+1)
		}
		out = append(out, cred{u, p})
	}
	if len(out) == 0 {
		return nil, errors.New("credentials file is empty")
	}
	return out, nil
}

// eventWriter serialises JSON lines from many goroutines.
type eventWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *eventWriter) emit(ev load.Event) {
	if ev.TimeNs == 0 {
		ev.TimeNs = time.Now().UnixNano()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(ev)
}

// window is the state at the start of a measurement window.
type window struct {
	at    time.Time
	self  load.ProcSample
	stats []load.ReaderStats
}

func runLoad(ctx context.Context, o options, in *bufio.Reader, out *eventWriter) error {
	var quiet atomic.Bool // no "closed" events while we close the readers ourselves
	readers := make([]load.Player, o.readers)
	var connectErrs atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c := o.creds[i%len(o.creds)]
				paths := strings.Split(o.path, ",")
				cfg := load.ReaderConfig{Addr: o.addr, Path: paths[i%len(paths)], User: c.user, Password: c.password}
				if o.events {
					cfg.OnClose = func(id int, user string, at time.Time, err error) {
						if quiet.Load() {
							return
						}
						ev := load.Event{Event: "closed", TimeNs: at.UnixNano(), Reader: &id, User: user}
						if err != nil {
							ev.Error = err.Error()
						}
						out.emit(ev)
					}
				}
				sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				var r load.Player
				var err error
				if o.raw {
					r, err = load.StartRawReader(sctx, i, cfg)
				} else {
					r, err = load.StartReader(sctx, i, cfg)
				}
				cancel()
				if err != nil {
					if connectErrs.Add(1) <= 5 {
						out.emit(load.Event{Event: "error", Error: err.Error()})
					}
					continue
				}
				readers[i] = r
			}
		}()
	}
feed:
	for i := range o.readers {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	live := make([]load.Player, 0, len(readers))
	for _, r := range readers {
		if r != nil {
			live = append(live, r)
		}
	}
	defer func() {
		quiet.Store(true)
		var cw sync.WaitGroup
		for _, r := range live {
			cw.Go(r.Close)
		}
		cw.Wait()
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(live) == 0 {
		return fmt.Errorf("no reader could connect (%d errors)", connectErrs.Load())
	}
	rctx, cancel := context.WithTimeout(ctx, o.readyTimeout)
	err := load.WaitReceiving(rctx, live)
	cancel()
	if err != nil {
		return err
	}
	out.emit(load.Event{Event: "ready", RampMs: load.Ms(time.Since(start))})

	mark := func() *window {
		w := &window{stats: make([]load.ReaderStats, len(live))}
		for i, r := range live {
			w.stats[i] = r.Stats()
			r.TakeLatency()
		}
		w.self, _ = load.SampleProc(os.Getpid())
		w.at = time.Now()
		out.emit(load.Event{Event: "measure_start", TimeNs: w.at.UnixNano()})
		return w
	}
	report := func(w *window) {
		rep := buildReport(w, live, o.readers, int(connectErrs.Load()))
		out.emit(load.Event{Event: "report", Report: rep})
	}

	if o.duration > 0 {
		if !sleepCtx(ctx, o.warmup) {
			return ctx.Err()
		}
		w := mark()
		if !sleepCtx(ctx, o.duration) {
			return ctx.Err()
		}
		report(w)
		return nil
	}
	// Command mode.
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		for {
			line, err := in.ReadString('\n')
			if s := strings.TrimSpace(line); s != "" {
				cmds <- s
			}
			if err != nil {
				return
			}
		}
	}()
	w := mark()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-cmds:
			if !ok {
				return nil
			}
			switch c {
			case "mark":
				w = mark()
			case "report":
				report(w)
			case "quit":
				return nil
			default:
				out.emit(load.Event{Event: "error", Error: fmt.Sprintf("unknown command %q (mark, report, quit)", c)})
			}
		}
	}
}

func buildReport(w *window, live []load.Player, readers, connectErrs int) *load.Report {
	self, _ := load.SampleProc(os.Getpid())
	now := time.Now()
	rep := &load.Report{Readers: readers, ConnectErrors: connectErrs, WindowS: now.Sub(w.at).Seconds(),
		CPUCores: load.Cores(w.self, self), RSSKB: self.RSSKB, ReadSyscalls: self.SyscR - w.self.SyscR, ByUser: map[string]*load.UserStats{}}
	var hist load.Histogram
	for i, r := range live {
		s := r.Stats()
		d := load.ReaderStats{Packets: s.Packets - w.stats[i].Packets, Lost: s.Lost - w.stats[i].Lost,
			SeqResets: s.SeqResets - w.stats[i].SeqResets, Bytes: s.Bytes - w.stats[i].Bytes}
		h := r.TakeLatency()
		hist.Merge(&h)
		rep.Packets += d.Packets
		rep.Lost += d.Lost
		rep.SeqResets += d.SeqResets
		rep.Bytes += d.Bytes
		if d.SeqResets > 0 {
			rep.SeqResetReaders++
		}
		rep.MaxLostOneReader = max(rep.MaxLostOneReader, d.Lost)
		if d.Packets > 0 {
			rep.Received++
		}
		ended := false
		select {
		case <-r.Done():
			ended = true
			rep.Ended++
		default:
		}
		u := rep.ByUser[r.UserName()]
		if u == nil {
			u = &load.UserStats{}
			rep.ByUser[r.UserName()] = u
		}
		u.Readers++
		if ended {
			u.Ended++
		}
		u.Packets += d.Packets
		u.Lost += d.Lost
		u.SeqResets += d.SeqResets
		u.Bytes += d.Bytes
	}
	if n := len(live); n > 0 && rep.WindowS > 0 {
		rep.PacketsPerReaderS = float64(rep.Packets) / float64(n) / rep.WindowS
		rep.LostPerReader = float64(rep.Lost) / float64(n)
	}
	rep.Latency = hist.Summary(true)
	return rep
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
