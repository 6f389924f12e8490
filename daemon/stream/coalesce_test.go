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

func TestCoalescingBurstOneSyscall(t *testing.T) {
	client, sc := tcpPair(t)
	// The peer is slow: the flusher sits in a writev of a large first write
	// while a burst of packets is queued behind it.
	big := bytes.Repeat([]byte{0xAB}, 16<<20)
	var want bytes.Buffer
	want.Write(big)
	if _, err := sc.Write(big); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "flusher busy", func() bool { return sc.flushes.Load() == 1 })
	const n, size = 300, 1400
	for i := 0; i < n; i++ {
		p := bytes.Repeat([]byte{byte(i)}, size)
		want.Write(p)
		if _, err := sc.Write(p); err != nil {
			t.Fatal(err)
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
	f := sc.flushes.Load()
	t.Logf("%d queued writes sent in %d writev calls", n, f-1)
	if f-1 > 2 {
		t.Errorf("%d writev calls for a burst of %d queued writes: not coalescing", f-1, n)
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
	_, _ = sc.Write([]byte("RTSP/1.0 401 Unauthorized\r\n\r\n"))
	sc.Close()
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(client)
	if err != nil || !bytes.HasPrefix(b, []byte("RTSP/1.0 401")) {
		t.Fatalf("got %q, %v", b, err)
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
