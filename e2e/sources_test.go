package e2e

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// TestMJPEGOverHTTPCamera: a camera that only serves multipart MJPEG over
// HTTP (Python's standard library, Digest auth, ffmpeg-made frames) is
// added with the CLI and plays in ffprobe as RTP/JPEG; stream list shows
// its track; its password appears nowhere.
func TestMJPEGOverHTTPCamera(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
		"-frames:v", "10", "-pix_fmt", "yuvj420p", "-q:v", "5", "-huffman", "default", filepath.Join(dir, "f%02d.jpg")).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg frames: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	script, _ := filepath.Abs("../testdata/stream/mjpeg_http_camera.py")
	ctx, cancel := context.WithCancel(context.Background())
	cam := exec.CommandContext(ctx, "/usr/bin/python3", script, port, "admin", dir)
	cam.Stdin = strings.NewReader(cameraPassword + "\n")
	out, _ := cam.StdoutPipe()
	if err := cam.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cam.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "READY" {
		t.Fatal("MJPEG camera did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	d := startDaemon(t, "")
	d.must(cameraPassword+"\n", "camera", "add", "door", "--url", "http://127.0.0.1:"+port+"/video.mjpg", "--user", "admin", "--password-stdin")
	testutil.WaitFor(t, 15*time.Second, "door/main live", func() bool {
		o, _ := d.cli("", "--json", "stream", "list")
		return strings.Contains(o, `"state": "live"`) && strings.Contains(o, `"codec": "MJPEG"`)
	})
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must("", "grant", "alice", "read", "door/*")
	u := "rtsp://alice:" + url.QueryEscape(alicePassword) + "@" + d.rtsp + "/door/main"
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	probe, err := exec.CommandContext(pctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", u).CombinedOutput()
	if err != nil || strings.TrimSpace(string(probe)) != "mjpeg,320,240" {
		t.Fatalf("ffprobe: %v: %q\ndaemon log:\n%s", err, probe, tail(d.logs.String(), 2000))
	}
	if table := d.must("", "stream", "list"); !strings.Contains(table, "track 0: video, MJPEG, 320x240") {
		t.Errorf("stream list:\n%s", table)
	}
	for _, form := range []string{cameraPassword, url.QueryEscape(cameraPassword)} {
		if strings.Contains(d.logs.String(), form) || strings.Contains(d.must("", "--json", "stream", "list"), form) {
			t.Errorf("camera password leaked (%q)", form)
		}
	}
}
