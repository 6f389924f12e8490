package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/internal/testutil"
)

const execCamPassword = "Exec-Cam-Secret-1"

// An exec camera through the admin API: the command is validated, audited,
// run with the camera password in CAMWARDEN_PASSWORD only, served to a
// reader with the publish credential kept out of every answer, and stopped
// when the camera is removed.
func TestExecCameraThroughTheAdminAPI(t *testing.T) {
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s missing (apt ffmpeg): %v", bin, err)
		}
	}
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", clip).CombinedOutput(); err != nil {
		t.Fatalf("making the clip: %v: %s", err, out)
	}
	result := filepath.Join(dir, "result")
	script := filepath.Join(dir, "source.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
if [ "$CAMWARDEN_PASSWORD" = "`+execCamPassword+`" ] && [ "$CAMWARDEN_USER" = "vendor" ]; then echo match > "$2"; else echo mismatch > "$2"; fi
exec ffmpeg -hide_banner -loglevel warning -re -stream_loop -1 -i "$3" -c copy -f rtsp -rtsp_transport tcp "$1"
`), 0o700); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	td := startTestDaemonLogging(t, &logs)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	for _, bad := range []struct{ cmd, want string }{
		{"ffmpeg -i x -f rtsp out", "{output}"},
		{"ffmpeg -i x -f rtsp {output} | tee log", "unquoted \"|\""},
		{"no-such-program-here {output}", "not found"},
		{`ffmpeg -i "unclosed {output}`, "unclosed quote"},
	} {
		_, err := td.client.CameraAdd(ctx, apitype.CameraAddRequest{Name: "bad", Exec: bad.cmd})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("--exec %q: got %v, want an error naming %q", bad.cmd, err, bad.want)
		}
	}
	if _, err := td.client.CameraShow(ctx, "bad"); err == nil {
		t.Error("a refused exec camera was stored")
	}

	cmd := "'" + script + "' {output} '" + result + "' '" + clip + "'"
	if _, err := td.client.CameraAdd(ctx, apitype.CameraAddRequest{Name: "odd", Exec: cmd, User: "vendor", Password: execCamPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.client.UserAdd(ctx, apitype.UserAddRequest{Name: "viewer", Password: "viewer-pw-123"}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.client.Grant(ctx, apitype.Grant{Subject: "viewer", Action: "read", Pattern: "odd/*"}); err != nil {
		t.Fatal(err)
	}
	var st apitype.StreamStatus
	testutil.WaitFor(t, 60*time.Second, "exec camera live", func() bool {
		l, err := td.client.StreamList(ctx)
		if err != nil || len(l.Streams) != 1 {
			return false
		}
		st = l.Streams[0]
		return st.State == "live"
	})
	if st.Source != "exec" || st.SourcePID <= 0 {
		t.Errorf("stream status %+v: want source exec and its PID", st)
	}
	cam, err := td.client.CameraShow(ctx, "odd")
	if err != nil || len(cam.Streams) != 1 || cam.Streams[0].Source != apitype.SourceExec || cam.Streams[0].Exec != cmd {
		t.Errorf("camera show %+v, %v", cam, err)
	}
	if b, _ := os.ReadFile(result); strings.TrimSpace(string(b)) != "match" {
		t.Errorf("CAMWARDEN_PASSWORD/CAMWARDEN_USER did not reach the command: %q", b)
	}
	args, err := os.ReadFile("/proc/" + strconv.Itoa(st.SourcePID) + "/cmdline")
	if err != nil || !bytes.Contains(args, []byte("rtsp://exec-")) || bytes.Contains(args, []byte(execCamPassword)) {
		t.Errorf("command line %q (%v): want the publish URL and not the camera password", args, err)
	}

	addr := td.d.streams.Addr().String()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name",
		"-of", "csv=p=0", "rtsp://viewer:viewer-pw-123@"+addr+"/odd/main").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "h264") || !strings.Contains(string(out), "aac") {
		t.Errorf("ffprobe of the restream: %v: %s", err, out)
	}

	entries, err := td.client.AuditList(ctx, apitype.AuditListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range entries.Entries {
		if e.Action == "camera.add" && e.Target == "odd" && strings.Contains(e.Detail, script) {
			audited = true
		}
	}
	if !audited {
		t.Errorf("the exec command is not in the audit log: %+v", entries.Entries)
	}

	// Neither the camera password nor the one-time publish secret shows.
	_, publish, _ := strings.Cut(string(args), "rtsp://exec-")
	userinfo, _, _ := strings.Cut(publish, "@")
	_, secret, _ := strings.Cut(userinfo, ":")
	if len(secret) < 16 {
		t.Fatalf("no publish secret found in %q", args)
	}
	list, err := td.client.StreamList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cams, err := td.client.CameraList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answers, err := json.Marshal([]any{list, cams, entries})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{execCamPassword, secret} {
		if bytes.Contains(answers, []byte(sec)) {
			t.Errorf("secret %q in an API answer", sec)
		}
		if strings.Contains(logs.String(), sec) {
			t.Errorf("secret %q in the daemon log", sec)
		}
	}

	// camera set --url replaces the command: it is stopped.
	pid := st.SourcePID
	rtspURL := "rtsp://127.0.0.1:1/none"
	if _, err := td.client.CameraSet(ctx, apitype.CameraSetRequest{Name: "odd", URL: &rtspURL}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "exec process gone after camera set --url", func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	})
	if cam, err := td.client.CameraShow(ctx, "odd"); err != nil || cam.Streams[0].Source != apitype.SourceRTSP || cam.Streams[0].Exec != "" {
		t.Errorf("after set --url: %+v, %v", cam, err)
	}
	// camera set --exec makes it an exec source again, with a new process.
	if _, err := td.client.CameraSet(ctx, apitype.CameraSetRequest{Name: "odd", Exec: &cmd}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, "exec camera live again", func() bool {
		l, err := td.client.StreamList(ctx)
		if err != nil || len(l.Streams) != 1 {
			return false
		}
		st = l.Streams[0]
		return st.State == "live" && st.SourcePID > 0
	})
	pid = st.SourcePID
	if _, err := td.client.CameraRemove(ctx, "odd"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "exec process gone after camera remove", func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	})
}

// An rtmp:// URL is accepted by camera add and pulled over RTMP: its stream
// is of source rtmp and, with nothing listening, its error names the URL.
func TestRTMPCameraThroughTheAdminAPI(t *testing.T) {
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := td.client.CameraAdd(ctx, apitype.CameraAddRequest{Name: "enc", URL: "rtmp://127.0.0.1:1/live/cam1"}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the RTMP pull failing", func() bool {
		l, err := td.client.StreamList(ctx)
		return err == nil && len(l.Streams) == 1 && l.Streams[0].Source == "rtmp" &&
			strings.Contains(l.Streams[0].LastError, "connect rtmp://127.0.0.1:1/live/cam1")
	})
	if cam, err := td.client.CameraShow(ctx, "enc"); err != nil || cam.Streams[0].Source != apitype.SourceRTMP {
		t.Errorf("camera show %+v, %v", cam, err)
	}
}
