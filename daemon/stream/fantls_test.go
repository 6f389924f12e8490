package stream

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/servercert"
)

// A TLS reader slow to take a long batch (a GOP replay) shows progress
// while the batch is still being sent, so the engine does not take it for
// stalled and evict it while it reads.
func TestTLSBatchProgressCountsWhileSending(t *testing.T) {
	cert, err := servercert.Load(servercert.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	plain := mustListen(t)
	tl := tlsListener{Listener: plain, cfg: cert.TLSConfig()}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := tl.Accept()
		if err != nil {
			return
		}
		// gortsplib's first read would run the server's handshake
		if tc, ok := c.(*fanConn).Conn.(*tls.Conn); ok && tc.HandshakeContext(t.Context()) == nil {
			accepted <- c
		}
	}()
	raw, err := net.Dial("tcp", plain.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(16 << 10)
	}
	client := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) // the generated self-signed certificate
	t.Cleanup(func() { client.Close() })
	if err := client.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	var fc *fanConn
	select {
	case c := <-accepted:
		fc = c.(*fanConn)
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { fc.Close() })
	if tc, ok := fc.tcp.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}

	// 512 KB read at about 512 KB/s: the batch takes a second or more.
	batch := bytes.Repeat([]byte("0123456789abcdef"), 32<<10)
	got := make(chan []byte, 1)
	go func() {
		var out bytes.Buffer
		buf := make([]byte, 32<<10)
		start := time.Now()
		for out.Len() < len(batch) {
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := client.Read(buf)
			out.Write(buf[:n])
			if err != nil && err != io.EOF {
				break
			}
			if ahead := time.Duration(float64(out.Len())/float64(512<<10)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		got <- out.Bytes()
	}()
	taken, _, err := fc.tryWritev([][]byte{batch})
	if !taken || err != nil {
		t.Fatalf("batch not taken: %v %v", taken, err)
	}
	// The engine asks again and again, as its writer does: the bytes that
	// left count before the whole batch is out.
	offered := time.Now()
	progress := 0
	for progress == 0 {
		_, wrote, err := fc.tryWritev(nil)
		if err != nil {
			t.Fatal(err)
		}
		progress += wrote
		if time.Since(offered) > 10*time.Second {
			t.Fatal("no progress reported within 10 s")
		}
		time.Sleep(20 * time.Millisecond) // the engine's own pace between flushes
	}
	if progress >= len(batch) {
		t.Fatalf("no progress reported before the whole batch (%d bytes) was out, %v after it was offered", len(batch), time.Since(offered))
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, batch) {
			t.Fatalf("client got %d bytes, not the batch (%d)", len(b), len(batch))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("client did not get the batch")
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
