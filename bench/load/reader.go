package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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
	done    chan struct{}
	lastSeq map[*description.Media]uint16 // the client's read goroutine alone uses it

	meter
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
	r.mark(&r.described)
	if err := r.client.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return fail("setup", err)
	}
	r.mark(&r.setUp)
	r.client.OnPacketRTPAny(r.onPacket)
	if _, err := r.client.Play(nil); err != nil {
		return fail("play", err)
	}
	r.mark(&r.played)
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
	last, seen := r.lastSeq[m]
	r.lastSeq[m] = pkt.SequenceNumber
	r.record(pkt.SequenceNumber-last-1, seen, pkt.Payload, pkt.Marker, time.Now())
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
