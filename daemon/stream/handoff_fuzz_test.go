package stream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// FuzzPlayingClientInput feeds what a playing reader's client might send
// through the handed-off connection's parser and answers: nothing panics,
// every answer marshals, echoes the request's CSeq, and names no session
// but the connection's own.
func FuzzPlayingClientInput(f *testing.F) {
	const id = "0123456789abcdef0123456789abcdef"
	f.Add([]byte("GET_PARAMETER rtsp://h/cam1/main/ RTSP/1.0\r\nCSeq: 4\r\nSession: " + id + "\r\n\r\n"))
	f.Add([]byte("$\x01\x00\x08\x80\xc9\x00\x01\x00\x00\x00\x01OPTIONS * RTSP/1.0\r\nCSeq: 5\r\n\r\n"))
	f.Add([]byte("PAUSE rtsp://h/cam1/main/ RTSP/1.0\r\nCSeq: 6\r\nSession: other\r\n\r\nTEARDOWN rtsp://h/ RTSP/1.0\r\nCSeq: 7\r\nSession: " + id + "\r\n\r\n"))
	f.Add([]byte("SETUP rtsp://h/cam1/main/ RTSP/1.0\r\nSession: " + id + "\r\n\r\n"))
	f.Add([]byte("\x16\x03\x01 not rtsp\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		for range 64 {
			req, err := readFromPlayingClient(br)
			if err != nil {
				if !errors.Is(err, errUnreadable) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, bufio.ErrBufferFull) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if req == nil {
				continue // a dropped frame
			}
			res, act := answerPlaying(req, id)
			if _, err := res.Marshal(); err != nil {
				t.Fatalf("answer does not marshal: %v", err)
			}
			if cs, ok := req.Header["CSeq"]; ok && len(cs) == 1 && !slicesEqual(res.Header["CSeq"], cs) {
				t.Fatalf("CSeq %q answered as %q", cs, res.Header["CSeq"])
			}
			if v, ok := res.Header["Session"]; ok && (len(v) != 1 || sessionIDOf(v[0]) != id) {
				t.Fatalf("answer names session %q", v)
			}
			if res.StatusCode == base.StatusSessionNotFound && act != playNone {
				t.Fatal("a request for another session acted on this one")
			}
			if act == playEnd {
				return
			}
		}
	})
}

func slicesEqual(a, b base.HeaderValue) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
