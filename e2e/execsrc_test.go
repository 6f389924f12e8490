package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// TestExecCameraWithTheCLI: `camera add --exec` with the real binaries: the
// Debian ffmpeg reads a file and publishes it to {output}, ffprobe reads the
// restream with H.264 and AAC, the camera password reaches the command only
// as CAMWARDEN_PASSWORD (the harness scans every log and CLI output for it),
// and `camera remove` stops the process.
func TestExecCameraWithTheCLI(t *testing.T) {
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
		"-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg clip: %v: %s", err, out)
	}
	expected, result := filepath.Join(dir, "expected"), filepath.Join(dir, "result")
	if err := os.WriteFile(expected, []byte(cameraPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "source.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
if [ "$CAMWARDEN_PASSWORD" = "$(cat "$2")" ]; then echo match > "$3"; else echo mismatch > "$3"; fi
exec ffmpeg -hide_banner -loglevel warning -re -stream_loop -1 -i "$4" -c copy -f rtsp -rtsp_transport tcp "$1"
`), 0o700); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "")
	if out, code := d.cli("", "camera", "add", "odd", "--exec", "ffmpeg -i x -f rtsp out"); code == 0 || !strings.Contains(out, "{output}") {
		t.Errorf("an --exec without {output} was not refused clearly: exit %d: %s", code, out)
	}
	d.must(cameraPassword+"\n", "camera", "add", "odd", "--exec", script+" {output} "+expected+" "+result+" "+clip, "--password-stdin")
	var pid int
	testutil.WaitFor(t, 30*time.Second, "odd/main live", func() bool {
		o, _ := d.cli("", "--json", "stream", "list")
		var l struct {
			Streams []struct {
				State, Source string
				PID           int `json:"source_pid"`
			} `json:"streams"`
		}
		if json.Unmarshal([]byte(o), &l) != nil || len(l.Streams) != 1 {
			return false
		}
		pid = l.Streams[0].PID
		return l.Streams[0].State == "live" && l.Streams[0].Source == "exec"
	})
	if b, _ := os.ReadFile(result); strings.TrimSpace(string(b)) != "match" {
		t.Errorf("CAMWARDEN_PASSWORD did not reach the command: %q", b)
	}
	if show := d.must("", "camera", "show", "odd"); !strings.Contains(show, "exec: "+script) {
		t.Errorf("camera show:\n%s", show)
	}
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must("", "grant", "alice", "read", "odd/*")
	u := "rtsp://alice:" + url.QueryEscape(alicePassword) + "@" + d.rtsp + "/odd/main"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probe, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_name", "-of", "csv=p=0", u).CombinedOutput()
	if err != nil || !strings.Contains(string(probe), "h264") || !strings.Contains(string(probe), "aac") {
		t.Fatalf("ffprobe: %v: %q\ndaemon log:\n%s", err, probe, tail(d.logs.String(), 2000))
	}
	if args, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); err != nil || strings.Contains(string(args), cameraPassword) {
		t.Errorf("command line of %d: %v (camera password must not be there)", pid, err)
	}
	d.must("", "camera", "remove", "odd")
	testutil.WaitFor(t, 15*time.Second, "exec process gone", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestExecCredentialsInCommandRefused: a password written into --exec would
// be stored, shown by camera show and kept for good in the hash-chained
// audit. camera add and camera set refuse it (exit 2, saying where
// credentials go), and the secret is in no output and no audit entry.
func TestExecCredentialsInCommandRefused(t *testing.T) {
	const secret = "CamPassw0rdSecret" // in testdata/test-secrets.txt
	d := startDaemon(t, "")
	leaky := "ffmpeg -i rtsp://admin:" + secret + "@127.0.0.1:41775/main -c copy -f rtsp {output}"
	var outputs []string
	refused := func(args ...string) {
		t.Helper()
		out, code := d.cli("", args...)
		outputs = append(outputs, out)
		if code != 2 || !strings.Contains(out, "CAMWARDEN_PASSWORD") || !strings.Contains(out, "--password-stdin") {
			t.Errorf("camwarden %s: exit %d, want 2 and where credentials go:\n%s", args[0]+" "+args[1], code, out)
		}
	}
	refused("camera", "add", "leak", "--exec", leaky)
	refused("camera", "add", "leak2", "--exec", "sh -c 'tool --src \"http://u:"+secret+"@10.0.0.7/x\" --out \"$1\"' sh {output}")
	d.must("", "camera", "add", "leak", "--exec", "ffmpeg -i rtsp://127.0.0.1:41775/main -c copy -f rtsp {output}")
	refused("camera", "set", "leak", "--exec", leaky)
	for _, args := range [][]string{
		{"camera", "show", "leak"}, {"--json", "camera", "show", "leak"}, {"camera", "list"},
		{"audit", "list"}, {"--json", "audit", "list"},
	} {
		outputs = append(outputs, d.must("", args...))
	}
	if show := outputs[len(outputs)-5]; !strings.Contains(show, "exec: ffmpeg -i rtsp://127.0.0.1:41775/main") {
		t.Errorf("camera show lost the accepted command:\n%s", show)
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, url.QueryEscape(secret)) {
			t.Errorf("the secret written into --exec is in CLI output:\n%s", out)
		}
	}
	if strings.Contains(d.logs.String(), secret) {
		t.Error("the secret written into --exec is in the daemon log")
	}
}
