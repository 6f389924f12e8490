package load

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

func TestRawReaderMeasuresRealCamera(t *testing.T) {
	cam := startCamera(t)
	closed := make(chan int, 4)
	cfg := ReaderConfig{Addr: cam.Addr().String(), Path: "main", User: "admin", Password: camPassword,
		OnClose: func(id int, user string, _ time.Time, _ error) {
			if user == "admin" {
				closed <- id
			}
		}}
	var rs []*RawReader
	for i := range 2 {
		r, err := StartRawReader(context.Background(), i, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitReceiving(ctx, rs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "20 frames", func() bool {
		rs[1].mu.Lock()
		defer rs[1].mu.Unlock()
		return rs[1].hist.N >= 20
	})
	for _, r := range rs {
		s := r.Stats()
		if s.Packets == 0 || s.Lost != 0 || s.SeqResets != 0 {
			t.Errorf("raw reader %d: %+v", r.ID, s)
		}
		if _, ok := r.FirstKeyframe(); !ok {
			t.Errorf("raw reader %d: no keyframe", r.ID)
		}
		if h := r.TakeLatency(); h.N < 10 || h.Quantile(0.5) > time.Second {
			t.Errorf("raw reader %d: latency N=%d p50=%v", r.ID, h.N, h.Quantile(0.5))
		}
	}
	// The camera going away ends both sessions, and each reports it.
	cam.Close()
	for range 2 {
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("no close reported")
		}
	}
	for _, r := range rs {
		<-r.Done()
		r.Close()
	}
}

func TestRawReaderRefused(t *testing.T) {
	cam := startCamera(t)
	if _, err := StartRawReader(context.Background(), 1, ReaderConfig{Addr: cam.Addr().String(), Path: "main", User: "admin", Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := StartRawReader(context.Background(), 2, ReaderConfig{Addr: cam.Addr().String(), Path: "main"}); err == nil {
		t.Fatal("no credentials accepted")
	}
	cam.SetFaults(media.Faults{BadSDP: true})
	if _, err := StartRawReader(context.Background(), 3, ReaderConfig{Addr: cam.Addr().String(), Path: "main", User: "admin", Password: camPassword}); err == nil {
		t.Fatal("bad SDP accepted")
	}
}

func TestParsers(t *testing.T) {
	realm, nonce, ok := digestParams(`Digest realm="IPCAM, lobby", nonce="abc123", stale=FALSE`)
	if !ok || realm != "IPCAM, lobby" || nonce != "abc123" {
		t.Fatalf("digest params %q %q %v", realm, nonce, ok)
	}
	if _, _, ok := digestParams(`Basic realm="x"`); ok {
		t.Fatal("Basic parsed as Digest")
	}
	sdp := []byte("v=0\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n")
	if c, ok := videoControl(sdp); !ok || c != "trackID=0" {
		t.Fatalf("control %q", c)
	}
	// RTP: V=2, one CSRC, extension of one word, padding of 2, marker, seq 0x1234.
	pkt := []byte{0xb1, 0xe0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 9, 9, 9, 9, 0x65, 0x88, 0, 2}
	p, ok := parseRTP(pkt)
	if !ok || p.seq != 0x1234 || !p.marker || !bytes.Equal(p.payload, []byte{0x65, 0x88}) {
		t.Fatalf("rtp %+v %v", p, ok)
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := parseRTP(bad); ok {
			t.Errorf("bad RTP %x parsed", bad)
		}
	}
	res, err := readRTSPResponse(bufio.NewReader(strings.NewReader("$\x00\x00\x02ab" +
		"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nxyz")))
	if err != nil || res.status != 200 || string(res.body) != "xyz" || res.headers["cseq"] != "1" {
		t.Fatalf("response %+v %v", res, err)
	}
	for _, bad := range []string{"HTTP/1.1 200 OK\r\n\r\n", "RTSP/1.0 abc\r\n\r\n", "RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", "RTSP/1.0 200 OK\r\nbroken\r\n\r\n"} {
		if _, err := readRTSPResponse(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzRawParsers(f *testing.F) {
	f.Add([]byte("RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nContent-Length: 2\r\n\r\nhi"))
	f.Add([]byte{0xb1, 0xe0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 9, 9, 9, 9, 0x65, 0x88, 0, 2})
	f.Add([]byte("$\x00\xff\xffRTSP/1.0 200 OK\r\n"))
	f.Add([]byte("v=0\nm=video 0 RTP/AVP 96\na=control:rtsp://h/p/trackID=0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseRTP(b)
		_, _ = readRTSPResponse(bufio.NewReaderSize(bytes.NewReader(b), 64))
		_, _, _ = digestParams(string(b))
		_, _ = videoControl(b)
	})
}
