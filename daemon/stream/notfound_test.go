package stream

import (
	"bufio"
	"context"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// notFoundCam answers every RTSP request with 404, as a camera does for a
// stream path it does not have.
func notFoundCam(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := textproto.NewReader(bufio.NewReader(c))
				for {
					if _, err := r.ReadLine(); err != nil {
						return
					}
					hdr, err := r.ReadMIMEHeader()
					if err != nil {
						return
					}
					c.Write([]byte("RTSP/1.0 404 Not Found\r\nCSeq: " + hdr.Get("Cseq") + "\r\n\r\n"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A source whose URL answers 404 reads as a failure with its error from
// the first attempt, never as live.
func TestNotFoundSourceIsAnErrorNotLive(t *testing.T) {
	addr := notFoundCam(t)
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", "rtsp://"+addr+"/nope", nil)})
	seen := map[string]bool{}
	deadline := time.Now().Add(3 * time.Second)
	var last StreamStatus
	for time.Now().Before(deadline) {
		last = r.status("cam1/main")
		seen[last.State] = true
		time.Sleep(5 * time.Millisecond)
	}
	if seen[StateLive] {
		t.Errorf("a 404 source was shown live (states seen %v)", seen)
	}
	if last.State == StateLive || !strings.Contains(last.LastError, "404") {
		t.Errorf("status %q, last error %q; want a failure naming the 404", last.State, last.LastError)
	}
}

// The same after an edit: a live stream whose URL is changed to one that
// answers 404 never reads as live again.
func TestStreamEditedToNotFoundURLIsAnError(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	addr := notFoundCam(t)
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", "rtsp://"+addr+"/nope", func(sp *StreamSpec) { sp.Revision = "2" })})
	seen := map[string]bool{}
	deadline := time.Now().Add(3 * time.Second)
	var last StreamStatus
	for time.Now().Before(deadline) {
		last = r.status("cam1/main")
		seen[last.State] = true
		time.Sleep(5 * time.Millisecond)
	}
	if seen[StateLive] || !strings.Contains(last.LastError, "404") {
		t.Errorf("states seen %v, last %q %q; want never live and the 404 named", seen, last.State, last.LastError)
	}
}
