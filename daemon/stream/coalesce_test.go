package stream

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (client net.Conn, server *coalescingConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := coalescingListener{Listener: ln}
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := cl.Accept()
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := (<-ch).(*coalescingConn)
	t.Cleanup(func() { client.Close(); sc.Close() })
	return client, sc
}

// rtpFrame builds an interleaved RTP packet of size bytes on channel 0.
func rtpFrame(seq int, marker bool, size int) []byte {
	p := make([]byte, 4+size)
	p[0], p[1] = '$', 0
	p[2], p[3] = byte(size>>8), byte(size)
	p[4] = 0x80 // version 2
	p[5] = 96
	if marker {
		p[5] |= 0x80
	}
	p[6], p[7] = byte(seq>>8), byte(seq)
	for i := 16; i < len(p); i++ {
		p[i] = byte(seq)
	}
	return p
}

// TestCoalescingOneWritevPerFrame: the packets of a frame leave together
// when its last (marker) packet is written; data arrives intact and in order.
func TestCoalescingOneWritevPerFrame(t *testing.T) {
	client, sc := tcpPair(t)
	const frames, perFrame = 10, 16
	var want bytes.Buffer
	seq := 0
	for f := 0; f < frames; f++ {
		for i := 0; i < perFrame; i++ {
			p := rtpFrame(seq, i == perFrame-1, 1400)
			seq++
			want.Write(p)
			if _, err := sc.Write(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := make([]byte, want.Len())
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("data corrupted or reordered")
	}
	if f := sc.flushes.Load(); f != frames {
		t.Errorf("%d writev calls for %d frames of %d packets, want one per frame", f, frames, perFrame)
	}
}

// TestCoalescingUnfinishedFrameFlushedSoon: packets whose frame end never
// comes (a codec that does not mark) still go out within burstWait.
func TestCoalescingUnfinishedFrameFlushedSoon(t *testing.T) {
	client, sc := tcpPair(t)
	start := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := sc.Write(rtpFrame(i, false, 200)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 3*204)
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > burstWait+100*time.Millisecond {
		t.Errorf("unfinished frame took %v to arrive", d)
	}
	if f := sc.flushes.Load(); f != 1 {
		t.Errorf("%d writev calls, want 1 (the timer's)", f)
	}
}

// TestCoalescingBurstLimit: a burst is never held past burstLimit bytes.
func TestCoalescingBurstLimit(t *testing.T) {
	client, sc := tcpPair(t)
	n := burstLimit/1404 + 1
	for i := 0; i < n; i++ {
		if _, err := sc.Write(rtpFrame(i, false, 1400)); err != nil {
			t.Fatal(err)
		}
	}
	if f := sc.flushes.Load(); f != 1 {
		t.Fatalf("%d writev calls after %d bytes of one frame, want 1", f, n*1404)
	}
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(client, make([]byte, n*1404)); err != nil {
		t.Fatal(err)
	}
}

func TestCoalescingSingleWriteNotDelayed(t *testing.T) {
	client, sc := tcpPair(t)
	start := time.Now()
	if _, err := sc.Write([]byte("RTSP/1.0 200 OK\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := client.Read(buf); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("lone write took %v to arrive", d)
	}
}

func TestCoalescingCloseFlushes(t *testing.T) {
	client, sc := tcpPair(t)
	_, _ = sc.Write(rtpFrame(1, false, 100)) // held: mid-frame
	_, _ = sc.Write([]byte("RTSP/1.0 401 Unauthorized\r\n\r\n"))
	_, _ = sc.Write(rtpFrame(2, false, 100)) // held again
	sc.Close()
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(client)
	if err != nil || len(b) != 104+29+104 || !bytes.Contains(b, []byte("RTSP/1.0 401")) {
		t.Fatalf("got %d bytes %q, %v", len(b), b, err)
	}
}

func TestCoalescingStalledPeerTimesOut(t *testing.T) {
	_, sc := tcpPair(t) // the client never reads
	_ = sc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	p := make([]byte, 64<<10)
	start := time.Now()
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		_, err = sc.Write(p)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("blocked %v", d)
	}
}

// TestCoalescingCloseDuringStalledWrite: closing a connection whose writer
// is stuck in a writev to a peer that stopped reading returns at once
// (revocation must not wait for the write deadline).
func TestCoalescingCloseDuringStalledWrite(t *testing.T) {
	_, sc := tcpPair(t) // the client never reads
	_ = sc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	writing := make(chan error, 1)
	go func() {
		p := make([]byte, 64<<10)
		var err error
		for err == nil {
			_, err = sc.Write(p)
		}
		writing <- err
	}()
	// Wait until the writer is stuck inside a writev: the lock is held and
	// no flush completes between two polls (the socket buffers are full).
	last := uint64(0)
	waitFor(t, 10*time.Second, "writer stuck in writev", func() bool {
		held := !sc.mu.TryLock()
		if !held {
			sc.mu.Unlock()
		}
		f := sc.flushes.Load()
		stuck := held && f == last && f > 0
		last = f
		return stuck
	})
	start := time.Now()
	sc.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v while a write was stuck", d)
	}
	select {
	case <-writing:
	case <-time.After(2 * time.Second):
		t.Fatal("the stuck writer did not return after Close")
	}
}
