package stream

// RTSPS readers (#13): a TLS connection cannot take the engine's raw
// writev (that would put the media on the wire in clear, past the TLS
// layer). Its media are copied, under the connection's mutex, into one
// buffer that a writer goroutine of that connection sends through
// tls.Conn; the engine sees the buffer as the connection's remainder, so
// its budget, keyframe skipping and stall eviction work as for plain TCP.

import (
	"crypto/tls"
	"net"
	"time"
)

// tlsListener accepts RTSPS connections: each is wrapped in TLS and marked,
// so the handler offers Basic on it and refuses UDP for it.
type tlsListener struct {
	net.Listener
	cfg              *tls.Config
	firstReadTimeout time.Duration
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// bounds the handshake and the first request, like fanListener
	if l.firstReadTimeout > 0 {
		c.SetReadDeadline(time.Now().Add(l.firstReadTimeout))
	}
	fc := newFanConn(tls.Server(c, l.cfg))
	fc.tcp = c
	fc.kick = make(chan struct{}, 1)
	go fc.tlsWriter()
	return fc, nil
}

// mergedListener hands gortsplib the connections of two listeners (RTSP
// and RTSPS) as one: a gortsplib stream belongs to one Server.
type mergedListener struct {
	plain  net.Listener
	secure net.Listener
	conns  chan net.Conn
	errs   chan error
	done   chan struct{}
}

func newMergedListener(plain, secure net.Listener) *mergedListener {
	m := &mergedListener{plain: plain, secure: secure, conns: make(chan net.Conn), errs: make(chan error, 2), done: make(chan struct{})}
	for _, l := range []net.Listener{plain, secure} {
		go func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					select {
					case m.errs <- err:
					case <-m.done:
					}
					return
				}
				select {
				case m.conns <- c:
				case <-m.done:
					c.Close()
					return
				}
			}
		}(l)
	}
	return m
}

func (m *mergedListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *mergedListener) Close() error {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	err := m.plain.Close()
	m.secure.Close()
	return err
}

// Addr is the plain RTSP address (gortsplib reports it).
func (m *mergedListener) Addr() net.Addr { return m.plain.Addr() }

// tlsOffer takes bufs for the writer goroutine (c.mu held): nothing new
// while an earlier batch is still being sent.
func (c *fanConn) tlsOffer(bufs [][]byte) (taken bool, wrote int) {
	wrote = int(c.tlsWrote.Swap(0))
	if len(c.rest) > 0 {
		return false, wrote
	}
	if len(bufs) == 0 {
		return true, wrote
	}
	n := buffersLen(bufs)
	buf := make([]byte, 0, n)
	for _, b := range bufs {
		buf = append(buf, b...)
	}
	c.rest = net.Buffers{buf}
	c.restBytes.Store(int64(n))
	signal(c.kick)
	return true, wrote
}

// tlsChunk is how much of a batch the TLS writer sends per write (four
// TLS records).
const tlsChunk = 64 << 10

// tlsWriter sends the engine's batches of a TLS connection, one TLS write
// each (so records are large), until the connection closes. It holds the
// connection's mutex while it writes, as gortsplib's own writes do; Close
// closes the socket first, which ends a write to a peer that stopped
// reading.
func (c *fanConn) tlsWriter() {
	for {
		select {
		case <-c.kick:
		case <-c.gone:
			return
		}
		c.mu.Lock()
		if c.closed || c.err != nil {
			c.mu.Unlock()
			return
		}
		if len(c.rest) > 0 {
			_ = c.Conn.SetWriteDeadline(time.Time{})
			// In chunks, each counted as it leaves: a reader slow to take a
			// long batch (a GOP replay) is making progress, not stalled.
			for _, b := range c.rest {
				for len(b) > 0 {
					chunk := b[:min(len(b), tlsChunk)]
					n, err := c.Conn.Write(chunk)
					c.tlsWrote.Add(int64(n))
					b = b[n:]
					if err != nil {
						c.failLocked(err)
						break
					}
				}
				if c.err != nil {
					break
				}
			}
			c.rest = nil
			c.restBytes.Store(0)
		}
		c.mu.Unlock()
	}
}
