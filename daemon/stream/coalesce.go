package stream

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The cost of restreaming is one write syscall per packet per reader
// (docs/design.md, "Performance facts"). gortsplib writes each interleaved frame with its own Write
// from the session's writer goroutine, so the listener we hand it returns
// connections whose Write holds back the RTP packets of a frame that is not
// complete yet and sends the whole burst with one writev (net.Buffers) when
// its last packet (the RTP marker bit) arrives. A frame cannot be decoded
// before its last packet anyway, so holding the earlier ones adds no latency
// to the frame. Everything else (RTSP replies, RTCP, packets with the marker)
// goes out at once. A burst whose end never comes (a codec that does not
// mark, a source that paces its packets) is flushed after burstWait, and a
// burst is never held past burstLimit bytes.
//
// The writev runs in the writer's goroutine: no extra goroutine per reader,
// and a reader that stops reading blocks its own writer until the write
// deadline gortsplib sets, as with a plain socket.

const (
	burstWait   = 5 * time.Millisecond
	burstLimit  = 64 << 10
	poolBufSize = 2048
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, poolBufSize); return &b }}

type coalescingListener struct {
	net.Listener
	firstReadTimeout time.Duration // bound on a new connection's silence
}

func (l coalescingListener) Accept() (net.Conn, error) {
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
	return &coalescingConn{Conn: c}, nil
}

type coalescingConn struct {
	net.Conn

	mu       sync.Mutex // serialises writers, flushes and the burst timer
	pending  net.Buffers
	pooled   []*[]byte // pool handles of pending, same order
	nPending int
	timer    *time.Timer // flushes a burst whose end never came
	armed    bool
	err      error
	closed   bool

	deadline atomic.Int64  // unix nanos of the caller's write deadline; 0 = none
	flushes  atomic.Uint64 // writev calls, for tests and metrics
}

// midFrame reports whether p is an interleaved RTP packet that is not the
// last of its frame: '$', an even (RTP) channel, RTP version 2, marker 0.
func midFrame(p []byte) bool {
	return len(p) >= 4+12 && p[0] == '$' && p[1]&1 == 0 && p[4]>>6 == 2 && p[5]&0x80 == 0
}

// Write queues a copy of p and sends everything queued with one writev,
// unless p is the middle of a frame.
func (c *coalescingConn) Write(p []byte) (int, error) {
	var h *[]byte
	var b []byte
	if len(p) <= poolBufSize {
		h = bufPool.Get().(*[]byte)
		b = append((*h)[:0], p...)
	} else {
		b = append([]byte(nil), p...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closed {
		putBuf(h)
		if c.err != nil {
			return 0, c.err
		}
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, b)
	c.pooled = append(c.pooled, h)
	c.nPending += len(b)
	if midFrame(p) && c.nPending < burstLimit {
		if !c.armed {
			c.armed = true
			if c.timer == nil {
				c.timer = time.AfterFunc(burstWait, c.flushLate)
			} else {
				c.timer.Reset(burstWait)
			}
		}
		return len(p), nil
	}
	if err := c.flushLocked(time.Time{}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flushLate sends a burst whose last packet did not come within burstWait.
func (c *coalescingConn) flushLate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if len(c.pending) > 0 && c.err == nil {
		_ = c.flushLocked(time.Time{})
	}
}

// flushLocked sends everything queued with one writev, within the caller's
// write deadline or limit (whichever is sooner). An error is sticky and
// closes the socket.
func (c *coalescingConn) flushLocked(limit time.Time) error {
	if c.armed {
		c.timer.Stop()
		c.armed = false
	}
	if len(c.pending) == 0 {
		return nil
	}
	dl := time.Time{}
	if d := c.deadline.Load(); d != 0 {
		dl = time.Unix(0, d)
	}
	if !limit.IsZero() && (dl.IsZero() || limit.Before(dl)) {
		dl = limit
	}
	_ = c.Conn.SetWriteDeadline(dl)
	c.flushes.Add(1)
	bufs := c.pending // WriteTo consumes the slice header
	_, err := bufs.WriteTo(c.Conn)
	for i, h := range c.pooled {
		putBuf(h)
		c.pooled[i] = nil
	}
	for i := range c.pending {
		c.pending[i] = nil
	}
	c.pending, c.pooled, c.nPending = c.pending[:0], c.pooled[:0], 0
	if err != nil {
		c.err = err
		_ = c.Conn.Close()
	}
	return err
}

func putBuf(h *[]byte) {
	if h != nil {
		bufPool.Put(h)
	}
}

// SetWriteDeadline records the caller's deadline; it is applied to the
// socket for each writev (gortsplib sets one per packet, most of which are
// only queued).
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
	return nil
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// Close sends what is queued (within about a second, so a reply such as a
// 401 still reaches the peer) and closes the socket. If a writer is inside
// a writev right now (perhaps to a peer that stopped reading), the socket is
// closed first so that revocation does not wait for the write deadline.
func (c *coalescingConn) Close() error {
	if !c.mu.TryLock() {
		_ = c.Conn.Close()
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.err == nil {
		_ = c.flushLocked(time.Now().Add(time.Second))
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	return c.Conn.Close()
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
