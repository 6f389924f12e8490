// Command camsim runs N simulated ONVIF cameras (WS-Discovery, SOAP device
// and media services with WS-Security or HTTP Digest, RTSP with synthetic
// H.264) for the demo, tests and benchmarks.
//
// It prints one line per camera on stdout when ready, then READY:
//
//	camera name=camsim-1 urn=urn:uuid:... xaddr=http://127.0.0.1:P/onvif/device_service rtsp.main=rtsp://... rtsp.sub=rtsp://...
//
// (with --https the xaddr is https://... and the line ends in
// cert_sha256=HEX, the camera's certificate fingerprint)
//
//	discovery unicast=127.0.0.1:3702 multicast=lo
//	READY
//
// With --fault-restart-every each restart prints "restarted camera ..." with
// the new addresses. Logs go to stderr. SIGINT/SIGTERM send Bye and exit 0. The password is
// read from stdin or a file, never from argv, and is never logged.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/internal/camsim"
	"github.com/camwarden/camwarden/internal/camsim/media"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("camsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cameras      = fs.Int("cameras", 1, "number of simulated cameras")
		addr         = fs.String("addr", "127.0.0.1", "IPv4 address every server binds")
		basePort     = fs.Int("base-port", 0, "camera i serves ONVIF HTTP on base-port+i and RTSP on base-port+cameras+i (0 = ephemeral ports)")
		discPort     = fs.Int("discovery-port", camsim.DefaultDiscoveryPort, "unicast WS-Discovery port on --addr for directed probes (0 = ephemeral)")
		discIfaces   = fs.String("discovery-interfaces", "", "comma-separated interfaces to join the WS-Discovery multicast group on; empty = the interface owning --addr if it is multicast capable; none = off")
		user         = fs.String("user", "", "camera username (ONVIF and RTSP)")
		passStdin    = fs.Bool("password-stdin", false, "read the camera password from the first line of stdin")
		passFile     = fs.String("password-file", "", "read the camera password from this file")
		auth         = fs.String("auth", camsim.AuthWSSE, "ONVIF authentication: wsse (WS-UsernameToken digest) or digest (HTTP Digest)")
		https        = fs.Bool("https", false, "serve ONVIF over HTTPS, each camera with its own self-signed certificate (kept across restarts)")
		skew         = fs.Duration("clock-skew", 0, "offset of the cameras' clocks from the host clock, e.g. 8760h")
		seed         = fs.String("seed", "camsim", "seed of the cameras' stable urn:uuid identities")
		logLevel     = fs.String("log-level", "info", "trace, debug, info, warn or error")
		dropAfter    = fs.Duration("fault-drop-after", 0, "RTSP: close each reader session this long after PLAY")
		stall        = fs.Bool("fault-stall", false, "RTSP: stop sending packets while sessions stay open")
		badSDP       = fs.Bool("fault-bad-sdp", false, "RTSP: answer DESCRIBE with invalid SDP")
		oversized    = fs.Bool("fault-oversized", false, "RTSP: send RTP packets larger than 1472 bytes (no FU-A)")
		changeSSRC   = fs.Duration("fault-change-ssrc-after", 0, "RTSP: change the SSRC this long after the first packet")
		restartEvery = fs.Duration("fault-restart-every", 0, "restart every camera at new HTTP and RTSP ports this often (sends Hello)")
		recorderChs  = fs.Int("recorder-channels", 0, "make each camera a network recorder with this many channels (video sources), two profiles each, RTSP paths /chNN_main and /chNN_sub")
		mediaSvcs    = fs.String("media", camsim.MediaBoth, "ONVIF media services offered: both, media1 or media2")
		media2H265   = fs.Bool("media2-h265", false, "report each channel's first profile as H.265, through Media2 only (the RTSP stream stays H.264)")
		maxStreams   = fs.Int("max-streams", 0, "RTSP sessions each camera serves at once; beyond it SETUP gets 453 Not Enough Bandwidth (0 = no cap)")
		showVersion  = fs.Bool("version", false, "print the version and exit")
		mainKbps     = fs.Int("main-kbps", 0, "bitrate of the main profile in kbit/s (0 = the default 4000)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "camsim", version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "camsim: unexpected arguments %q (the password is never an argument: use --password-stdin or --password-file)\n", fs.Args())
		return 2
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(stderr, "camsim: unknown --log-level %q\n", *logLevel)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "camsim", Output: stderr, Level: level})
	if *user == "" {
		fmt.Fprintln(stderr, "camsim: --user is required")
		return 2
	}
	password, err := readPassword(*passStdin, *passFile, stdin)
	if err != nil {
		fmt.Fprintln(stderr, "camsim:", err)
		return 2
	}
	var ifaces []string
	if *discIfaces != "" {
		for _, n := range strings.Split(*discIfaces, ",") {
			if n = strings.TrimSpace(n); n != "" {
				ifaces = append(ifaces, n)
			}
		}
	}
	sim, err := camsim.New(camsim.Options{
		Cameras: *cameras, Addr: *addr, BasePort: *basePort, DiscoveryPort: *discPort,
		DiscoveryInterfaces: ifaces, Username: *user, Password: password, Auth: *auth,
		ClockSkew: *skew, Seed: *seed, Logger: log, HTTPS: *https, Profiles: profiles(*mainKbps),
		RecorderChannels: *recorderChs, MediaServices: *mediaSvcs, Media2H265: *media2H265, MaxStreams: *maxStreams,
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = sim.Start(startCtx)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	faults := media.Faults{DropAfter: *dropAfter, Stall: *stall, BadSDP: *badSDP, Oversized: *oversized, ChangeSSRCAfter: *changeSSRC}
	if faults != (media.Faults{}) {
		for _, c := range sim.Cameras() {
			c.SetFaults(faults)
		}
	}
	for _, c := range sim.Cameras() {
		fmt.Fprintln(stdout, cameraLine(c))
	}
	fmt.Fprintf(stdout, "discovery unicast=%s multicast=%s\n", sim.DiscoveryAddr(), orNone(strings.Join(sim.MulticastInterfaces(), ",")))
	fmt.Fprintln(stdout, "READY")
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}

	if *restartEvery > 0 {
		go restartLoop(ctx, sim, *restartEvery, stdout, log)
	}
	<-ctx.Done()
	log.Info("stopping: sending Bye")
	if err := sim.Close(); err != nil {
		log.Error("close", "error", err)
	}
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func cameraLine(c *camsim.Camera) string {
	var b strings.Builder
	fmt.Fprintf(&b, "camera name=%s urn=%s xaddr=%s", c.Name(), c.URN(), c.XAddr())
	chs := c.Channels()
	if len(chs) > 1 {
		fmt.Fprintf(&b, " channels=%d", len(chs))
	}
	for _, ch := range chs {
		for _, p := range ch.Profiles {
			fmt.Fprintf(&b, " rtsp.%s=%s", p, c.RTSPURL(p))
		}
	}
	if fp := c.CertSHA256(); fp != "" {
		fmt.Fprintf(&b, " cert_sha256=%s", fp)
	}
	return b.String()
}

// restartLoop is the --fault-restart-every switch; it prints the new camera
// line after each restart so scripts can follow.
func restartLoop(ctx context.Context, sim *camsim.Sim, every time.Duration, stdout io.Writer, log hclog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range sim.Cameras() {
			if err := c.Restart(ctx); err != nil {
				log.Error("restart failed", "camera", c.Name(), "error", err)
				continue
			}
			fmt.Fprintln(stdout, "restarted "+cameraLine(c))
		}
	}
}

func readPassword(fromStdin bool, file string, stdin io.Reader) (string, error) {
	if fromStdin == (file != "") {
		return "", errors.New("give exactly one of --password-stdin or --password-file")
	}
	var line string
	if fromStdin {
		r := bufio.NewReader(io.LimitReader(stdin, 4096))
		s, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		line = s
	} else {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		line, _, _ = strings.Cut(string(data), "\n")
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("the password is empty")
	}
	return line, nil
}

// profiles returns the default profiles with the main one at mainKbps
// (nil, the defaults, when 0).
func profiles(mainKbps int) []media.Profile {
	if mainKbps <= 0 {
		return nil
	}
	ps := camsim.DefaultProfiles()
	for i := range ps {
		if ps[i].Name == "main" {
			ps[i].BitrateKbps = mainKbps
		}
	}
	return ps
}
