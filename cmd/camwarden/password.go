package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxPasswordBytes bounds the one line read as a password.
const maxPasswordBytes = 4096

// password returns a secret: one line of stdin with --password-stdin, else a
// no-echo prompt when stdin is a terminal. Never from argv.
func (e *env) password(fromStdin bool, prompt string, confirm bool) (string, error) {
	if fromStdin {
		return readPasswordLine(e.stdin)
	}
	if e.stdin == nil || !isTerminal(e.stdin) {
		return "", usagef("a password is needed: pipe it in with --password-stdin (passwords are never taken from the command line)")
	}
	pw, err := promptNoEcho(e.ctx, e.stdin, e.stderr, prompt)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", usagef("the password is empty")
	}
	if confirm {
		again, err := promptNoEcho(e.ctx, e.stdin, e.stderr, "Again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", usagef("the two passwords differ")
		}
	}
	return pw, nil
}

// readPasswordLine reads one line, strips the trailing newline (and a
// carriage return before it); an empty password is an error.
func readPasswordLine(r io.Reader) (string, error) {
	if r == nil {
		return "", usagef("--password-stdin: no stdin")
	}
	br := bufio.NewReaderSize(io.LimitReader(r, maxPasswordBytes+2), 64)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	if len(line) > maxPasswordBytes+1 || (len(line) > maxPasswordBytes && !strings.HasSuffix(line, "\n")) {
		return "", usagef("--password-stdin: the password is longer than %d bytes", maxPasswordBytes)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", usagef("--password-stdin: stdin held an empty password; pipe the password in, e.g. printf '%%s\\n' \"$PW\" | camwarden ...")
	}
	return line, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// promptNoEcho reads one line from the terminal f with echo turned off,
// restoring the terminal whatever happens.
func promptNoEcho(ctx context.Context, f *os.File, out io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("reading terminal settings: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("turning off terminal echo: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(out, prompt)
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Canonical mode hands over one line per read.
		buf := make([]byte, maxPasswordBytes+2)
		n, err := f.Read(buf)
		done <- result{string(buf[:n]), err}
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(out)
		return "", ctx.Err()
	case r := <-done:
		fmt.Fprintln(out)
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return "", fmt.Errorf("reading the password: %w", r.err)
		}
		line := strings.TrimSuffix(strings.TrimSuffix(r.line, "\n"), "\r")
		if len(line) > maxPasswordBytes {
			return "", usagef("the password is longer than %d bytes", maxPasswordBytes)
		}
		return line, nil
	}
}
