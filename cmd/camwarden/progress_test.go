package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/api"
)

// runOnTTY runs the CLI with stdout on a terminal and returns what it wrote.
func runOnTTY(t *testing.T, sock string, args ...string) string {
	t.Helper()
	master, slave := openPTY(t)
	t.Cleanup(func() { master.Close(); slave.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, append([]string{"--socket", sock}, args...)...)
	cmd.Stdout = slave
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, errb.String())
	}
	slave.Close()
	out, _ := io.ReadAll(master) // ends with EIO once the child and our copy are closed
	return string(out)
}

// discover shows its progress on a terminal, and only there: not with
// --json, not into a pipe.
func TestDiscoverProgressOnlyOnATerminal(t *testing.T) {
	r := newRig(t, api.Options{}, richBackend)
	const progress = "discovering ONVIF devices"
	if out := runOnTTY(t, r.sock, "discover", "--timeout", "1s"); !strings.Contains(out, progress) || !strings.Contains(out, "URN") {
		t.Errorf("on a terminal: %q; want progress, then the table", out)
	}
	if out := runOnTTY(t, r.sock, "--json", "discover", "--timeout", "1s"); strings.Contains(out, progress) || strings.Contains(out, "\033[K") {
		t.Errorf("--json on a terminal shows progress: %q", out)
	}
	if res := r.run(t, "", "discover", "--timeout", "1s"); res.code != 0 || strings.Contains(res.stdout, progress) || strings.Contains(res.stderr, progress) {
		t.Errorf("into a pipe: exit %d, stdout %q, stderr %q; want no progress", res.code, res.stdout, res.stderr)
	}
}
