package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtp"
)

// Floor is the cheapest fan-out of one camera's video Go can do, the floor
// a restreamer is measured against (make bench's "floor" rows): it pulls
// the camera once, frames each access unit into one interleaved buffer and
// writes it to every reader with one write per reader per frame, from one
// goroutine, with no per-reader queue, no timer and no authentication. Its
// RTSP side answers just what rtspload's raw reader asks (DESCRIBE, SETUP,
// PLAY, OPTIONS).
type Floor struct {
	ln     net.Listener
	client *gortsplib.Client

	mu      sync.Mutex
	readers []*floorConn // copy-on-write
}

type floorConn struct {
	mu sync.Mutex // the frame writer and the RTSP replies
	c  net.Conn
}

const floorSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=floor\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"

// StartFloor pulls sourceURL (user and password for its Digest) and listens
// on listen.
func StartFloor(ctx context.Context, listen, sourceURL, user, password string) (*Floor, error) {
	su, err := url.Parse(sourceURL)
	if err != nil {
		return nil, err
	}
	if user != "" {
		su.User = url.UserPassword(user, password)
	}
	u, err := base.ParseURL(su.String())
	if err != nil {
		return nil, err
	}
	tcp := gortsplib.ProtocolTCP
	f := &Floor{client: &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}}
	if err := f.client.Start(); err != nil {
		return nil, err
	}
	desc, _, err := f.client.Describe(u)
	if err != nil {
		f.client.Close()
		return nil, fmt.Errorf("floor: describe the source: %w", err)
	}
	var video *description.Media
	for _, m := range desc.Medias {
		if m.Type == description.MediaTypeVideo {
			video = m
			break
		}
	}
	if video == nil {
		f.client.Close()
		return nil, errors.New("floor: the source has no video")
	}
	if _, err := f.client.Setup(desc.BaseURL, video, 0, 0); err != nil {
		f.client.Close()
		return nil, fmt.Errorf("floor: setup: %w", err)
	}
	frame := make([]byte, 0, 256<<10)
	f.client.OnPacketRTP(video, video.Formats[0], func(pkt *rtp.Packet) {
		n := pkt.MarshalSize()
		off := len(frame)
		frame = append(frame, '$', 0, byte(n>>8), byte(n))
		frame = append(frame, make([]byte, n)...)
		if _, err := pkt.MarshalTo(frame[off+4:]); err != nil {
			frame = frame[:off]
			return
		}
		if !pkt.Marker && len(frame) < 200<<10 {
			return
		}
		f.mu.Lock()
		rs := f.readers
		f.mu.Unlock()
		for _, r := range rs {
			r.mu.Lock()
			_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = r.c.Write(frame) // one write per reader per frame
			r.mu.Unlock()
		}
		frame = frame[:0]
	})
	if _, err := f.client.Play(nil); err != nil {
		f.client.Close()
		return nil, fmt.Errorf("floor: play: %w", err)
	}
	var lc net.ListenConfig
	f.ln, err = lc.Listen(ctx, "tcp", listen)
	if err != nil {
		f.client.Close()
		return nil, err
	}
	go f.accept()
	return f, nil
}

// Addr is where readers connect.
func (f *Floor) Addr() string { return f.ln.Addr().String() }

// Close stops the source and every reader.
func (f *Floor) Close() {
	f.ln.Close()
	f.client.Close()
	f.mu.Lock()
	for _, r := range f.readers {
		r.c.Close()
	}
	f.readers = nil
	f.mu.Unlock()
}

func (f *Floor) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.serve(&floorConn{c: c})
	}
}

// serve answers the RTSP requests of one reader; after PLAY it joins the
// readers and this goroutine only answers keep-alives.
func (f *Floor) serve(fc *floorConn) {
	defer f.drop(fc)
	br := bufio.NewReader(fc.c)
	for {
		method, cseq, err := readRequest(br)
		if err != nil {
			return
		}
		var extra, body string
		switch method {
		case "DESCRIBE":
			extra = "Content-Type: application/sdp\r\n"
			body = floorSDP
		case "SETUP":
			extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: floor;timeout=60\r\n"
		case "PLAY":
			extra = "Session: floor;timeout=60\r\n"
		}
		fc.mu.Lock()
		_, err = fmt.Fprintf(fc.c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\n%sContent-Length: %d\r\n\r\n%s", cseq, extra, len(body), body)
		fc.mu.Unlock()
		if err != nil {
			return
		}
		if method == "PLAY" {
			f.mu.Lock()
			f.readers = append(append([]*floorConn(nil), f.readers...), fc)
			f.mu.Unlock()
		}
	}
}

func (f *Floor) drop(fc *floorConn) {
	fc.c.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.readers {
		if r == fc {
			f.readers = append(append([]*floorConn(nil), f.readers[:i]...), f.readers[i+1:]...)
			return
		}
	}
}

// readRequest reads one request head; it returns the method and CSeq.
func readRequest(br *bufio.Reader) (method, cseq string, err error) {
	line, err := readLine(br)
	if err != nil {
		return "", "", err
	}
	method, _, _ = strings.Cut(line, " ")
	for n := 0; ; n++ {
		if n > 100 {
			return "", "", errors.New("too many header lines")
		}
		l, err := readLine(br)
		if err != nil {
			return "", "", err
		}
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(k), "cseq") {
			cseq = strings.TrimSpace(v)
		}
	}
	return method, cseq, nil
}
