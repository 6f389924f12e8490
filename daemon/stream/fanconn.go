package stream

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fanListener hands gortsplib connections that the fan-out engine can also
// write to (fanConn).
type fanListener struct {
	net.Listener
	firstReadTimeout time.Duration // bound on a new connection's silence
}

func (l fanListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// gortsplib's first read (sniffing for HTTP tunnelling) has no deadline:
	// without this, a client that connects and sends nothing holds its
	// socket forever. gortsplib sets its own deadline once a request comes.
	if l.firstReadTimeout > 0 {
		c.SetReadDeadline(time.Now().Add(l.firstReadTimeout))
	}
	return newFanConn(c), nil
}

// fanConn is one RTSP connection shared by two writers: gortsplib (RTSP
// replies, with blocking writes and its deadlines) and the fan-out engine
// (media, with non-blocking writevs). mu serialises them. A writev that the
// socket took only in part leaves its remainder in rest; whoever writes next
// sends the remainder first, so interleaved frames are never torn.
type fanConn struct {
	net.Conn
	raw syscall.RawConn // nil when the connection is not a socket

	mu        sync.Mutex
	rest      net.Buffers
	restBytes atomic.Int64
	err       error
	closed    bool
	// afterWrite runs once, after the next gortsplib write (the PLAY reply):
	// media may follow it.
	afterWrite func()

	// handedOff: gortsplib let go of this playing reader's connection
	// (handoff.go); its reads fail, its Close and read deadlines no longer
	// reach the socket.
	handedOff atomic.Bool

	deadline atomic.Int64  // unix nanos of gortsplib's write deadline; 0 = none
	writevs  atomic.Uint64 // engine writev calls, for tests

	// RTSPS (fantls.go): tcp is the socket under the TLS layer; the
	// engine's batches go to the tlsWriter goroutine, kicked by kick.
	tcp      net.Conn
	kick     chan struct{}
	gone     chan struct{} // closed by Close
	tlsWrote atomic.Int64  // bytes the writer sent since the engine last asked
}

// isTLS reports whether the connection came in on the RTSPS listener.
func (c *fanConn) isTLS() bool { return c.tcp != nil }

func newFanConn(c net.Conn) *fanConn {
	fc := &fanConn{Conn: c, gone: make(chan struct{})}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			fc.raw = raw
		}
	}
	return fc
}

// errHandedOff ends gortsplib's reading of a connection handed off to a
// playConn.
var errHandedOff = errors.New("connection handed off to the fan-out engine")

// Read is gortsplib's. Once the connection is handed off it fails at once,
// without taking a byte from the socket: what the client sends next is the
// playConn's.
func (c *fanConn) Read(p []byte) (int, error) {
	if c.handedOff.Load() {
		return 0, errHandedOff
	}
	return c.Conn.Read(p)
}

// SetReadDeadline is gortsplib's; a handed-off connection keeps the
// playConn's deadline.
func (c *fanConn) SetReadDeadline(t time.Time) error {
	if c.handedOff.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// handOff makes gortsplib's next read fail and its Close leave the socket
// open. Run in gortsplib's connection goroutine, between the PLAY answer
// and its reader's next read.
func (c *fanConn) handOff() { c.handedOff.Store(true) }

// Write is gortsplib's: blocking, within its write deadline.
func (c *fanConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil || c.closed {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	c.applyDeadline()
	if len(c.rest) > 0 {
		if _, err := c.rest.WriteTo(c.Conn); err != nil {
			c.failLocked(err)
			_ = c.Conn.SetWriteDeadline(time.Time{})
			c.mu.Unlock()
			return 0, err
		}
		c.rest = nil
		c.restBytes.Store(0)
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.failLocked(err)
	}
	// The engine's non-blocking writes take no deadline, and an expired
	// one would fail them.
	_ = c.Conn.SetWriteDeadline(time.Time{})
	after := c.afterWrite
	c.afterWrite = nil
	c.mu.Unlock()
	if after != nil && err == nil {
		after()
	}
	return n, err
}

func (c *fanConn) applyDeadline() {
	dl := time.Time{}
	if d := c.deadline.Load(); d != 0 {
		dl = time.Unix(0, d)
	}
	_ = c.Conn.SetWriteDeadline(dl)
}

func (c *fanConn) failLocked(err error) {
	if c.err == nil {
		c.err = err
	}
	_ = c.Conn.Close()
}

// setAfterWrite arms f to run after the next gortsplib write.
func (c *fanConn) setAfterWrite(f func()) {
	c.mu.Lock()
	c.afterWrite = f
	c.mu.Unlock()
}

func (c *fanConn) pendingBytes() int { return int(c.restBytes.Load()) }

var errNotSocket = errors.New("not a socket")

// tryWritev is the engine's write: it never blocks. If an earlier remainder
// is still unsent, it tries that first and takes nothing new (taken=false)
// unless the remainder went out. Otherwise it takes all of bufs
// (taken=true): what the socket did not accept is kept as the remainder.
// wrote counts the bytes that left now.
func (c *fanConn) tryWritev(bufs [][]byte) (taken bool, wrote int, err error) {
	if !c.mu.TryLock() {
		// A reply is being written, or the TLS writer is sending the
		// last batch: next time. What the TLS writer sent meanwhile is
		// progress all the same.
		if c.isTLS() {
			return false, int(c.tlsWrote.Swap(0)), nil
		}
		return false, 0, nil
	}
	defer c.mu.Unlock()
	if c.err != nil || c.closed {
		if c.err != nil {
			return false, 0, c.err
		}
		return false, 0, net.ErrClosed
	}
	if c.isTLS() {
		taken, wrote = c.tlsOffer(bufs)
		return taken, wrote, nil
	}
	if c.raw == nil {
		return false, 0, errNotSocket
	}
	if len(c.rest) > 0 {
		n, err := c.writevNow(c.rest)
		wrote += n
		if err != nil {
			c.failLocked(err)
			return false, wrote, err
		}
		c.rest = consume(c.rest, n)
		if len(c.rest) > 0 {
			c.restBytes.Store(int64(buffersLen(c.rest)))
			return false, wrote, nil
		}
		c.rest = nil
		c.restBytes.Store(0)
	}
	if len(bufs) == 0 {
		return true, wrote, nil
	}
	n, err := c.writevNow(bufs)
	wrote += n
	if err != nil {
		c.failLocked(err)
		return false, wrote, err
	}
	if n < buffersLen(bufs) {
		rest := consume(append(net.Buffers(nil), bufs...), n)
		c.rest = rest
		c.restBytes.Store(int64(buffersLen(rest)))
	}
	return true, wrote, nil
}

// writevNow makes one non-blocking writev; a full socket is n=0, no error.
func (c *fanConn) writevNow(bufs [][]byte) (int, error) {
	var n int
	var werr error
	c.writevs.Add(1)
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), bufs)
		return true // one attempt: never wait for the socket
	})
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN || werr == unix.EINTR {
		return max(n, 0), nil
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}

func buffersLen(b [][]byte) int {
	n := 0
	for _, x := range b {
		n += len(x)
	}
	return n
}

// consume drops the first n bytes of b (the slices are shared, never
// written).
func consume(b net.Buffers, n int) net.Buffers {
	for len(b) > 0 && n >= len(b[0]) {
		n -= len(b[0])
		b[0] = nil
		b = b[1:]
	}
	if len(b) > 0 && n > 0 {
		b[0] = b[0][n:]
	}
	return b
}

// SetWriteDeadline records gortsplib's deadline for its own writes; the
// engine's writes never block and take none.
func (c *fanConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
	return nil
}

func (c *fanConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// Close is gortsplib's: it closes the socket unless the connection was
// handed off (the playConn closes it when the session ends).
func (c *fanConn) Close() error {
	if c.handedOff.Load() {
		return nil
	}
	return c.shut()
}

// shut closes the socket. If a blocking write is under way right now
// (perhaps to a peer that stopped reading), the socket is closed first so
// that revocation does not wait for the write deadline.
func (c *fanConn) shut() error {
	if !c.mu.TryLock() {
		_ = c.socket().Close()
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.gone)
	c.rest = nil
	c.restBytes.Store(0)
	return c.Conn.Close()
}

// readerSendBuffer bounds the kernel's send buffer of a playing TCP
// reader: without it Linux grows it to megabytes, and a reader that fell
// behind would first get all of that, late, before it skips to a keyframe.
// The engine's budget is where a reader's backlog waits.
var readerSendBuffer = 256 << 10

func (c *fanConn) boundSendBuffer() {
	if tc, ok := c.socket().(*net.TCPConn); ok && readerSendBuffer > 0 {
		_ = tc.SetWriteBuffer(readerSendBuffer)
	}
}

// abort closes the socket discarding what the kernel still holds for the
// peer (RST): a revoked or evicted reader receives nothing more.
func (c *fanConn) abort() {
	if tc, ok := c.socket().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if c.isTLS() {
		// No close_notify: tls.Conn.Close would wait up to 5 s for a
		// peer that stopped reading.
		_ = c.tcp.Close()
	}
	_ = c.shut()
}

// socket is the TCP connection itself (under TLS for RTSPS).
func (c *fanConn) socket() net.Conn {
	if c.tcp != nil {
		return c.tcp
	}
	return c.Conn
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
