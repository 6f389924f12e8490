package load

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("PLAY rtsp://h/p/ RTSP/1.0\r\nCSeq: 7\r\nSession: x\r\n\r\n"))
	m, cseq, err := readRequest(br)
	if err != nil || m != "PLAY" || cseq != "7" {
		t.Fatalf("got %q %q %v", m, cseq, err)
	}
	if _, _, err := readRequest(bufio.NewReader(strings.NewReader("OPTIONS x\r\n" + strings.Repeat("A: b\r\n", 200)))); err == nil {
		t.Fatal("a request with 200 header lines was accepted")
	}
}

// FuzzReadRequest: the floor's request parser never panics and never reads
// past what it was given.
func FuzzReadRequest(f *testing.F) {
	f.Add("DESCRIBE rtsp://127.0.0.1/cam1/main RTSP/1.0\r\nCSeq: 1\r\n\r\n")
	f.Add("SETUP x RTSP/1.0\r\ncseq:2\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n")
	f.Add("\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReader(strings.NewReader(in))
		for i := 0; i < 4; i++ {
			if _, _, err := readRequest(br); err != nil {
				return
			}
		}
	})
}
