package stream

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeTestClip writes a short H.264 + AAC file made from ffmpeg's lavfi
// test sources.
func makeTestClip(t *testing.T) string {
	t.Helper()
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", clip).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg (apt ffmpeg) making the test clip: %v: %s", err, out)
	}
	return clip
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "source.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// publishScript checks CAMWARDEN_PASSWORD against the file $2 (writing
// "match" or "mismatch" to $3), then becomes ffmpeg publishing the clip $4
// to $1, looping.
const publishScript = `if [ "$CAMWARDEN_PASSWORD" = "$(cat "$2")" ]; then echo match > "$3"; else echo mismatch > "$3"; fi
exec ffmpeg -hide_banner -loglevel warning -re -stream_loop -1 -i "$4" -c copy -f rtsp -rtsp_transport tcp "$1"
`

// publishCommand makes a test clip and returns it with the argv of an exec
// source running publishScript on it, and the file the script's password
// check writes to.
func publishCommand(t *testing.T) (clip string, argv []string, result string) {
	t.Helper()
	clip = makeTestClip(t)
	dir := t.TempDir()
	expected := filepath.Join(dir, "expected")
	result = filepath.Join(dir, "result")
	if err := os.WriteFile(expected, []byte(camPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	return clip, []string{writeScript(t, publishScript), OutputPlaceholder, expected, result, clip}, result
}

// assertH264AAC checks with ffprobe that the restream of path has one
// H.264 and one AAC track.
func assertH264AAC(t *testing.T, r *rig, path string) {
	t.Helper()
	p, stderr, err := ffprobe(t, "tcp", r.url("alice", "alicepw", path))
	if err != nil {
		t.Fatalf("ffprobe: %v: %s\nlogs:\n%s", err, stderr, r.logs.String())
	}
	codecs := map[string]bool{}
	for _, s := range p.Streams {
		codecs[s.CodecName] = true
	}
	if len(p.Streams) != 2 || !codecs["h264"] || !codecs["aac"] {
		t.Errorf("ffprobe of %s saw %+v, want h264 and aac", path, p)
	}
}

func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == syscall.ESRCH
}

func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatalf("read cmdline of %d: %v", pid, err)
	}
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

func execSpec(name string, argv []string, onDemand bool) CameraSpec {
	return camSpec(name, "main", "exec:", func(sp *StreamSpec) {
		sp.Exec, sp.OnDemand, sp.Transport = argv, onDemand, ""
	})
}

// TestExecSourceFFmpegPublishesFile: the Debian ffmpeg reads a file and
// publishes it to {output}; ffprobe reads the restream with H.264 and AAC.
// The camera password reaches the command only through CAMWARDEN_PASSWORD:
// not in its argv, the logs or the stream list. Removing the camera stops
// the process.
func TestExecSourceFFmpegPublishesFile(t *testing.T) {
	clip, argv, result := publishCommand(t)
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{execSpec("exe", argv, false)})
	waitFor(t, 30*time.Second, "exec source live", func() bool { return r.status("exe/main").State == StateLive })

	pid := r.status("exe/main").SourcePID
	if pid <= 0 {
		t.Fatalf("no source PID in status: %+v", r.status("exe/main"))
	}
	args := cmdline(t, pid)
	if !strings.Contains(args, "ffmpeg") || !strings.Contains(args, "rtsp://exec-") {
		t.Errorf("PID %d is not the publishing ffmpeg: %q", pid, args)
	}
	for _, form := range secretForms(camPassword) {
		if strings.Contains(args, form) {
			t.Errorf("camera password in the command's argv: %q", args)
		}
	}
	if got, err := os.ReadFile(result); err != nil || strings.TrimSpace(string(got)) != "match" {
		t.Errorf("CAMWARDEN_PASSWORD did not reach the command: %q, %v", got, err)
	}

	assertH264AAC(t, r, "exe/main")
	if st := r.status("exe/main"); st.Width != 320 || st.Height != 240 {
		t.Errorf("status %+v", st)
	}
	// The one-time credential publishes only: it reads nothing.
	userinfo, _, _ := strings.Cut(strings.TrimPrefix(args[strings.Index(args, "rtsp://"):], "rtsp://"), "@")
	u, pw, _ := strings.Cut(userinfo, ":")
	if _, _, err := ffprobe(t, "tcp", r.url(u, pw, "exe/main")); err == nil {
		t.Error("the exec source's publish credential could read the stream")
	}

	// Nor does it publish anything but its own path, and only with its secret.
	for _, target := range []string{r.url(u, pw, "pub/other"), r.url(u, "wrong"+pw, "exe/main")} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-re", "-i", clip, "-t", "1", "-c", "copy",
			"-f", "rtsp", "-rtsp_transport", "tcp", target).CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("publishing with the exec credential to %s succeeded: %s", strings.Replace(target, pw, "SECRET", 1), out)
		}
	}
	if st := r.status("exe/main"); st.State != StateLive || st.SourcePID != pid {
		t.Errorf("the refused publishers disturbed the exec source: %+v", st)
	}

	r.srv.SetCameras(context.Background(), nil)
	waitFor(t, 10*time.Second, "exec source process gone after camera removal", func() bool { return processGone(pid) })
	r.assertNoSecret(camPassword)
	if strings.Contains(r.logs.String(), pw) {
		t.Error("the one-time publish secret was logged")
	}
}

// TestExecSourceOnDemandStopsWhenIdle: an on-demand exec source runs only
// while someone reads it.
func TestExecSourceOnDemandStopsWhenIdle(t *testing.T) {
	_, argv, _ := publishCommand(t)
	r := newRig(t, func(c *Config) { c.OnDemandStartTimeout = 20 * time.Second })
	r.srv.SetCameras(context.Background(), []CameraSpec{execSpec("od", argv, true)})
	time.Sleep(300 * time.Millisecond) // would be enough to start it, were it always-on
	if st := r.status("od/main"); st.State != StateIdle || st.SourcePID != 0 {
		t.Fatalf("on-demand exec source running without readers: %+v", st)
	}
	rd := startReaderProc(t, r.url("alice", "alicepw", "od/main"))
	waitFor(t, 30*time.Second, "on-demand exec source live", func() bool { return r.status("od/main").State == StateLive })
	pid := r.status("od/main").SourcePID
	if pid <= 0 {
		t.Fatal("no PID while live")
	}
	rd.stop()
	waitFor(t, 15*time.Second, "exec process stopped after the last reader left", func() bool { return processGone(pid) })
	waitFor(t, 5*time.Second, "idle state", func() bool { st := r.status("od/main"); return st.State == StateIdle && st.SourcePID == 0 })
}

type readerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startReaderProc runs ffmpeg reading url until stopped.
func startReaderProc(t *testing.T, url string) *readerProc {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-f", "null", "-")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rp := &readerProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(rp.done) }()
	t.Cleanup(rp.stop)
	return rp
}

func (rp *readerProc) stop() {
	select {
	case <-rp.done:
		return
	default:
	}
	_ = rp.cmd.Process.Kill()
	<-rp.done
}

// TestExecSourceCrashRestartedWithBackoff: a command that fails is
// restarted with growing delays, and its output's tail is the stream's
// last error, without the publish URL's secret or the camera password.
func TestExecSourceCrashRestartedWithBackoff(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	script := writeScript(t, `date +%s.%N >> "$2"
echo "connecting to $1 with $CAMWARDEN_PASSWORD" >&2
echo "boom: device not found" >&2
exit 3
`)
	r := newRig(t, nil) // backoff 100 ms doubling to 400 ms
	r.srv.SetCameras(context.Background(), []CameraSpec{execSpec("bad", []string{script, OutputPlaceholder, starts}, false)})
	waitFor(t, 20*time.Second, "four starts", func() bool {
		b, _ := os.ReadFile(starts)
		return strings.Count(string(b), "\n") >= 4
	})
	st := r.status("bad/main")
	if !strings.Contains(st.LastError, "exit status 3") || !strings.Contains(st.LastError, "boom: device not found") {
		t.Errorf("last error lacks the exit and the output tail: %q", st.LastError)
	}
	if !strings.Contains(st.LastError, "connecting to *** with ***") || strings.Contains(st.LastError, "rtsp://") {
		t.Errorf("last error not redacted: %q", st.LastError)
	}
	if st.Reconnects < 3 {
		t.Errorf("reconnects %d", st.Reconnects)
	}
	r.assertNoSecret(camPassword)

	b, _ := os.ReadFile(starts)
	var ts []float64
	for _, l := range strings.Fields(string(b)) {
		f, err := strconv.ParseFloat(l, 64)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, f)
	}
	// Delays: ~100 ms, ~200 ms, ~400 ms (+-20%), plus the run time.
	if d := ts[1] - ts[0]; d < 0.08 {
		t.Errorf("first restart after %.3fs, want >= 0.08s", d)
	}
	if d := ts[3] - ts[2]; d < 0.3 {
		t.Errorf("third restart after %.3fs, want >= 0.3s (backoff grows)", d)
	}
}

// TestExecSourcePublishesWhileLoopbackIsThrottled: failed logins from
// 127.0.0.1 (a local user guessing passwords) block that address, but not
// the exec source's own publisher, which proves itself with its one-time
// credential; other requests from the address stay refused.
func TestExecSourcePublishesWhileLoopbackIsThrottled(t *testing.T) {
	_, argv, _ := publishCommand(t)
	r := newRig(t, func(c *Config) { c.ThrottleFailures = 2 })
	for i := 0; i < 3; i++ {
		_, _, _ = ffprobe(t, "tcp", r.url("alice", "wrong-password", "any/main"))
	}
	if !r.srv.thr.blocked("127.0.0.1") {
		t.Fatal("the failed logins did not block 127.0.0.1")
	}
	r.srv.SetCameras(context.Background(), []CameraSpec{execSpec("thr", argv, false)})
	deadline := time.Now().Add(30 * time.Second)
	for r.status("thr/main").State != StateLive {
		if time.Now().After(deadline) {
			t.Fatalf("exec source not live while loopback is throttled: %+v", r.status("thr/main"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := ffprobe(t, "tcp", r.url("alice", "alicepw", "thr/main")); err == nil {
		t.Error("a reader from the blocked address was served")
	}
}
