// Command camwarden administers camwardend over its local admin socket.
//
//	camwarden [--socket PATH] [--json] COMMAND [ARGS]
//
// Exit codes: 0 ok, 1 failure, 2 usage error, 3 permission denied.
// Secrets are read from stdin (--password-stdin) or a no-echo prompt, never
// from the command line. The CLI only uses daemon/apitype and daemon/client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
)

// callTimeout bounds one command's call to the daemon.
const callTimeout = 90 * time.Second

// Exit codes.
const (
	exitOK         = 0
	exitFailure    = 1
	exitUsage      = 2
	exitPermission = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a command runs with.
type env struct {
	ctx    context.Context // bounded by callTimeout
	base   context.Context // cancelled only by a signal
	cl     *client.Client
	socket string
	json   bool
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
}

// usageError is a mistake in the invocation: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	global := flag.NewFlagSet("camwarden", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&e.socket, "socket", client.DefaultSocket, "admin socket of camwardend")
	global.BoolVar(&e.json, "json", false, "print the response as JSON")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "camwarden: %v\n", err)
		printUsage(stderr)
		return exitUsage
	}
	words := global.Args()
	if len(words) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	if words[0] == "help" {
		return help(stdout, stderr, words[1:])
	}
	cmd, rest := lookup(words)
	if cmd == nil {
		return noCommand(stdout, stderr, words)
	}
	fs := newFlagSet(cmd, &e.json)
	runFn := cmd.setup(fs)
	pos, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(stdout, cmd)
			return exitOK
		}
		fmt.Fprintf(stderr, "camwarden %s: %v\n", cmd.path, err)
		fmt.Fprintf(stderr, "usage: camwarden %s\n", cmd.synopsis())
		return exitUsage
	}
	if len(pos) < cmd.minArgs || (cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs) {
		fmt.Fprintf(stderr, "camwarden %s: wrong number of arguments\nusage: camwarden %s\n", cmd.path, cmd.synopsis())
		return exitUsage
	}
	e.cl = client.New(e.socket)
	// A daemon that hangs must not hang the CLI; discover sets its own.
	e.base = ctx
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	e.ctx = callCtx
	if err := runFn(e, pos); err != nil {
		return report(stderr, cmd, err)
	}
	return exitOK
}

// report prints err in a way that says what to do and returns its exit code.
func report(stderr io.Writer, cmd *command, err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "camwarden %s: %v\nusage: camwarden %s\n", cmd.path, ue.msg, cmd.synopsis())
		return exitUsage
	}
	var ce *client.ConnError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "camwarden: %v\n", ce)
		if errors.Is(ce, os.ErrPermission) {
			return exitPermission
		}
		return exitFailure
	}
	var ae *apitype.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(stderr, "camwarden %s: %s (%s)\n", cmd.path, ae.Message, ae.Code)
		if ae.Code == apitype.CodeForbidden {
			group := "daemon's admin"
			if m := adminGroupRe.FindStringSubmatch(ae.Message); m != nil {
				group = m[1]
			}
			fmt.Fprintf(stderr, "hint: run as root (sudo) or as a member of the %s group\n", group)
			return exitPermission
		}
		return exitFailure
	}
	fmt.Fprintf(stderr, "camwarden %s: %v\n", cmd.path, err)
	return exitFailure
}

func newFlagSet(cmd *command, jsonOut *bool) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(jsonOut, "json", *jsonOut, "print the response as JSON")
	return fs
}

// parseInterleaved lets flags come before, between and after positional
// arguments (camera add NAME --url ...); after "--" all is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noCommand answers words that name no command: a group of commands
// (camera) lists them, with --help on stdout; a wrong word is named.
func noCommand(stdout, stderr io.Writer, words []string) int {
	n := len(words)
	for n > 0 && len(subcommands(words[:n])) == 0 {
		n--
	}
	if n == 0 {
		fmt.Fprintf(stderr, "camwarden: unknown command %q; run camwarden help\n", words[0])
		return exitUsage
	}
	group := strings.Join(words[:n], " ")
	subs := subcommands(words[:n])
	switch {
	case n == len(words):
		fmt.Fprintf(stderr, "camwarden: %q needs a subcommand:\n", group)
	case words[n] == "--help" || words[n] == "-help" || words[n] == "-h" || words[n] == "help":
		printCommands(stdout, subs)
		return exitOK
	default:
		fmt.Fprintf(stderr, "camwarden: unknown command %q; %q has these subcommands:\n", group+" "+words[n], group)
	}
	printCommands(stderr, subs)
	return exitUsage
}

// adminGroupRe finds the group a 403 answer names.
var adminGroupRe = regexp.MustCompile(`members of the (\S+) group`)

// lookup finds the command with the longest path matching the first words.
func lookup(words []string) (*command, []string) {
	var best *command
	bestLen := 0
	for i := range commands {
		p := strings.Fields(commands[i].path)
		if len(p) <= len(words) && len(p) > bestLen && equalWords(p, words[:len(p)]) {
			best, bestLen = &commands[i], len(p)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, words[bestLen:]
}

// subcommands lists the commands below a partial path such as "camera".
func subcommands(words []string) []*command {
	var out []*command
	for i := range commands {
		p := strings.Fields(commands[i].path)
		if len(p) > len(words) && equalWords(p[:len(words)], words) {
			out = append(out, &commands[i])
		}
	}
	return out
}

func equalWords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func help(stdout, stderr io.Writer, words []string) int {
	if len(words) == 0 {
		printUsage(stdout)
		return exitOK
	}
	if cmd, rest := lookup(words); cmd != nil && len(rest) == 0 {
		printCommandHelp(stdout, cmd)
		return exitOK
	}
	if subs := subcommands(words); len(subs) > 0 {
		printCommands(stdout, subs)
		return exitOK
	}
	fmt.Fprintf(stderr, "camwarden: no help for %q\n", strings.Join(words, " "))
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: camwarden [--socket PATH] [--json] COMMAND [ARGS]\n\n")
	fmt.Fprintf(w, "Administers camwardend over its admin socket (default %s).\n\nCommands:\n", client.DefaultSocket)
	var all []*command
	for i := range commands {
		all = append(all, &commands[i])
	}
	printCommands(w, all)
	fmt.Fprintf(w, "\nRun 'camwarden help COMMAND' for a command's flags. Exit codes: 0 ok, 1 failure, 2 usage, 3 permission denied.\n")
}

func printCommands(w io.Writer, cmds []*command) {
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s\n      %s\n", c.synopsis(), c.summary)
	}
}

func printCommandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "usage: camwarden %s\n\n%s\n", cmd.synopsis(), cmd.summary)
	fs := newFlagSet(cmd, new(bool))
	cmd.setup(fs)
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		lines = append(lines, fmt.Sprintf("  --%s\t%s", f.Name, f.Usage))
	})
	sort.Strings(lines)
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, l := range lines {
			fmt.Fprintln(tw, l)
		}
		tw.Flush()
	}
}

// print writes v as indented JSON with --json, else calls human.
func (e *env) print(v any, human func(w io.Writer)) error {
	if e.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}
