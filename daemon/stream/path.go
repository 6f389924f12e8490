package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtp"
)

// path is one servable stream: a configured camera stream (fed by a puller)
// or a published one (fed by a publisher session).
type path struct {
	s                  *Server
	name, camera, strm string
	published          bool
	spec               StreamSpec
	publisher          *gortsplib.ServerSession
	exec               *execState // exec sources only (execsource.go)

	// puller lifecycle (camera paths); cancel and done are set under Server.mu
	stopped  chan struct{} // closed when the path is removed
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
	notify   chan struct{} // demand or reader count changed
	// sawDigest: the camera has challenged this path with Digest; a later
	// Basic-only challenge is a downgrade and is refused.
	sawDigest atomic.Bool

	mu      sync.Mutex
	stream  *gortsplib.ServerStream
	fwds    map[*description.Media]*mediaFwd // by source media
	fo      *fanout                          // the served stream's reader side (fanout.go)
	served  []*description.Media             // served medias in order (index = fan-out media index)
	gopMax  int                              // bytes of GOP cache replayed to a new reader
	win     rateWindow
	state   string
	since   time.Time
	lastErr string
	codecs  []string
	tracks  []*trackStats // every source media in SDP order, back channels included
	health  sourceHealth
	// udpTooBig: the camera sent RTP packets too large to receive over UDP;
	// an "auto" transport reconnects over TCP from then on.
	udpTooBig atomic.Bool
	width     int
	height    int
	lost      uint64
	// counters since the path was created, for metrics
	bytesIn, pktsIn, frames, reconnects uint64
	lastFrame                           time.Time
	awaitKey                            map[*session]time.Time // readers waiting for a keyframe, since they connected
	readers                             map[*session]struct{}
	waiting                             int
	ready                               chan struct{} // closed while live
	// setupGate: one reader SETUP of this path at a time inside gortsplib
	// (setupgate.go).
	setupGate chan struct{}
}

func newPath(s *Server, cam, st string) *path {
	return &path{
		s:         s,
		name:      cam + "/" + st,
		camera:    cam,
		strm:      st,
		notify:    make(chan struct{}, 1),
		stopped:   make(chan struct{}),
		state:     StateIdle,
		since:     time.Now(),
		readers:   map[*session]struct{}{},
		ready:     make(chan struct{}),
		setupGate: make(chan struct{}, 1),
		// The replay leaves room in a new reader's budget for live units.
		gopMax: min(s.cfg.WriteQueueSize*7/8*1500, s.cfg.ReaderBudget*3/4),
	}
}

func newCameraPath(s *Server, cam string, sp StreamSpec) *path {
	p := newPath(s, cam, sp.Name)
	p.spec = sp
	if len(sp.Exec) > 0 {
		p.exec = &execState{events: make(chan struct{}, 1)}
	}
	return p
}

// start starts the puller once; the caller holds Server.mu.
func (p *path) start() {
	if p.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.runPuller(ctx)
	}()
}

// stop stops the puller (or drops the publisher) and closes all readers.
func (p *path) stop(ctx context.Context) {
	p.stopOnce.Do(func() { close(p.stopped) })
	if p.published {
		if p.publisher != nil {
			p.publisher.Close()
		}
		p.goDown(StateIdle, "")
		return
	}
	if p.cancel != nil {
		p.cancel()
		select {
		case <-p.done:
		case <-ctx.Done():
		}
	}
	p.goDown(StateIdle, "")
}

func (p *path) setState(state, lastErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != state {
		p.state = state
		p.since = time.Now()
	}
	if lastErr != "" {
		p.lastErr = lastErr
	}
}

// goLive builds the served description from the source one, creates the
// served stream and marks the path live. Back-channel medias are listed in
// the status but not served.
func (p *path) goLive(src *description.Session) error {
	served := &description.Session{Title: src.Title}
	fwds := map[*description.Media]*mediaFwd{}
	var codecs []string
	var tracks []*trackStats
	var w, h int
	now := time.Now()
	for _, m := range src.Medias {
		ts := newTrackStats(m, now)
		tracks = append(tracks, ts)
		if m.IsBackChannel {
			continue
		}
		sm := &description.Media{Type: m.Type, ID: m.ID, Control: m.Control}
		mf := &mediaFwd{served: sm, idx: uint8(len(served.Medias)), formats: map[uint8]*formatFwd{}, video: m.Type == description.MediaTypeVideo, stats: ts}
		for _, f := range m.Formats {
			ff := newFormatFwd(f)
			sm.Formats = append(sm.Formats, ff.out)
			mf.formats[f.PayloadType()] = ff
			name, _, _ := codecInfo(f)
			codecs = append(codecs, name)
			if w == 0 {
				w, h, _ = ff.resolution()
			}
		}
		served.Medias = append(served.Medias, sm)
		fwds[m] = mf
	}
	if len(served.Medias) == 0 {
		return errors.New("source offers no media")
	}
	if len(served.Medias) > 64 {
		return errors.New("source offers more than 64 medias")
	}
	st := &gortsplib.ServerStream{Server: p.s.rtsp, Desc: served}
	if err := st.Initialize(); err != nil {
		return fmt.Errorf("cannot serve source description: %w", err)
	}
	p.mu.Lock()
	if p.stream != nil {
		p.stream.Close()
	}
	if p.fo != nil {
		p.fo.close()
	}
	p.stream = st
	p.fwds = fwds
	p.served = served.Medias
	// gortsplib keeps the RTSP side of readers; the fan-out engine sends
	// them the media, with the SSRCs gortsplib announced.
	allKey := true
	for _, mf := range fwds {
		for _, ff := range mf.formats {
			if mf.video && (ff.h264 != nil || ff.h265 != nil) {
				allKey = false
			}
		}
	}
	p.fo = newFanout(p.s.fan, &p.mu, p.gopMax, p.s.cfg.GOPCacheDisabled, allKey)
	stats := st.Stats()
	for _, mf := range fwds {
		ms := stats.Medias[mf.served]
		for _, ff := range mf.formats {
			p.fo.addFormat(mf.idx, ff.out.PayloadType(), ms.Formats[ff.out].LocalSSRC, ff.out.ClockRate())
		}
	}
	p.codecs = codecs
	p.tracks = tracks
	p.resetHealthLocked(now)
	p.width, p.height = w, h
	p.win = rateWindow{start: now}
	p.mu.Unlock()
	return nil
}

// markLive is called once the source plays: readers waiting for an
// on-demand source may proceed.
func (p *path) markLive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream == nil {
		return
	}
	p.state = StateLive
	p.since = time.Now()
	p.lastErr = ""
	select {
	case <-p.ready:
	default:
		close(p.ready)
	}
}

// goDown closes the served stream (and so its readers).
func (p *path) goDown(state, lastErr string) {
	p.mu.Lock()
	if p.stream != nil {
		p.stream.Close()
		p.stream = nil
	}
	select {
	case <-p.ready:
		p.ready = make(chan struct{})
	default:
	}
	p.fwds = nil
	if p.fo != nil {
		p.fo.close()
		p.fo = nil
	}
	p.served = nil
	if p.state != state {
		p.state = state
		p.since = time.Now()
	}
	if lastErr != "" {
		p.lastErr = lastErr
	}
	// Closing the served stream closed gortsplib's readers; the handed-off
	// ones are ours to close.
	var handed []*playConn
	for se := range p.readers {
		if pc := se.play.Load(); pc != nil {
			handed = append(handed, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range handed {
		pc.end(CloseStopped, true)
	}
}

// ingest forwards one source packet to every reader.
func (p *path) ingest(srcMedia *description.Media, pkt *rtp.Packet) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream == nil {
		return
	}
	p.pktsIn++
	p.bytesIn += uint64(pkt.MarshalSize())
	mf := p.fwds[srcMedia]
	if mf == nil {
		return
	}
	ff := mf.formats[pkt.PayloadType]
	if ff == nil {
		return
	}
	if !validPayload(ff.src, pkt.Payload) {
		// Not what the camera announced: dropped, counted, shown in the status.
		mf.stats.badPayload(pkt.Payload, now)
		return
	}
	mf.stats.lastGood = now
	outs, paramsChanged := ff.process(pkt, now, p.s.rtsp.MaxPacketSize, p.s.log, p.name)
	if paramsChanged {
		// New readers get the new SPS/PPS in their SDP.
		p.stream.ReloadDesc()
		if mf.video {
			if w, h, _ := ff.resolution(); w > 0 {
				p.width, p.height = w, h
			}
		}
	}
	for _, out := range outs {
		key := mf.video && ff.isKey(out.Payload)
		if key && len(p.awaitKey) > 0 {
			p.keyframeLocked(now)
		}
		p.win.add(now, out.MarshalSize(), mf.video && out.Marker)
		if mf.video && out.Marker {
			p.frames++
			p.lastFrame = now
		}
		mf.stats.win.add(now, out.MarshalSize(), mf.video && out.Marker)
		mf.stats.packets++
		p.fo.add(mf.idx, mf.video, out, key, ff.out.PTSEqualsDTS(out), now)
	}
}

func (p *path) addReader(se *session) {
	p.mu.Lock()
	p.readers[se] = struct{}{}
	p.mu.Unlock()
	signal(p.notify)
}

func (p *path) removeReader(se *session) {
	p.mu.Lock()
	_, ok := p.readers[se]
	delete(p.readers, se)
	delete(p.awaitKey, se)
	p.mu.Unlock()
	if ok {
		signal(p.notify)
	}
}

// demand reports whether anyone wants the stream (on-demand sources).
func (p *path) demand() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.readers) > 0 || p.waiting > 0
}

// connectingWait bounds how long a reader waits for an always-on source
// that is connecting.
const connectingWait = 5 * time.Second

// waitReady waits until the path is live, asking an on-demand puller to
// start. It returns the served stream or nil on timeout.
func (p *path) waitReady(ctx context.Context, timeout time.Duration) *gortsplib.ServerStream {
	p.mu.Lock()
	if p.stream != nil && p.state == StateLive {
		st := p.stream
		p.mu.Unlock()
		return st
	}
	if p.published || (!p.spec.OnDemand && p.state != StateConnecting) {
		p.mu.Unlock()
		return nil
	}
	ready := p.ready
	if p.spec.OnDemand {
		p.waiting++
		p.mu.Unlock()
		signal(p.notify)
		defer func() {
			p.mu.Lock()
			p.waiting--
			p.mu.Unlock()
			signal(p.notify)
		}()
	} else {
		// An always-on source is connecting (start-up, a camera edit, a
		// reconnect): a viewer arriving now waits a moment for it rather
		// than getting 404 and retrying.
		p.mu.Unlock()
		timeout = min(timeout, connectingWait)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	case <-ctx.Done():
	case <-p.stopped:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != StateLive {
		return nil
	}
	return p.stream
}

func (p *path) status() StreamStatus {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := StreamStatus{
		Camera:      p.camera,
		Stream:      p.strm,
		Path:        p.name,
		State:       p.state,
		Since:       p.since,
		Codecs:      append([]string(nil), p.codecs...),
		Width:       p.width,
		Height:      p.height,
		Readers:     len(p.readers),
		LastError:   p.lastErr,
		Published:   p.published,
		PacketsLost: p.lost,

		BytesReceived:   p.bytesIn,
		PacketsReceived: p.pktsIn,
		Frames:          p.frames,
		Reconnects:      p.reconnects,
		LastFrame:       p.lastFrame,
	}
	if !p.published {
		st.URL = displayURL(p.spec)
	}
	if p.exec != nil {
		st.SourcePID = p.exec.pid
	}
	if p.stream != nil {
		st.BitrateBps, st.FPS = p.win.rates(now)
	}
	st.Tracks = p.trackStatusLocked(now)
	return st
}

// mediaFwd maps one source media to its served media.
type mediaFwd struct {
	served  *description.Media
	idx     uint8 // in the served description
	formats map[uint8]*formatFwd
	video   bool
	stats   *trackStats
}

// trackStatusLocked lists every track of the last source description; the
// caller holds p.mu.
func (p *path) trackStatusLocked(now time.Time) []TrackStatus {
	if len(p.tracks) == 0 {
		return nil
	}
	byStats := map[*trackStats]*mediaFwd{}
	for _, mf := range p.fwds {
		byStats[mf.stats] = mf
	}
	out := make([]TrackStatus, 0, len(p.tracks))
	for _, t := range p.tracks {
		var ffs map[uint8]*formatFwd
		if mf := byStats[t]; mf != nil {
			ffs = mf.formats
		}
		out = append(out, t.status(now, ffs, p.stream != nil))
	}
	return out
}
