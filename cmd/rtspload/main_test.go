package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/bench/load"
	"github.com/camwarden/camwarden/internal/camsim/media"
)

const camPassword = "rtspload-S3cret:@/ pw"

func startCamera(t *testing.T) *media.Server {
	t.Helper()
	cam, err := media.NewServer(media.Config{Addr: "127.0.0.1:0", Username: "admin", Password: camPassword, DisableUDP: true,
		Profiles: []media.Profile{{Name: "main", Width: 320, Height: 192, FPS: 25, BitrateKbps: 600, GOP: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })
	return cam
}

func events(t *testing.T, out string) map[string][]load.Event {
	t.Helper()
	m := map[string][]load.Event{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev load.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		m[ev.Event] = append(m[ev.Event], ev)
	}
	return m
}

func TestDurationMode(t *testing.T) {
	for _, client := range []string{"gortsplib", "raw"} {
		t.Run(client, func(t *testing.T) { testDurationMode(t, client) })
	}
}

func testDurationMode(t *testing.T, client string) {
	cam := startCamera(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"--addr", cam.Addr().String(), "--path", "main", "--readers", "3", "--user", "admin", "--client", client,
		"--password-stdin", "--warmup", "100ms", "--duration", "1s"}, strings.NewReader(camPassword+"\n"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ev := events(t, stdout.String())
	if len(ev["ready"]) != 1 || len(ev["measure_start"]) != 1 || len(ev["report"]) != 1 {
		t.Fatalf("events %v", ev)
	}
	r := ev["report"][0].Report
	if r.Readers != 3 || r.Received != 3 || r.ConnectErrors != 0 || r.Lost != 0 || r.Ended != 0 {
		t.Fatalf("report %+v", r)
	}
	// 600 kbit/s at 25 fps is several packets per frame: well over 25/s.
	if r.PacketsPerReaderS < 25 || r.Latency.N < 30 || r.Latency.P50Ms <= 0 || r.WindowS < 0.9 {
		t.Fatalf("report figures %+v", r)
	}
	if u := r.ByUser["admin"]; u == nil || u.Readers != 3 || u.Packets != r.Packets {
		t.Fatalf("by user %+v", r.ByUser)
	}
	if strings.Contains(stdout.String()+stderr.String(), camPassword) {
		t.Fatal("the password appears in the output")
	}
}

func TestCommandModeAndCloseEvents(t *testing.T) {
	cam := startCamera(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	if err := os.WriteFile(creds, []byte("admin:"+camPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--addr", cam.Addr().String(), "--path", "main", "--readers", "2", "--credentials-file", creds,
			"--duration", "0", "--events"}, inR, outW, &stderr)
		outW.Close()
	}()
	lines := make(chan load.Event, 16)
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev load.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err == nil {
				lines <- ev
			}
		}
		close(lines)
	}()
	next := func(want string) load.Event {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case ev, ok := <-lines:
				if !ok {
					t.Fatalf("rtspload ended before %s: %s", want, stderr.String())
				}
				if ev.Event == want {
					return ev
				}
			case <-timeout:
				t.Fatalf("no %s event", want)
			}
		}
	}
	next("ready")
	next("measure_start")
	// Ask for reports until packets have been counted, within a deadline.
	deadline := time.Now().Add(10 * time.Second)
	io.WriteString(inW, "report\n")
	rep := next("report").Report
	for rep.Packets == 0 && time.Now().Before(deadline) {
		io.WriteString(inW, "report\n")
		rep = next("report").Report
	}
	if rep.Readers != 2 || rep.Packets == 0 || rep.Ended != 0 {
		t.Fatalf("report %+v", rep)
	}
	io.WriteString(inW, "bogus\n")
	if ev := next("error"); !strings.Contains(ev.Error, "bogus") {
		t.Fatalf("unknown command: %+v", ev)
	}
	// The server ending the sessions shows as one closed event per reader.
	before := time.Now()
	cam.Close()
	seen := map[int]bool{}
	for range 2 {
		ev := next("closed")
		if ev.Reader == nil || ev.User != "admin" || time.Unix(0, ev.TimeNs).Before(before) {
			t.Fatalf("closed event %+v", ev)
		}
		seen[*ev.Reader] = true
	}
	if !seen[0] || !seen[1] {
		t.Fatalf("closed readers %v", seen)
	}
	inW.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rtspload did not exit at end of input")
	}
	if strings.Contains(stderr.String(), camPassword) {
		t.Fatal("the password appears in stderr")
	}
}

func TestArgumentErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("secret-line-without-colon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--path", "a/b", "--user", "u", "--password-stdin", camPassword}, "never arguments"},
		{[]string{"--path", "a/b"}, "--credentials-file"},
		{[]string{"--user", "u", "--password-stdin"}, "--path"},
		{[]string{"--path", "a/b", "--credentials-file", bad}, "line 1"},
		{[]string{"--path", "a/b", "--credentials-file", bad, "--user", "u"}, "excludes"},
		{[]string{"--path", "a/b", "--user", "u"}, "--password-stdin or --password-file"},
		{[]string{"--path", "a/b", "--client", "vlc"}, "gortsplib or raw"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, strings.NewReader(""), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
		if strings.Contains(stderr.String(), camPassword) || strings.Contains(stderr.String(), "secret-line") {
			t.Errorf("%v: stderr shows a secret", c.args)
		}
	}
}
