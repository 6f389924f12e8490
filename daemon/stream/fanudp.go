package stream

import (
	"net"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpSender sends a reader's datagrams from one of gortsplib's UDP server
// sockets (the source port the reader was told in SETUP) with sendmmsg.
type udpSender struct {
	pc    net.PacketConn
	batch func([]ipv4.Message) (int, error)
	pool  sync.Pool // *udpBatch
}

func newUDPSender(pc net.PacketConn) *udpSender {
	u := &udpSender{pc: pc}
	ua, _ := pc.LocalAddr().(*net.UDPAddr)
	if ua != nil && ua.IP.To4() == nil && !ua.IP.IsUnspecified() {
		p := ipv6.NewPacketConn(pc)
		u.batch = func(ms []ipv4.Message) (int, error) { return p.WriteBatch(ms, 0) }
	} else if ua != nil && ua.IP.IsUnspecified() && ua.IP.To4() == nil {
		// A dual-stack socket ("[::]" or ":port"): IPv6 batching takes
		// IPv4 destinations as mapped addresses.
		p := ipv6.NewPacketConn(pc)
		u.batch = func(ms []ipv4.Message) (int, error) { return p.WriteBatch(ms, 0) }
	} else {
		p := ipv4.NewPacketConn(pc)
		u.batch = func(ms []ipv4.Message) (int, error) { return p.WriteBatch(ms, 0) }
	}
	return u
}

// send writes msgs in as few sendmmsg calls as the kernel allows. A
// datagram the kernel refuses for one destination is that reader's loss,
// not an error of the socket; only a closed socket is an error.
func (u *udpSender) send(msgs []udpMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	b, _ := u.pool.Get().(*udpBatch)
	if b == nil {
		b = &udpBatch{}
	}
	// One pooled buffer slice backs every message's one-element Buffers,
	// so a datagram costs no allocation.
	if cap(b.bufs) < len(msgs) {
		b.bufs = make([][]byte, len(msgs))
	}
	bufs := b.bufs[:len(msgs)]
	ms := b.msgs[:0]
	for i, m := range msgs {
		bufs[i] = m.b
		ms = append(ms, ipv4.Message{Buffers: bufs[i : i+1 : i+1], Addr: m.addr})
	}
	full := ms
	var err error
	for len(ms) > 0 {
		n, werr := u.batch(ms)
		if werr != nil {
			if isClosedErr(werr) {
				err = werr
				break
			}
			n = max(n, 1) // skip the datagram the kernel refused
		}
		ms = ms[n:]
	}
	clear(full)
	clear(bufs)
	b.msgs = full[:0]
	u.pool.Put(b)
	return err
}

// udpBatch is what send reuses between calls.
type udpBatch struct {
	msgs []ipv4.Message
	bufs [][]byte
}

func isClosedErr(err error) bool {
	return err != nil && (err == net.ErrClosed || isNetClosing(err))
}

func isNetClosing(err error) bool {
	if oe, ok := err.(*net.OpError); ok {
		return oe.Err == net.ErrClosed || oe.Err.Error() == net.ErrClosed.Error()
	}
	return false
}
