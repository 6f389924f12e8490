package stream

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// challengeLines sends a DESCRIBE (with Authorization if given) and returns
// the status and every WWW-Authenticate line of the answer.
func challengeLines(t *testing.T, rc *rawConn, uri, authorization string) (status int, offers []string) {
	t.Helper()
	rc.cseq++
	req := fmt.Sprintf("DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\n", uri, rc.cseq)
	if authorization != "" {
		req += "Authorization: " + authorization + "\r\n"
	}
	if _, err := rc.c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := rc.br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscanf(line, "RTSP/1.0 %d", &status)
	length := 0
	for {
		l, err := rc.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		switch strings.ToLower(k) {
		case "www-authenticate":
			offers = append(offers, strings.TrimSpace(v))
		case "content-length":
			fmt.Sscanf(strings.TrimSpace(v), "%d", &length)
		}
	}
	if length > 0 {
		buf := make([]byte, length)
		if _, err := rc.br.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	return status, offers
}

// basic_auth = tls-only (the default): over plain RTSP the challenge offers
// Digest only, a Basic login is refused without its password being checked
// (even a correct one) and counted as a failure, and Digest works.
// basic_auth = always offers both and takes Basic.
func TestBasicOnlyOverTLSByDefault(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	var mode atomic.Value
	mode.Store(BasicTLSOnly)
	r := newRig(t, func(c *Config) { c.BasicAuth = func() string { return mode.Load().(string) } })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	uri := "rtsp://" + r.addr + "/cam1/main"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw"))

	rc := dialRaw(t, r.addr, 0)
	st, offers := challengeLines(t, rc, uri, "")
	if st != 401 || len(offers) != 1 || !strings.HasPrefix(offers[0], "Digest ") {
		t.Fatalf("tls-only challenge over plain RTSP: %d %q (want Digest only)", st, offers)
	}
	if st, _ := challengeLines(t, rc, uri, basic); st != 401 {
		t.Fatalf("a correct Basic login over plain RTSP with tls-only: %d, want 401", st)
	}
	if !rc.closed() {
		t.Fatal("the refused Basic login's connection stays open")
	}
	if !strings.Contains(r.logs.String(), "refused a Basic login sent without TLS (basic_auth = tls-only)") {
		t.Fatalf("no log line says why:\n%s", r.logs.String())
	}
	if st, _, body, _ := describeDigest(t, r.addr, "cam1/main", "alice", "alicepw"); st != 200 || !strings.Contains(body, "H264") {
		t.Fatalf("Digest over plain RTSP with tls-only: %d", st)
	}

	mode.Store(BasicAlways)
	rc = dialRaw(t, r.addr, 0)
	st, offers = challengeLines(t, rc, uri, "")
	if st != 401 || len(offers) != 2 {
		t.Fatalf("always: challenge %d %q, want Basic and Digest", st, offers)
	}
	if st, _ := challengeLines(t, rc, uri, basic); st != 200 {
		t.Fatalf("Basic with always: %d", st)
	}
	mode.Store(BasicNever)
	rc = dialRaw(t, r.addr, 0)
	if st, offers = challengeLines(t, rc, uri, ""); len(offers) != 1 || !strings.HasPrefix(offers[0], "Digest ") {
		t.Fatalf("never: challenge %d %q", st, offers)
	}
}
