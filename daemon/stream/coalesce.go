package stream

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The cost of restreaming is one write syscall per packet per reader
// (DESIGN.md 3b). gortsplib writes each interleaved frame with its own Write,
// so the listener we hand it returns connections whose Write only queues a
// copy; one flusher goroutine per connection sends everything queued so far
// with a single writev (net.Buffers). The first packet of a burst goes out at
// once (no timer, no added latency); the rest of the burst piles up while that
// syscall runs and leaves together in the next one.

const (
	coalesceMaxPending = 512 << 10 // bytes queued before Write blocks (back-pressure)
	poolBufSize        = 2048
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
	return newCoalescingConn(c), nil
}

type coalescingConn struct {
	net.Conn

	mu       sync.Mutex
	pending  net.Buffers
	pooled   []*[]byte // pool handles of pending, same order
	nPending int
	err      error
	closing  bool

	wake      chan struct{} // flusher: something queued or closing
	space     chan struct{} // writers: room freed
	done      chan struct{} // flusher exited
	closeOnce sync.Once
	deadline  atomic.Int64  // unix nanos of the caller's write deadline; 0 = none
	flushes   atomic.Uint64 // writev calls, for tests and metrics
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{
		Conn:  c,
		wake:  make(chan struct{}, 1),
		space: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go cc.flusher()
	return cc
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Write queues a copy of p. It blocks only when more than
// coalesceMaxPending bytes are queued (the peer is not reading), until room
// frees up or the write deadline passes.
func (c *coalescingConn) Write(p []byte) (int, error) {
	var h *[]byte
	var b []byte
	if len(p) <= poolBufSize {
		h = bufPool.Get().(*[]byte)
		b = append((*h)[:0], p...)
	} else {
		b = append([]byte(nil), p...)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	c.mu.Lock()
	for c.err == nil && !c.closing && c.nPending > 0 && c.nPending+len(b) > coalesceMaxPending {
		c.mu.Unlock()
		var timeout <-chan time.Time
		if d := c.deadline.Load(); d != 0 {
			wait := time.Until(time.Unix(0, d))
			if wait <= 0 {
				c.putBuf(h)
				return 0, errWriteTimeout
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		select {
		case <-c.space:
		case <-c.done:
		case <-timeout:
			c.putBuf(h)
			return 0, errWriteTimeout
		}
		c.mu.Lock()
	}
	if c.err != nil || c.closing {
		err := c.err
		c.mu.Unlock()
		c.putBuf(h)
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	c.pending = append(c.pending, b)
	c.pooled = append(c.pooled, h)
	c.nPending += len(b)
	c.mu.Unlock()
	signal(c.wake)
	return len(p), nil
}

func (c *coalescingConn) putBuf(h *[]byte) {
	if h != nil {
		bufPool.Put(h)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "write timeout: peer is not reading" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errWriteTimeout net.Error = timeoutError{}

// SetWriteDeadline records the caller's deadline; the flusher applies it to
// the socket for each writev.
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

func (c *coalescingConn) flusher() {
	defer close(c.done)
	var bufs net.Buffers
	var handles []*[]byte
	for {
		<-c.wake
		for {
			c.mu.Lock()
			bufs, c.pending = c.pending, bufs[:0]
			handles, c.pooled = c.pooled, handles[:0]
			c.nPending = 0
			closing := c.closing
			c.mu.Unlock()
			if len(bufs) == 0 {
				if closing {
					return
				}
				break
			}
			signal(c.space)
			dl := time.Time{}
			if d := c.deadline.Load(); d != 0 {
				dl = time.Unix(0, d)
			}
			if closing && (dl.IsZero() || time.Until(dl) > time.Second) {
				dl = time.Now().Add(time.Second) // last flush before close is bounded
			}
			_ = c.Conn.SetWriteDeadline(dl)
			c.flushes.Add(1)
			toWrite := bufs // WriteTo consumes the slice header
			_, err := toWrite.WriteTo(c.Conn)
			for i, h := range handles {
				c.putBuf(h)
				handles[i] = nil
			}
			for i := range bufs {
				bufs[i] = nil
			}
			bufs, handles = bufs[:0], handles[:0]
			if err != nil {
				c.mu.Lock()
				c.err = err
				for _, h := range c.pooled {
					c.putBuf(h)
				}
				c.pending, c.pooled, c.nPending = nil, nil, 0
				c.mu.Unlock()
				signal(c.space)
				_ = c.Conn.Close()
				return
			}
		}
	}
}

// Close sends what is queued (bounded to about a second, so a reply such as
// a 401 still reaches the peer) and closes the socket.
func (c *coalescingConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		signal(c.wake)
		select {
		case <-c.done:
		case <-time.After(1500 * time.Millisecond):
		}
		err = c.Conn.Close()
		<-c.done
	})
	return err
}
