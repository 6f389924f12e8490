package media

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"testing"
	"time"
)

// sinkConn records what a rewriteConn passes on.
type sinkConn struct {
	net.Conn
	out bytes.Buffer
}

func (s *sinkConn) Write(p []byte) (int, error) { return s.out.Write(p) }

func newTestRewriteConn(f Faults) (*rewriteConn, *sinkConn) {
	sink := &sinkConn{}
	return &rewriteConn{Conn: sink, faults: func() *Faults { return &f }, chans: map[byte]*chanState{}}, sink
}

func interleaved(ch byte, seq uint16, marker bool, payload []byte) []byte {
	pkt := make([]byte, 12, 12+len(payload))
	pkt[0] = 0x80
	pkt[1] = 96
	if marker {
		pkt[1] |= 0x80
	}
	binary.BigEndian.PutUint16(pkt[2:], seq)
	binary.BigEndian.PutUint32(pkt[4:], 9000)
	binary.BigEndian.PutUint32(pkt[8:], 0x11223344)
	pkt = append(pkt, payload...)
	return append([]byte{'$', ch, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
}

func TestRewriteMergesFUAAndRenumbers(t *testing.T) {
	c, sink := newTestRewriteConn(Faults{Oversized: true})
	nal := bytes.Repeat([]byte{0xab}, 3000)
	// FU-A of an IDR slice (type 5, NRI 3) in three fragments, then a single NAL packet.
	frags := [][]byte{
		append([]byte{0x7c, 0x85}, nal[:1000]...),
		append([]byte{0x7c, 0x05}, nal[1000:2000]...),
		append([]byte{0x7c, 0x45}, nal[2000:]...),
	}
	for i, f := range frags {
		// Split writes at odd places: the parser must carry partial messages.
		msg := interleaved(0, uint16(100+i), i == 2, f)
		c.Write(msg[:7])
		c.Write(msg[7:])
	}
	c.Write(interleaved(0, 103, true, []byte{0x41, 0x9a}))
	out := sink.out.Bytes()
	n1 := int(binary.BigEndian.Uint16(out[2:4]))
	p1 := out[4 : 4+n1]
	if n1 != 12+1+3000 || p1[12] != 0x65 || !bytes.Equal(p1[13:], nal) || p1[1]&0x80 == 0 {
		t.Fatalf("merged packet wrong: len %d header %x", n1, p1[12])
	}
	if seq := binary.BigEndian.Uint16(p1[2:4]); seq != 100 {
		t.Fatalf("merged seq %d, want 100", seq)
	}
	p2 := out[4+n1+4:]
	if seq := binary.BigEndian.Uint16(p2[2:4]); seq != 101 {
		t.Fatalf("next seq %d, want 101 (no gap)", seq)
	}
}

func TestRewriteBadSDP(t *testing.T) {
	c, sink := newTestRewriteConn(Faults{BadSDP: true})
	body := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
	res := "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	c.Write([]byte(res))
	got := sink.out.String()
	want := "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: " +
		strconv.Itoa(len(badSDP)) + "\r\n\r\n" + badSDP
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRewriteChangesSSRCAfter(t *testing.T) {
	c, sink := newTestRewriteConn(Faults{ChangeSSRCAfter: 50 * time.Millisecond})
	c.Write(interleaved(0, 1, true, []byte{0x41}))
	c.firstRTP = time.Now().Add(-time.Second) // as if playing for a second
	c.Write(interleaved(0, 2, true, []byte{0x41}))
	out := sink.out.Bytes()
	l := 4 + 13
	if a, b := binary.BigEndian.Uint32(out[4+8:]), binary.BigEndian.Uint32(out[l+4+8:]); a != 0x11223344 || b != 0x11223344^ssrcXOR {
		t.Fatalf("SSRCs %08x then %08x", a, b)
	}
}

// FuzzRewriteConn feeds arbitrary byte streams, split into two writes: with every fault on it must
// not panic; with none, complete messages pass through unchanged.
func FuzzRewriteConn(f *testing.F) {
	f.Add(interleaved(0, 1, false, []byte{0x7c, 0x85, 1, 2, 3}), uint16(3), true)
	f.Add([]byte("RTSP/1.0 200 OK\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0"), uint16(20), true)
	f.Add([]byte("$\x01\x00\x08\x80\xc8\x00\x01\x00\x00\x00\x01"), uint16(1), false)
	f.Fuzz(func(t *testing.T, data []byte, split uint16, faults bool) {
		if len(data) == 0 {
			return
		}
		var fs Faults
		if faults {
			fs = Faults{Oversized: true, BadSDP: true, ChangeSSRCAfter: time.Nanosecond}
		}
		c, sink := newTestRewriteConn(fs)
		k := int(split) % (len(data) + 1)
		c.Write(data[:k])
		c.Write(data[k:])
		if !faults {
			passed := len(data) - len(c.pending)
			if !bytes.Equal(sink.out.Bytes(), data[:passed]) {
				t.Fatalf("without faults the stream changed")
			}
		}
	})
}
