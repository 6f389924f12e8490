package testutil

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// Reader is a real RTSP reader (gortsplib client over TCP) that counts the
// packets it receives and the gaps in their sequence numbers.
type Reader struct {
	client  *gortsplib.Client
	packets atomic.Int64
	gaps    atomic.Int64
	done    chan struct{}
	mu      sync.Mutex
	err     error
	lastSeq map[*description.Media]uint16
}

// StartReader plays rtsp://user:password@host/path over TCP.
func StartReader(host, path, user, password string) (*Reader, error) {
	u := &url.URL{Scheme: "rtsp", Host: host, Path: "/" + path, User: url.UserPassword(user, password)}
	bu, err := base.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	tcp := gortsplib.ProtocolTCP
	r := &Reader{done: make(chan struct{}), lastSeq: map[*description.Media]uint16{}}
	r.client = &gortsplib.Client{Scheme: bu.Scheme, Host: bu.Host, Protocol: &tcp, ReadTimeout: 5 * time.Second}
	if err := r.client.Start(); err != nil {
		return nil, err
	}
	desc, _, err := r.client.Describe(bu)
	if err != nil {
		r.client.Close()
		return nil, fmt.Errorf("describe: %w", err)
	}
	if err := r.client.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		r.client.Close()
		return nil, fmt.Errorf("setup: %w", err)
	}
	r.client.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		// Only this client's reader goroutine calls back, per media.
		r.mu.Lock()
		if last, ok := r.lastSeq[m]; ok && pkt.SequenceNumber != last+1 {
			r.gaps.Add(int64(pkt.SequenceNumber - last - 1))
		}
		r.lastSeq[m] = pkt.SequenceNumber
		r.mu.Unlock()
		r.packets.Add(1)
	})
	if _, err := r.client.Play(nil); err != nil {
		r.client.Close()
		return nil, fmt.Errorf("play: %w", err)
	}
	go func() {
		err := r.client.Wait()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(r.done)
	}()
	return r, nil
}

// Packets is how many RTP packets arrived.
func (r *Reader) Packets() int64 { return r.packets.Load() }

// Lost is the number of packets missing from the sequence.
func (r *Reader) Lost() int64 { return r.gaps.Load() }

// Closed reports whether the server ended the session.
func (r *Reader) Closed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Done is closed when the session ends.
func (r *Reader) Done() <-chan struct{} { return r.done }

// Close ends the reader.
func (r *Reader) Close() { r.client.Close() }
