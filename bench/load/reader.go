package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// ReaderConfig says what one reader plays and as whom.
type ReaderConfig struct {
	Addr           string // RTSP server, host:port
	Path           string // camera/stream
	User, Password string
	ReadTimeout    time.Duration // default 10 s
	// ReadBuffer is the size of the socket read buffer in user space
	// (default 64 KiB): gortsplib's own is 4 KiB, which would cost several
	// read syscalls per frame burst and make the load client the bottleneck.
	ReadBuffer int
	// OnClose, if set, is called once when the session ends, with the time
	// the reader saw its connection end.
	OnClose func(id int, user string, at time.Time, err error)
}

// ReaderStats are a reader's cumulative counters.
type ReaderStats struct {
	Packets   uint64 `json:"packets"`
	Lost      uint64 `json:"lost"`       // RTP sequence numbers never seen
	SeqResets uint64 `json:"seq_resets"` // backward jumps (not counted as loss)
	Bytes     uint64 `json:"bytes"`
}

// Reader is one RTSP reader over TCP (gortsplib client).
type Reader struct {
	ID   int
	User string

	client  *gortsplib.Client
	started time.Time // just before DESCRIBE
	done    chan struct{}

	mu       sync.Mutex // guards everything below; the client's read goroutine is the only writer
	stats    ReaderStats
	lastSeq  map[*description.Media]uint16
	auSent   time.Time // SEI time of the access unit being received
	hist     Histogram
	firstPkt time.Time
	firstIDR time.Time
	endedAt  time.Time
	err      error
}

// bufConn gives the client a large user-space read buffer.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// StartReader connects, authenticates (Digest when offered), sets up every
// media over TCP and plays. ctx bounds the start only.
func StartReader(ctx context.Context, id int, cfg ReaderConfig) (*Reader, error) {
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 64 << 10
	}
	u := &url.URL{Scheme: "rtsp", Host: cfg.Addr, Path: "/" + cfg.Path}
	if cfg.User != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	bu, err := base.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("reader %d: bad address %q or path %q", id, cfg.Addr, cfg.Path)
	}
	tcp := gortsplib.ProtocolTCP
	r := &Reader{ID: id, User: cfg.User, done: make(chan struct{}), lastSeq: map[*description.Media]uint16{}}
	dialer := &net.Dialer{}
	r.client = &gortsplib.Client{
		Scheme: bu.Scheme, Host: bu.Host, Protocol: &tcp, ReadTimeout: cfg.ReadTimeout,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			return &bufConn{Conn: c, r: bufio.NewReaderSize(c, cfg.ReadBuffer)}, nil
		},
	}
	if err := r.client.Start(); err != nil {
		return nil, fmt.Errorf("reader %d: %w", id, err)
	}
	stop := context.AfterFunc(ctx, r.client.Close)
	defer stop()
	fail := func(step string, err error) (*Reader, error) {
		r.client.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("reader %d: %s: %w", id, step, err)
	}
	r.started = time.Now()
	desc, _, err := r.client.Describe(bu)
	if err != nil {
		return fail("describe", err)
	}
	if err := r.client.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return fail("setup", err)
	}
	r.client.OnPacketRTPAny(r.onPacket)
	if _, err := r.client.Play(nil); err != nil {
		return fail("play", err)
	}
	go func() {
		err := r.client.Wait()
		at := time.Now()
		r.mu.Lock()
		r.endedAt, r.err = at, err
		r.mu.Unlock()
		close(r.done)
		if cfg.OnClose != nil {
			cfg.OnClose(r.ID, r.User, at, err)
		}
	}()
	return r, nil
}

func (r *Reader) onPacket(m *description.Media, _ format.Format, pkt *rtp.Packet) {
	now := time.Now()
	pi := Inspect(pkt.Payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.lastSeq[m]; ok {
		switch gap := pkt.SequenceNumber - last - 1; {
		case gap == 0:
		case gap < 0x8000:
			r.stats.Lost += uint64(gap)
		default:
			r.stats.SeqResets++
		}
	}
	r.lastSeq[m] = pkt.SequenceNumber
	r.stats.Packets++
	r.stats.Bytes += uint64(len(pkt.Payload))
	if r.firstPkt.IsZero() {
		r.firstPkt = now
	}
	if pi.IDR && r.firstIDR.IsZero() {
		r.firstIDR = now
	}
	if !pi.SentAt.IsZero() {
		r.auSent = pi.SentAt
	}
	// Latency is counted when the access unit is complete (marker bit).
	if pkt.Marker && !r.auSent.IsZero() {
		r.hist.Record(now.Sub(r.auSent))
		r.auSent = time.Time{}
	}
}

// Stats returns the cumulative counters.
func (r *Reader) Stats() ReaderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// TakeLatency returns the latency histogram gathered since the last call and
// starts a new one.
func (r *Reader) TakeLatency() Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hist
	r.hist = Histogram{}
	return h
}

// Receiving reports whether at least one packet arrived.
func (r *Reader) Receiving() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats.Packets > 0
}

// FirstKeyframe is the time from just before DESCRIBE to the first packet
// carrying an IDR slice; ok is false until one arrived.
func (r *Reader) FirstKeyframe() (d time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstIDR.IsZero() {
		return 0, false
	}
	return r.firstIDR.Sub(r.started), true
}

// FirstPacket is the time from just before DESCRIBE to the first packet.
func (r *Reader) FirstPacket() (d time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstPkt.IsZero() {
		return 0, false
	}
	return r.firstPkt.Sub(r.started), true
}

// Done is closed when the session has ended.
func (r *Reader) Done() <-chan struct{} { return r.done }

// Ended returns when the session ended and why; zero time while it runs.
func (r *Reader) Ended() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endedAt, r.err
}

// Close ends the reader and waits until its goroutines are gone.
func (r *Reader) Close() {
	r.client.Close()
	<-r.done
}

// ErrNotReceiving is returned by WaitReceiving on timeout.
var ErrNotReceiving = errors.New("readers not receiving")

// WaitReceiving waits until every reader has received a packet.
func WaitReceiving[R interface{ Receiving() bool }](ctx context.Context, rs []R) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n := 0
		for _, r := range rs {
			if r.Receiving() {
				n++
			}
		}
		if n == len(rs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d after %v", ErrNotReceiving, n, len(rs), context.Cause(ctx))
		case <-t.C:
		}
	}
}
