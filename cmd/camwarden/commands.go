package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// runFunc runs a command with its positional arguments; its flags were bound
// by setup.
type runFunc func(e *env, args []string) error

// command is one row of the command table, which help, the bash completion
// and the man-page test all iterate.
type command struct {
	path    string // words, e.g. "camera add"
	args    string // synopsis after the path, e.g. "NAME --url rtsp://..."
	summary string
	minArgs int
	maxArgs int // -1: unbounded
	// setup declares the command's flags on fs and returns the runner that
	// reads them.
	setup func(fs *flag.FlagSet) runFunc
}

func (c *command) synopsis() string {
	if c.args == "" {
		return c.path
	}
	return c.path + " " + c.args
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// optString / optBool record whether a flag was given at all, for
// "camera set" where an absent flag means "leave as is".
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(v string) error { o.v, o.set = v, true; return nil }

type optBool struct {
	v   bool
	set bool
}

func (o *optBool) String() string { return fmt.Sprint(o.v) }
func (o *optBool) IsBoolFlag() bool {
	return true
}
func (o *optBool) Set(v string) error {
	switch v {
	case "true", "1":
		o.v = true
	case "false", "0":
		o.v = false
	default:
		return fmt.Errorf("want true or false, not %q", v)
	}
	o.set = true
	return nil
}

// invalid turns a request's own validation (apitype, the same rules the
// daemon applies) into a usage error: exit 2, before anything is sent.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return usagef("%s", err.Error())
}

func mutationDone(e *env, what string, r *apitype.MutationResult) error {
	return e.print(r, func(w io.Writer) {
		msg := what
		if !r.Changed {
			msg += " (nothing changed)"
		}
		if r.ClosedSessions > 0 {
			msg += fmt.Sprintf("; closed %d session(s)", r.ClosedSessions)
		}
		if r.RestartedStreams > 0 {
			msg += fmt.Sprintf("; restarted %d stream(s)", r.RestartedStreams)
		}
		fmt.Fprintln(w, msg)
		if r.Message != "" {
			fmt.Fprintln(w, r.Message)
		}
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// trackLine describes one track of a stream on one line (no tabs: it
// stays out of the table's columns).
// trackLine describes one track; the measured rates only while the
// stream is live (an idle or failed stream's figures are stale).
func trackLine(t apitype.Track, live bool) string {
	parts := []string{t.Media, t.Codec}
	if t.Width > 0 {
		parts = append(parts, fmt.Sprintf("%dx%d", t.Width, t.Height))
	}
	if t.FPS > 0 && live {
		parts = append(parts, fmt.Sprintf("%.1f fps", t.FPS))
	} else if t.SPSFPS > 0 {
		parts = append(parts, fmt.Sprintf("%.1f fps (declared)", t.SPSFPS))
	}
	if t.SampleRate > 0 {
		parts = append(parts, fmt.Sprintf("%d Hz", t.SampleRate))
	}
	if t.Channels > 0 {
		parts = append(parts, fmt.Sprintf("%d ch", t.Channels))
	}
	if t.BackChannel {
		parts = append(parts, "back channel, not restreamed")
	} else if live {
		parts = append(parts, fmt.Sprintf("%.0f kbit/s", t.BitrateKbps))
	}
	if t.Repacketised {
		parts = append(parts, "re-packetised")
	}
	if t.Problem != "" {
		parts = append(parts, "problem: "+t.Problem)
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// commands is the command table.
var commands = []command{
	{path: "status", summary: "show the daemon's state", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				s, err := e.cl.Status(e.ctx)
				if err != nil {
					return err
				}
				return e.print(s, func(w io.Writer) {
					fmt.Fprintf(w, "version\t%s\n", s.Version)
					fmt.Fprintf(w, "pid\t%d\n", s.PID)
					fmt.Fprintf(w, "started\t%s\n", fmtTime(s.StartedAt))
					fmt.Fprintf(w, "rtsp\t%s\n", s.RTSPAddr)
					if s.RTSPSAddr != "" {
						self := ""
						if s.RTSPSCertGenerated {
							self = " (self-signed)"
						}
						fmt.Fprintf(w, "rtsps\t%s\n", s.RTSPSAddr)
						fmt.Fprintf(w, "rtsps certificate\tSHA256 %s%s\n", s.RTSPSFingerprint, self)
					}
					fmt.Fprintf(w, "state dir\t%s\n", orDash(s.StateDir))
					fmt.Fprintf(w, "schema\t%d\n", s.SchemaVersion)
					disc := "all interfaces"
					if len(s.DiscoveryInterfaces) > 0 {
						disc = strings.Join(s.DiscoveryInterfaces, ",")
					}
					fmt.Fprintf(w, "discovery\t%s\n", disc)
					fmt.Fprintf(w, "cameras\t%d\n", s.Cameras)
					fmt.Fprintf(w, "streams\t%d (%d up)\n", s.Streams, s.StreamsUp)
					fmt.Fprintf(w, "sessions\t%d (%d readers)\n", s.Sessions, s.Readers)
					fmt.Fprintf(w, "users\t%d\n", s.Users)
					fmt.Fprintf(w, "groups\t%d\n", s.Groups)
					fmt.Fprintf(w, "data key\t%s\n", orDash(s.KeyID))
					for _, x := range s.Damaged {
						fmt.Fprintf(w, "DAMAGED\t%s %s: sealed %s does not open; set it again\n", x.Kind, x.Name, x.Field)
					}
				})
			}
		}},
	{path: "discover", args: "[--timeout D] [--target HOST[:PORT]]...", summary: "find ONVIF cameras on the LAN (and probe given hosts)", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for answers")
			var targets stringList
			fs.Var(&targets, "target", "probe this HOST[:PORT] directly (repeatable)")
			return func(e *env, _ []string) error {
				req := apitype.DiscoverRequest{TimeoutMS: int(timeout.Milliseconds()), Targets: targets}
				if *timeout <= 0 {
					return usagef("--timeout must be between 0 and %s", apitype.MaxDiscoverWindow)
				}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				ctx, cancel := context.WithTimeout(e.base, *timeout+30*time.Second)
				defer cancel()
				stop := e.progress("discovering ONVIF devices", *timeout)
				r, err := e.cl.Discover(ctx, req)
				stop()
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "URN\tNAME\tHARDWARE\tXADDRS\tADOPTED AS")
					for _, d := range r.Devices {
						// The XADDRS column is where --device goes; an ambiguous
						// device lists what was announced, to check on the camera.
						xaddrs := d.DeviceXAddr
						if xaddrs == "" {
							xaddrs = "ambiguous, use --xaddr: " + strings.Join(d.XAddrs, " ") + " from " + strings.Join(d.Addresses, " ")
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.URN, orDash(d.Name), orDash(d.Hardware), xaddrs, orDash(d.AdoptedAs))
					}
				})
			}
		}},
	{path: "camera add", args: "NAME (--url rtsp://...|http://.../video.mjpg|rtmp://HOST/APP/STREAM | --exec 'COMMAND ... {output}') [--user U --password-stdin] [--stream main] [--transport auto|tcp|udp] [--on-demand] [--allow-basic]",
		summary: "add a camera by RTSP URL (or multipart MJPEG over HTTP), or by a command that publishes it to {output}", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			rawURL := fs.String("url", "", "the camera's URL without credentials: rtsp(s)://, http(s):// (MJPEG, served as RTP/JPEG) or rtmp(s)://HOST/APP/STREAM")
			execCmd := fs.String("exec", "", "a command (no shell) publishing the stream over RTSP to {output}; the camera password reaches it as $CAMWARDEN_PASSWORD")
			user := fs.String("user", "", "user name for the camera")
			pwStdin := fs.Bool("password-stdin", false, "read the camera's password from stdin (one line)")
			stream := fs.String("stream", "main", "name of the stream")
			transport := fs.String("transport", "auto", "RTP transport to the camera: auto, tcp or udp")
			onDemand := fs.Bool("on-demand", false, "pull the stream only while someone reads it")
			allowBasic := fs.Bool("allow-basic", false, "answer the camera's RTSP/HTTP Basic challenge (sends its password in clear; default: Digest only)")
			return func(e *env, args []string) error {
				if *rawURL == "" && *execCmd == "" {
					return usagef("--url is required (or --exec with a command that publishes the stream to {output})")
				}
				if *rawURL != "" && *execCmd != "" {
					return usagef("give exactly one of --url and --exec")
				}
				req := apitype.CameraAddRequest{Name: args[0], URL: *rawURL, Exec: *execCmd, User: *user, Stream: *stream, Transport: *transport, OnDemand: *onDemand, AllowBasic: *allowBasic}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				if *pwStdin && *user == "" && *execCmd == "" {
					return usagef("--password-stdin needs --user")
				}
				if *user != "" || *pwStdin {
					pw, err := e.password(*pwStdin, "Password for camera "+args[0]+": ", false)
					if err != nil {
						return err
					}
					req.Password = pw
				}
				r, err := e.cl.CameraAdd(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "camera "+args[0]+" added", r)
			}
		}},
	{path: "camera adopt", args: "NAME (--device URN | --xaddr URL) --user U --password-stdin [--channels 1,3-5]",
		summary: "adopt an ONVIF device (found by discover, or at an XAddr) as a camera; a recorder as one camera per channel, NAME-chNN", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			device := fs.String("device", "", "the device's URN as listed by discover")
			xaddr := fs.String("xaddr", "", "the device's ONVIF service URL")
			user := fs.String("user", "", "ONVIF user name")
			pwStdin := fs.Bool("password-stdin", false, "read the ONVIF password from stdin (one line)")
			channels := fs.String("channels", "", "a recorder's channels to adopt, e.g. 1,3-5 (default: all)")
			return func(e *env, args []string) error {
				req := apitype.CameraAdoptRequest{Name: args[0], DeviceURN: *device, XAddr: *xaddr, User: *user, Channels: *channels}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				pw, err := e.password(*pwStdin, "ONVIF password for "+args[0]+": ", false)
				if err != nil {
					return err
				}
				req.Password = pw
				r, err := e.cl.CameraAdopt(e.ctx, req)
				if err != nil {
					return err
				}
				if len(r.Cameras) > 0 {
					return e.print(r, func(w io.Writer) {
						fmt.Fprintln(w, r.Message)
						fmt.Fprintln(w, "CAMERA\tCHANNEL\tNAME\tSTREAMS")
						for _, c := range r.Cameras {
							var names []string
							for _, s := range c.Streams {
								names = append(names, s.Name)
							}
							fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", c.Name, c.Channel, c.ChannelName, strings.Join(names, ","))
						}
					})
				}
				return mutationDone(e, "camera "+args[0]+" adopted", r)
			}
		}},
	{path: "camera list", summary: "list the cameras", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.CameraList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tUSER\tPASSWORD\tSTREAMS\tONVIF\tNOTE")
					for _, c := range r.Cameras {
						var names []string
						for _, s := range c.Streams {
							names = append(names, s.Name)
						}
						onvif := "-"
						if c.ONVIF != nil {
							onvif = orDash(c.ONVIF.URN)
						}
						note := "-"
						if c.PendingMove != nil {
							note = c.PendingMove.Hint
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, orDash(c.User), yesNo(c.HasPassword), orDash(strings.Join(names, ",")), onvif, note)
					}
				})
			}
		}},
	{path: "camera show", args: "NAME", summary: "show one camera", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				if err := apitype.CheckName("camera", args[0]); err != nil {
					return invalid(err)
				}
				c, err := e.cl.CameraShow(e.ctx, args[0])
				if err != nil {
					return err
				}
				return e.print(c, func(w io.Writer) {
					fmt.Fprintf(w, "name\t%s\n", c.Name)
					fmt.Fprintf(w, "user\t%s\n", orDash(c.User))
					fmt.Fprintf(w, "password\t%s\n", map[bool]string{true: "set", false: "none"}[c.HasPassword])
					if c.Recorder != "" {
						fmt.Fprintf(w, "recorder\t%s, channel %d (%s); credentials shared by its channels\n", c.Recorder, c.Channel, orDash(c.ChannelName))
					}
					fmt.Fprintf(w, "rtsp basic\t%s\n", map[bool]string{true: "allowed (password in clear)", false: "refused (Digest only)"}[c.AllowBasic])
					if o := c.ONVIF; o != nil {
						fmt.Fprintf(w, "onvif urn\t%s\n", orDash(o.URN))
						fmt.Fprintf(w, "onvif xaddr\t%s\n", orDash(o.XAddr))
						fmt.Fprintf(w, "tls certificate\t%s\n", map[bool]string{true: "pinned sha256 " + o.CertSHA256, false: "none (plain HTTP: moves need confirming)"}[o.CertSHA256 != ""])
						fmt.Fprintf(w, "device\t%s %s (firmware %s, serial %s)\n", orDash(o.Manufacturer), orDash(o.Model), orDash(o.Firmware), orDash(o.Serial))
					}
					if m := c.PendingMove; m != nil {
						fmt.Fprintf(w, "pending move\t%s\n", m.Hint)
						fmt.Fprintf(w, "pending since\t%s (%s; not followed: %s)\n", fmtTime(m.SeenAt), orDash(m.Source), orDash(m.Reason))
					}
					fmt.Fprintf(w, "created\t%s\n", fmtTime(c.Created))
					fmt.Fprintf(w, "changed\t%s\n", fmtTime(c.Changed))
					for _, s := range c.Streams {
						if s.Source == apitype.SourceExec {
							fmt.Fprintf(w, "stream %s\texec: %s on-demand=%s\n", s.Name, s.Exec, yesNo(s.OnDemand))
							continue
						}
						fmt.Fprintf(w, "stream %s\t%s transport=%s on-demand=%s\n", s.Name, s.URL, s.Transport, yesNo(s.OnDemand))
					}
				})
			}
		}},
	{path: "camera set", args: "NAME [--url U | --exec 'COMMAND ... {output}'] [--stream S] [--transport T] [--on-demand=true|false] [--user U] [--password-stdin] [--allow-basic=true|false]",
		summary: "change a camera; --stream picks the stream the other flags change", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			var rawURL, execCmd, stream, transport, user optString
			fs.Var(&execCmd, "exec", "new command publishing the stream to {output} (replaces --url)")
			var onDemand, allowBasic optBool
			fs.Var(&allowBasic, "allow-basic", "answer the camera's RTSP/HTTP Basic challenge (sends its password in clear; default: Digest only): true or false")
			fs.Var(&rawURL, "url", "the camera's new URL without credentials: rtsp(s)://, http(s):// (MJPEG) or rtmp(s)://HOST/APP/STREAM")
			fs.Var(&stream, "stream", "the stream to change (default: the camera's only stream)")
			fs.Var(&transport, "transport", "RTP transport: auto, tcp or udp")
			fs.Var(&onDemand, "on-demand", "pull only while read: true or false")
			fs.Var(&user, "user", "new user name for the camera")
			pwStdin := fs.Bool("password-stdin", false, "read the new camera password from stdin (one line)")
			return func(e *env, args []string) error {
				req := apitype.CameraSetRequest{Name: args[0], Stream: stream.v}
				if rawURL.set {
					req.URL = &rawURL.v
				}
				if execCmd.set {
					req.Exec = &execCmd.v
				}
				if transport.set {
					req.Transport = &transport.v
				}
				if onDemand.set {
					req.OnDemand = &onDemand.v
				}
				if allowBasic.set {
					req.AllowBasic = &allowBasic.v
				}
				if user.set {
					req.User = &user.v
				}
				var pw string
				if *pwStdin {
					req.Password = &pw
				}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				if *pwStdin {
					var err error
					if pw, err = e.password(true, "", false); err != nil {
						return err
					}
				}
				r, err := e.cl.CameraSet(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "camera "+args[0]+" updated", r)
			}
		}},
	{path: "camera move", args: "NAME --to HOST[:PORT]|URL",
		summary: "confirm an adopted camera's new address (shown as a pending move); its streams are re-read there", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			to := fs.String("to", "", "the camera's new address: HOST[:PORT] as shown by camera show, or its ONVIF device service URL")
			return func(e *env, args []string) error {
				if *to == "" {
					return usagef("--to is required")
				}
				req := apitype.CameraMoveRequest{Name: args[0], To: *to}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.CameraMove(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "camera "+args[0]+" moved", r)
			}
		}},
	{path: "camera remove", args: "NAME", summary: "remove a camera and close its sessions", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				if err := apitype.CheckName("camera", args[0]); err != nil {
					return invalid(err)
				}
				r, err := e.cl.CameraRemove(e.ctx, args[0])
				if err != nil {
					return err
				}
				return mutationDone(e, "camera "+args[0]+" removed", r)
			}
		}},
	{path: "stream list", summary: "show every stream: state, codec, bitrate, fps, readers, last error", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.StreamList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					// The rows are aligned on their own and the track lines
					// put under them afterwards: a line without tabs would
					// end the tabwriter's column block.
					var buf strings.Builder
					tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "PATH\tSTATE\tCODEC\tKBIT/S\tFPS\tREADERS\tLAST ERROR")
					for _, s := range r.Streams {
						path := s.Path
						if path == "" {
							path = s.Camera + "/" + s.Stream
						}
						last := s.LastError
						if s.PendingMove != nil {
							last = strings.TrimPrefix(strings.Join([]string{last, s.PendingMove.Hint}, "; "), "; ")
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.1f\t%d\t%s\n", path, s.State, orDash(s.Codec), s.BitrateKbps, s.FPS, s.Readers, orDash(last))
					}
					tw.Flush()
					rows := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
					fmt.Fprintln(w, rows[0])
					for i, s := range r.Streams {
						fmt.Fprintln(w, rows[i+1])
						for j, t := range s.Tracks {
							fmt.Fprintf(w, "  track %d: %s\n", j, trackLine(t, s.State == "live"))
						}
					}
				})
			}
		}},
	{path: "user add", args: "NAME --password-stdin", summary: "create an RTSP user", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			pwStdin := fs.Bool("password-stdin", false, "read the password from stdin (one line)")
			return func(e *env, args []string) error {
				if err := apitype.CheckName("user", args[0]); err != nil {
					return invalid(err)
				}
				pw, err := e.password(*pwStdin, "Password for "+args[0]+": ", true)
				if err != nil {
					return err
				}
				req := apitype.UserAddRequest{Name: args[0], Password: pw}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.UserAdd(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "user "+args[0]+" added", r)
			}
		}},
	{path: "user passwd", args: "NAME --password-stdin", summary: "set a user's password", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			pwStdin := fs.Bool("password-stdin", false, "read the new password from stdin (one line)")
			return func(e *env, args []string) error {
				if err := apitype.CheckName("user", args[0]); err != nil {
					return invalid(err)
				}
				pw, err := e.password(*pwStdin, "New password for "+args[0]+": ", true)
				if err != nil {
					return err
				}
				req := apitype.UserPasswdRequest{Name: args[0], Password: pw}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.UserPasswd(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "password of "+args[0]+" changed", r)
			}
		}},
	simple("user disable", "NAME", "disable a user and close their sessions", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		if err := apitype.CheckName("user", a[0]); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.UserDisable(e.ctx, a[0])
		return r, "user " + a[0] + " disabled", err
	}),
	simple("user enable", "NAME", "enable a user", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		if err := apitype.CheckName("user", a[0]); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.UserEnable(e.ctx, a[0])
		return r, "user " + a[0] + " enabled", err
	}),
	simple("user remove", "NAME", "remove a user and close their sessions", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		if err := apitype.CheckName("user", a[0]); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.UserRemove(e.ctx, a[0])
		return r, "user " + a[0] + " removed", err
	}),
	{path: "user list", summary: "list the users", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.UserList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tSTATE\tGROUPS\tCREATED\tCHANGED")
					for _, u := range r.Users {
						state := "enabled"
						if u.Disabled {
							state = "disabled"
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, state, orDash(strings.Join(u.Groups, ",")), fmtTime(u.Created), fmtTime(u.Changed))
					}
				})
			}
		}},
	simple("group add", "G", "create a group", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		if err := apitype.CheckName("group", a[0]); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.GroupAdd(e.ctx, a[0])
		return r, "group " + a[0] + " added", err
	}),
	simple("group remove", "G", "remove a group", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		if err := apitype.CheckName("group", a[0]); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.GroupRemove(e.ctx, a[0])
		return r, "group " + a[0] + " removed", err
	}),
	simple("group member add", "G USER", "add a user to a group", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		req := apitype.GroupMemberRequest{Group: a[0], User: a[1]}
		if err := req.Validate(); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.GroupMemberAdd(e.ctx, req)
		return r, "user " + a[1] + " added to group " + a[0], err
	}),
	simple("group member remove", "G USER", "remove a user from a group", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		req := apitype.GroupMemberRequest{Group: a[0], User: a[1]}
		if err := req.Validate(); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.GroupMemberRemove(e.ctx, req)
		return r, "user " + a[1] + " removed from group " + a[0], err
	}),
	{path: "group list", summary: "list the groups and their members", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.GroupList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "GROUP\tMEMBERS")
					for _, g := range r.Groups {
						fmt.Fprintf(w, "%s\t%s\n", g.Name, orDash(strings.Join(g.Members, ",")))
					}
				})
			}
		}},
	simple("grant", "SUBJECT ACTION PATTERN", "allow a user or @group to read|publish camera/stream, camera/* or *", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		g := apitype.Grant{Subject: a[0], Action: a[1], Pattern: a[2]}
		if err := g.Validate(); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.Grant(e.ctx, g)
		return r, "granted " + a[1] + " on " + a[2] + " to " + a[0], err
	}),
	simple("revoke", "SUBJECT ACTION PATTERN", "remove a grant and close the sessions it allowed", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		g := apitype.Grant{Subject: a[0], Action: a[1], Pattern: a[2]}
		if err := g.Validate(); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.Revoke(e.ctx, g)
		return r, "revoked " + a[1] + " on " + a[2] + " from " + a[0], err
	}),
	{path: "grants", args: "[SUBJECT]", summary: "list the grants (of one user or @group)", maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, args []string) error {
				subject := ""
				if len(args) == 1 {
					subject = args[0]
					if err := apitype.CheckSubject(subject); err != nil {
						return invalid(err)
					}
				}
				r, err := e.cl.Grants(e.ctx, subject)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "SUBJECT\tACTION\tPATTERN")
					for _, g := range r.Grants {
						fmt.Fprintf(w, "%s\t%s\t%s\n", g.Subject, g.Action, g.Pattern)
					}
				})
			}
		}},
	{path: "session list", summary: "list the live RTSP sessions", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.SessionList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "ID\tUSER\tACTION\tPATH\tREMOTE\tTRANSPORT\tSTARTED\tBYTES")
					for _, s := range r.Sessions {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.ID, s.User, s.Action, s.Path, s.Remote, orDash(s.Transport), fmtTime(s.Started), s.BytesSent)
					}
				})
			}
		}},
	simple("session kick", "ID", "close one RTSP session", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		r, err := e.cl.SessionKick(e.ctx, a[0])
		return r, "session " + a[0] + " kicked", err
	}),
	{path: "audit list", args: "[--since T] [--limit N]", summary: "show the audit log (T in RFC 3339, e.g. 2026-11-25T09:00:00Z)", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			since := fs.String("since", "", "only entries at or after this RFC 3339 time")
			limit := fs.Int("limit", 0, "at most this many entries (0: the daemon's default)")
			return func(e *env, _ []string) error {
				var req apitype.AuditListRequest
				if *since != "" {
					t, err := time.Parse(time.RFC3339, *since)
					if err != nil {
						return usagef("--since must be an RFC 3339 time such as 2026-11-25T09:00:00Z")
					}
					req.Since = t
				}
				if *limit < 0 {
					return usagef("--limit must not be negative")
				}
				req.Limit = *limit
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.AuditList(e.ctx, req)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tDETAIL")
					for _, a := range r.Entries {
						fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Seq, fmtTime(a.Time), a.Actor, a.Action, orDash(a.Target), orDash(a.Detail))
					}
				})
			}
		}},
	{path: "audit verify", args: "[--journal FILE|-]", summary: "check the audit log's keyed hash chain, and with --journal that the database holds every head the daemon's journal saw (exit 1 when broken)", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			journal := fs.String("journal", "", "the daemon's log (`-` for stdin), e.g. from `journalctl -u camwardend -o cat`: detects a database rolled back to an older copy")
			return func(e *env, _ []string) error {
				var req apitype.AuditVerifyRequest
				if *journal != "" {
					src := *journal
					var in io.Reader = e.stdin
					if src == "-" {
						src = "standard input"
					} else {
						f, err := os.Open(src)
						if err != nil {
							return fmt.Errorf("--journal: %w", err)
						}
						defer f.Close()
						in = f
					}
					heads, _, err := parseJournalHeads(in)
					if err != nil {
						return fmt.Errorf("--journal: reading %s: %w", src, err)
					}
					if len(heads) == 0 {
						return noHeadsError(src)
					}
					req.Journal = heads
				}
				r, err := e.cl.AuditVerify(e.ctx, req)
				if err != nil {
					return err
				}
				if err := e.print(r, func(w io.Writer) {
					if r.OK && r.JournalSeq > 0 {
						fmt.Fprintf(w, "audit chain intact: %d entries; holds the journal's newest head (entry %d) and the last head of every daemon run in it (%d heads checked)\n",
							r.Entries, r.JournalSeq, r.JournalHeads)
					} else if r.OK {
						fmt.Fprintf(w, "audit chain intact: %d entries\n", r.Entries)
					} else {
						fmt.Fprintf(w, "audit chain BROKEN at entry %d of %d: %s\n", r.FirstBad, r.Entries, r.Message)
					}
					for _, rk := range r.Rekeys {
						fmt.Fprintln(w, rekeyNote(rk))
					}
				}); err != nil {
					return err
				}
				if !r.OK {
					return fmt.Errorf("the audit chain does not verify (first bad entry %d)", r.FirstBad)
				}
				return nil
			}
		}},
	{path: "key rotate", summary: "re-seal every stored secret under a new data key (the master key file is not changed)", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.KeyRotate(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "new data key %s; re-sealed %d secret(s)\n", r.KeyID, r.Resealed)
				})
			}
		}},
	{path: "completion bash", summary: "print a bash completion script", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, a []string) error { return runCompletion(e, a) }
		}},
}

// runCompletion is set in init: the script is built from the table, which
// a direct reference here would make an initialization cycle.
var runCompletion runFunc

func init() {
	runCompletion = func(e *env, _ []string) error {
		_, err := io.WriteString(e.stdout, bashCompletion())
		return err
	}
}

// simple builds a command without flags whose positional arguments are all
// required and which answers with a MutationResult.
func simple(path, args, summary string, do func(e *env, args []string) (*apitype.MutationResult, string, error)) command {
	n := len(strings.Fields(args))
	return command{path: path, args: args, summary: summary, minArgs: n, maxArgs: n,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, a []string) error {
				r, what, err := do(e, a)
				if err != nil {
					return err
				}
				return mutationDone(e, what, r)
			}
		}}
}
