// Command camwardend is the camwarden daemon. It parses flags, merges them
// over the config file and hands over to daemon.Run; nothing else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/camwarden/camwarden/daemon"
)

var version = "dev"

// flagKeys maps each daemon flag to its config-file key; flags win.
var flagKeys = []struct{ flag, key, usage string }{
	{"state-dir", "state_dir", "directory of the database (camwarden.db) (default " + daemon.DefaultStateDir + ")"},
	{"socket", "socket", "admin API Unix socket (default " + daemon.DefaultSocket + ")"},
	{"rtsp-addr", "rtsp_addr", "RTSP listen address HOST:PORT (default " + daemon.DefaultRTSPAddr + ")"},
	{"rtsp-udp", "rtsp_udp", "offer UDP transport to readers: true or false (default true)"},
	{"rtsps-addr", "rtsps_addr", "RTSPS listen address HOST:PORT, empty for off (default " + daemon.DefaultRTSPSAddr + ")"},
	{"tls-cert-file", "tls_cert_file", "RTSPS certificate (PEM); with tls-key-file. Neither: a self-signed one in the state directory"},
	{"tls-key-file", "tls_key_file", "RTSPS private key (PEM, mode 0600)"},
	{"basic-auth", "basic_auth", "where readers may log in with Basic or a token: tls-only, always or never (default tls-only)"},
	{"key-file", "key_file", "master key file (default $CREDENTIALS_DIRECTORY/master.key when systemd sets it)"},
	{"discovery-interfaces", "discovery_interfaces", "comma-separated interfaces for ONVIF discovery; empty = all up multicast interfaces, none = off"},
	{"discovery-interval", "discovery_interval", "how often to re-probe for cameras (default 5m)"},
	{"log-level", "log_level", "trace, debug, info, warn or error (default info)"},
	{"log-format", "log_format", "text or json (default text)"},
	{"admin-group", "admin_group", "group allowed to use the admin socket (default " + daemon.DefaultAdminGroup + ")"},
	{"metrics-addr", "metrics_addr", "monitoring listener HOST:PORT for /metrics and /healthz, e.g. 127.0.0.1:9108; empty host = loopback (default off)"},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("camwardend", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", daemon.DefaultConfigFile, "config file (key = value lines; flags win over it)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	values := map[string]*string{}
	for _, f := range flagKeys {
		values[f.flag] = fs.String(f.flag, "", f.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: camwardend [flags]")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "camwardend: %v (see camwardend --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "camwardend: unexpected argument %q (see camwardend --help)\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintln(os.Stdout, "camwardend", version)
		return 0
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	flags := map[string]string{}
	for _, f := range flagKeys {
		if set[f.flag] {
			flags[f.key] = *values[f.flag]
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := daemon.Run(ctx, daemon.Options{
		ConfigFile:         *configFile,
		ConfigMayBeMissing: !set["config"],
		Flags:              flags,
		Version:            version,
	})
	if err != nil {
		fmt.Fprintf(stderr, "camwardend: %s\n", strings.TrimSpace(err.Error()))
		return 1
	}
	return 0
}
