package stream

// The reader-side data path (docs/design.md, "Performance facts"; issue #14). gortsplib's server
// keeps the RTSP control of every connection (requests, auth, sessions,
// keep-alives); the media bytes to readers bypass its per-session queue and
// writer goroutine:
//
//   - the ingest side groups a path's served packets into units (one access
//     unit: the packets up to the RTP marker bit) and marshals each packet
//     once into an immutable buffer;
//   - for TCP readers a unit is framed with RTSP interleaved '$' headers once
//     per channel layout (the media->channel mapping the readers chose; nearly
//     all readers share one), never per reader;
//   - a fixed set of writer goroutines (GOMAXPROCS) pushes each unit to its
//     readers: one non-blocking writev per TCP reader per unit (several
//     queued units leave in the same writev), one sendmmsg per UDP reader;
//   - a reader keeps at most ReaderBudget bytes queued (references to the
//     shared units, not copies); one that falls further behind drops what is
//     queued and resumes at the next keyframe, so it never sees a torn frame
//     (a slow link gets keyframes, not a disconnect); one whose socket takes
//     nothing for StalledReaderTimeout while bytes wait for it has stopped
//     reading and is evicted;
//   - a TCP reader starts with the cached units since the last keyframe; a
//     UDP reader starts live at the next keyframe, and its datagrams are
//     paced (a burst of udpBurst, then udpPaceRate) so a large keyframe does
//     not overrun a client's default socket buffer.
//
// Ownership: a unit is immutable once published (its framings for new
// layouts are added copy-on-write). Everything in fanReader marked "writer"
// is touched only by the reader's writer goroutine; fanReader.mu is held
// while its bytes are sent so that close() returning means nothing more is
// sent to it. The path's fanout (units being built, the GOP cache, the
// layouts, the reader lists) is guarded by path.mu.

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

const (
	// unitFlushAfter bounds how long the packets of an access unit whose
	// marker never comes are held.
	unitFlushAfter = 5 * time.Millisecond
	// unitMaxBytes bounds a unit: a larger access unit leaves in parts.
	unitMaxBytes = 256 << 10
	// senderReportEvery is the RTCP sender report interval per format.
	senderReportEvery = 5 * time.Second
	// maxIOV bounds the buffers of one writev (IOV_MAX is 1024).
	maxIOV = 256

	// UDP pacing: a reader's backlog leaves at most udpBurst bytes at once
	// and then at udpPaceRate; a live frame that fits the burst is not delayed.
	udpBurst    = 64 << 10
	udpPaceRate = 4 << 20 // bytes per second
	udpPaceTick = 2 * time.Millisecond
)

// pktRef is one marshalled packet inside a unit's buffer.
type pktRef struct {
	media    uint8 // index in the served description
	rtcp     bool
	off, len int32 // in unit.raw
}

// unit is one burst of packets delivered together: an access unit, or
// RTCP sender reports. Immutable once published.
type unit struct {
	raw    []byte
	pkts   []pktRef
	key    bool // starts a keyframe: a reader that skipped may resume here
	video  bool
	rtcp   bool                     // only RTCP sender reports: never skipped
	ts     uint32                   // RTP timestamp of its video packets
	framed atomic.Pointer[[][]byte] // TCP framing by layout index; nil entry = not built
}

// tcpBytes returns the interleaved framing of u for layout l, building it
// once per layout.
func (u *unit) tcpBytes(l *layout) []byte {
	if fp := u.framed.Load(); fp != nil && l.idx < len(*fp) && (*fp)[l.idx] != nil {
		return (*fp)[l.idx]
	}
	b := u.frame(l)
	for {
		old := u.framed.Load()
		var cur [][]byte
		if old != nil {
			if l.idx < len(*old) && (*old)[l.idx] != nil {
				return (*old)[l.idx]
			}
			cur = *old
		}
		next := make([][]byte, max(len(cur), l.idx+1))
		copy(next, cur)
		next[l.idx] = b
		if u.framed.CompareAndSwap(old, &next) {
			return b
		}
	}
}

func (u *unit) frame(l *layout) []byte {
	n := 0
	for _, p := range u.pkts {
		if l.channel(p) >= 0 {
			n += 4 + int(p.len)
		}
	}
	b := make([]byte, 0, n)
	for _, p := range u.pkts {
		ch := l.channel(p)
		if ch < 0 {
			continue
		}
		b = append(b, '$', byte(ch), byte(p.len>>8), byte(p.len))
		b = append(b, u.raw[p.off:p.off+p.len]...)
	}
	return b
}

// layout is one media->interleaved-channel mapping chosen by TCP readers.
type layout struct {
	idx   int
	chans []int // RTP channel per served media; -1 = not set up
}

func (l *layout) channel(p pktRef) int {
	if int(p.media) >= len(l.chans) || l.chans[p.media] < 0 {
		return -1
	}
	if p.rtcp {
		return l.chans[p.media] + 1
	}
	return l.chans[p.media]
}

func sameChans(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fanFormat is the per-format state of the served stream.
type fanFormat struct {
	ssrc    uint32
	clock   int
	packets uint32
	octets  uint32
	lastTS  uint32
	// The RTP-to-NTP mapping of the sender reports: anchored at a packet's
	// arrival and then advanced by RTP time, so that arrival jitter does not
	// move it from one report to the next (readers shift a track by every
	// change: ffmpeg reports non-monotonic timestamps).
	extTS       int64 // lastTS unwrapped
	anchorTS    int64
	anchorAt    time.Time
	sent        bool
	lastSR      time.Time
	media       uint8
	payloadType uint8
}

// fanout is one path's side of the engine, guarded by path.mu.
type fanout struct {
	e       *fanEngine
	formats map[[2]uint8]*fanFormat // (media, payload type)

	building    *unit
	buildTimer  *time.Timer
	buildGen    uint64
	timerArmed  bool   // buildTimer runs for the unit being built
	scratch     []byte // reused to build units in; publish copies each out at its size
	gop         []*unit
	gopBytes    int
	gopOn       bool
	gopDisabled bool
	gopMax      int  // bytes
	allKey      bool // no keyframes to detect (MJPEG, audio only): every unit is a starting point
	layouts     []*layout
	shards      [][]*fanReader // by writer; copy-on-write
	closed      bool
	mu          *sync.Mutex // path.mu, for the flush timer
}

func newFanout(e *fanEngine, mu *sync.Mutex, gopMax int, gopDisabled, allKey bool) *fanout {
	return &fanout{
		e: e, mu: mu, formats: map[[2]uint8]*fanFormat{},
		gopMax: gopMax, gopDisabled: gopDisabled, allKey: allKey,
		shards: make([][]*fanReader, len(e.writers)),
	}
}

func (f *fanout) addFormat(media, pt uint8, ssrc uint32, clock int) {
	f.formats[[2]uint8{media, pt}] = &fanFormat{ssrc: ssrc, clock: clock, media: media, payloadType: pt}
}

// add queues one served packet; the caller holds path.mu. key reports that
// the packet starts a keyframe, sync that its timestamp is a decoding time
// (PTS = DTS), fit for the RTCP sender reports' RTP-to-NTP mapping.
func (f *fanout) add(media uint8, video bool, pkt *rtp.Packet, key, sync bool, now time.Time) {
	if f.closed {
		return
	}
	ff := f.formats[[2]uint8{media, pkt.PayloadType}]
	if ff == nil {
		return
	}
	if key && f.building != nil && f.building.video && f.building.ts != pkt.Timestamp {
		f.publish(now) // a keyframe starts its own unit
	}
	u := f.building
	if u == nil {
		if f.scratch == nil {
			f.scratch = make([]byte, 0, 32<<10)
		}
		u = &unit{raw: f.scratch[:0]}
		f.building = u
		f.buildGen++
	}
	h := pkt.Header
	h.SSRC = ff.ssrc
	h.Extension, h.Extensions = false, nil
	c := rtp.Packet{Header: h, Payload: pkt.Payload}
	off := len(u.raw)
	sz := c.MarshalSize()
	u.raw = append(u.raw, make([]byte, sz)...)
	if _, err := c.MarshalTo(u.raw[off:]); err != nil {
		u.raw = u.raw[:off]
		return
	}
	u.pkts = append(u.pkts, pktRef{media: media, off: int32(off), len: int32(sz)})
	if key {
		u.key = true
	}
	if video {
		u.video, u.ts = true, pkt.Timestamp
	}
	ff.packets++
	ff.octets += uint32(len(pkt.Payload))
	if sync || !ff.sent {
		ff.sync(pkt.Timestamp, now)
	}
	if (video && pkt.Marker) || !video && !u.video || len(u.raw) >= unitMaxBytes {
		f.publish(now)
		return
	}
	if !f.timerArmed {
		// Only a unit that waits for more packets needs the late flush
		// (audio alone is published at once and never arms it).
		gen := f.buildGen
		f.buildTimer = time.AfterFunc(unitFlushAfter, func() { f.flushLate(gen) })
		f.timerArmed = true
	}
}

func (f *fanout) flushLate(gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buildGen == gen && f.building != nil && !f.closed {
		f.publish(time.Now())
	}
}

// publish hands the unit being built to the writers; path.mu is held.
func (f *fanout) publish(now time.Time) {
	u := f.building
	f.building = nil
	if f.buildTimer != nil {
		f.buildTimer.Stop()
	}
	f.timerArmed = false
	if u == nil || len(u.pkts) == 0 {
		return
	}
	// The unit was built in the reused scratch buffer; the GOP cache holds
	// units for seconds, so each gets its own buffer of exactly its size.
	raw := make([]byte, len(u.raw))
	copy(raw, u.raw)
	f.scratch = u.raw[:0] // keeps whatever it grew to, at most unitMaxBytes plus a packet
	u.raw = raw
	if f.allKey {
		u.key = true
	}
	for _, l := range f.layouts {
		u.tcpBytes(l) // framed here, once, before any writer needs it
	}
	if !f.gopDisabled {
		switch {
		case u.key:
			f.gop, f.gopBytes, f.gopOn = append(f.gop[:0:0], u), len(u.raw), true
		case f.gopOn:
			if f.gopBytes+len(u.raw) > f.gopMax {
				f.gop, f.gopBytes, f.gopOn = nil, 0, false // too long to replay: wait for the next keyframe
			} else {
				f.gop = append(f.gop, u)
				f.gopBytes += len(u.raw)
			}
		}
	}
	units := []*unit{u}
	if sr := f.senderReports(now, false); sr != nil {
		units = append(units, sr)
	}
	f.post(units)
}

func (f *fanout) post(units []*unit) {
	for i, rs := range f.shards {
		if len(rs) > 0 {
			f.e.writers[i].post(fanJob{readers: rs, units: units})
		}
	}
}

// sync advances the format's RTP clock to ts, which arrived at now.
func (ff *fanFormat) sync(ts uint32, now time.Time) {
	if !ff.sent || ff.clock <= 0 {
		ff.extTS, ff.anchorTS, ff.anchorAt = 0, 0, now
	} else {
		ff.extTS += int64(int32(ts - ff.lastTS))
	}
	ff.lastTS, ff.sent = ts, true
	if ff.clock > 0 {
		// Re-anchor a clock that drifted or jumped by more than a second.
		if d := ff.ntpAt().Sub(now); d > time.Second || d < -time.Second {
			ff.anchorTS, ff.anchorAt = ff.extTS, now
		}
	}
}

// ntpAt is the wall-clock time of lastTS.
func (ff *fanFormat) ntpAt() time.Time {
	if ff.clock <= 0 {
		return ff.anchorAt
	}
	return ff.anchorAt.Add(time.Duration((ff.extTS - ff.anchorTS) * int64(time.Second) / int64(ff.clock)))
}

// senderReports returns a unit of RTCP sender reports for the formats whose
// last report is older than senderReportEvery (every format that has sent,
// if all), or nil.
func (f *fanout) senderReports(now time.Time, all bool) *unit {
	var u *unit
	for _, ff := range f.formats {
		if !ff.sent || !all && now.Sub(ff.lastSR) < senderReportEvery {
			continue
		}
		if !all {
			ff.lastSR = now
		}
		sr := rtcp.SenderReport{
			SSRC: ff.ssrc, NTPTime: ntpTime(ff.ntpAt()), RTPTime: ff.lastTS,
			PacketCount: ff.packets, OctetCount: ff.octets,
		}
		b, err := sr.Marshal()
		if err != nil {
			continue
		}
		if u == nil {
			u = &unit{rtcp: true}
		}
		u.pkts = append(u.pkts, pktRef{media: ff.media, rtcp: true, off: int32(len(u.raw)), len: int32(len(b))})
		u.raw = append(u.raw, b...)
	}
	return u
}

func ntpTime(t time.Time) uint64 {
	s := uint64(t.Unix()) + 2208988800
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return s<<32 | frac
}

// layoutFor returns the shared layout for chans, adding it (and framing the
// cached GOP for it) if it is new; path.mu is held.
func (f *fanout) layoutFor(chans []int) *layout {
	for _, l := range f.layouts {
		if sameChans(l.chans, chans) {
			return l
		}
	}
	l := &layout{idx: len(f.layouts), chans: append([]int(nil), chans...)}
	f.layouts = append(f.layouts, l)
	return l
}

// attach starts delivering to r: first the cached units since the last
// keyframe, then every live unit, with no gap and no duplicate (path.mu is
// held, so no unit is published in between). It reports whether r got a
// cached keyframe.
func (f *fanout) attach(r *fanReader) (replayed bool) {
	if f.closed {
		return false
	}
	w := r.w
	i := w.idx
	next := make([]*fanReader, len(f.shards[i]), len(f.shards[i])+1)
	copy(next, f.shards[i])
	f.shards[i] = append(next, r)
	// Sender reports first: a reader syncs its tracks (and places the
	// replayed packets) by them from its first packet on.
	var units []*unit
	if sr := f.senderReports(time.Now(), true); sr != nil {
		units = append(units, sr)
	}
	switch {
	case r.udp != nil:
		// A UDP reader starts live at the next keyframe, as from the camera
		// itself: a replay arriving faster than live overruns the socket
		// buffer of a client busy decoding (ffmpeg reports missed packets).
		r.waitKey = true
	case f.gopOn && len(f.gop) > 0:
		units = append(units, f.gop...)
		replayed = true
	case !f.gopDisabled:
		r.waitKey = true
	}
	if len(units) > 0 && !r.replayNow(units) {
		w.post(fanJob{readers: []*fanReader{r}, units: units})
	}
	return replayed
}

// replayNow writes a new TCP reader's first units at once, from the caller
// (the connection's goroutine, right after the PLAY answer), instead of
// queueing them behind the writer's pass over its other readers: the time
// to first frame does not grow with the readers. The write never blocks;
// what the socket does not take now is the connection's remainder, which
// goes out before anything else. It reports whether it took the units.
func (r *fanReader) replayNow(units []*unit) bool {
	if r.tcp == nil || len(units) > maxIOV {
		return false
	}
	iov := make([][]byte, 0, len(units))
	for _, u := range units {
		iov = append(iov, u.tcpBytes(r.layout))
	}
	taken, wrote, err := r.tcp.tryWritev(iov)
	r.sent.Add(uint64(wrote))
	return taken || err != nil
}

// detach stops delivering to r; path.mu is held.
func (f *fanout) detach(r *fanReader) {
	i := r.w.idx
	rs := f.shards[i]
	for j, x := range rs {
		if x == r {
			next := make([]*fanReader, 0, len(rs)-1)
			next = append(next, rs[:j]...)
			f.shards[i] = append(next, rs[j+1:]...)
			return
		}
	}
}

// close drops everything; path.mu is held. Readers are closed by their
// sessions (the served stream closes them).
func (f *fanout) close() {
	f.closed = true
	if f.buildTimer != nil {
		f.buildTimer.Stop()
	}
	f.building, f.gop = nil, nil
	for i := range f.shards {
		for _, r := range f.shards[i] {
			r.close()
		}
		f.shards[i] = nil
	}
}

// fanEngine is the server-wide part: the writer goroutines and the UDP
// sockets.
type fanEngine struct {
	writers  []*fanWriter
	next     atomic.Uint32
	budget   int
	stallFor time.Duration
	log      hclog.Logger
	udpRTP   *udpSender
	udpRTCP  *udpSender
	done     chan struct{}
	wg       sync.WaitGroup
}

func newFanEngine(writers, budget int, stallFor time.Duration, log hclog.Logger) *fanEngine {
	e := &fanEngine{budget: budget, stallFor: stallFor, log: log, done: make(chan struct{})}
	// By default one Go processor is left to everything else (RTSP
	// requests, the admin API, the ingest); the daemon asks for a writer
	// per CPU and runs with one processor more (daemon.Run).
	n := writers
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	for i := range n {
		e.writers = append(e.writers, &fanWriter{idx: i, e: e, wake: make(chan struct{}, 1)})
	}
	return e
}

func (e *fanEngine) start() {
	for _, w := range e.writers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			w.run()
		}()
	}
}

func (e *fanEngine) stop() {
	select {
	case <-e.done:
	default:
		close(e.done)
	}
	e.wg.Wait()
}

// pick assigns a new reader to a writer, round robin.
func (e *fanEngine) pick() *fanWriter {
	return e.writers[int(e.next.Add(1))%len(e.writers)]
}

type fanJob struct {
	readers []*fanReader // immutable snapshot
	units   []*unit
}

// fanWriter is one writer goroutine and its job queue.
type fanWriter struct {
	idx  int
	e    *fanEngine
	mu   sync.Mutex
	jobs []fanJob
	wake chan struct{}

	// goroutine-owned
	spare  []fanJob
	dirty  []*fanReader
	pacing []*fanReader
}

// writerNiceOffset is how much nicer the writer threads are than the rest
// of the daemon.
const writerNiceOffset = 5

// lowerThreadPriority makes the calling (locked) thread by steps nicer than the
// process. Best effort: where it is not allowed, the thread keeps the
// process's priority.
func lowerThreadPriority(by int) {
	// The raw getpriority call answers 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return
	}
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), min(20-prio+by, 19))
}

// writerYieldEvery is how many readers a writer serves before it parks for
// a moment (1-2 ms of writevs), when no Go processor is left free.
const writerYieldEvery = 256

// yield parks the writer for an instant in the middle of a long burst (a
// frame to 1,000 readers keeps a writer busy for milliseconds) when the
// writers hold every Go processor (GOMAXPROCS 1, or set by hand). Its
// processor, finding nothing queued, polls the network: a waiting RTSP
// request, an admin call (a revocation) runs now, not after the burst or
// at the Go runtime's 10 ms network poll. runtime.Gosched would not do:
// the writers would take turns from the run queue, and the run queue is
// served before the network. With a processor to spare (the daemon's
// default), its idle thread waits in the network poll and no writer parks.
func (w *fanWriter) yield() { time.Sleep(time.Microsecond) }

func (w *fanWriter) post(j fanJob) {
	w.mu.Lock()
	w.jobs = append(w.jobs, j)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *fanWriter) run() {
	// A writer's thread runs at a lower OS priority than the rest of the
	// daemon: when the CPUs are busy (2,000 readers, the load of the box),
	// an RTSP request or an admin call waiting for a CPU gets it before the
	// next writev. The writers' work is the same; it only waits its turn.
	// The thread is never unlocked: it ends with the writer, priority and all.
	runtime.LockOSThread()
	lowerThreadPriority(writerNiceOffset)
	tick := time.NewTicker(time.Hour)
	tick.Stop()
	ticking := false
	for {
		select {
		case <-w.e.done:
			tick.Stop()
			return
		case <-w.wake:
		case <-tick.C:
		}
		w.mu.Lock()
		jobs := w.jobs
		w.jobs = w.spare[:0]
		w.mu.Unlock()
		now := time.Now()
		for _, j := range jobs {
			for _, r := range j.readers {
				if r.enqueue(j.units, now) && !r.dirty {
					r.dirty = true
					w.dirty = append(w.dirty, r)
				}
			}
		}
		for i := range jobs {
			jobs[i] = fanJob{}
		}
		w.spare = jobs
		for _, r := range w.pacing {
			if !r.dirty {
				r.dirty = true
				w.dirty = append(w.dirty, r)
			}
		}
		w.pacing = w.pacing[:0]
		// the writers hold every Go processor (see yield)
		park := len(w.e.writers) >= runtime.GOMAXPROCS(0)
		for i, r := range w.dirty {
			r.dirty = false
			if r.flush(now) {
				w.pacing = append(w.pacing, r)
			}
			w.dirty[i] = nil
			if park && i%writerYieldEvery == writerYieldEvery-1 {
				w.yield()
			}
		}
		w.dirty = w.dirty[:0]
		switch {
		case len(w.pacing) > 0 && !ticking:
			tick.Reset(udpPaceTick)
			ticking = true
		case len(w.pacing) == 0 && ticking:
			tick.Stop()
			ticking = false
		}
	}
}

// fanReader is one playing reader.
type fanReader struct {
	fo     *fanout
	w      *fanWriter
	tcp    *fanConn // TCP readers
	layout *layout
	udp    *udpDest // UDP readers

	mu     sync.Mutex // held while sending; close takes it
	closed bool

	sent    atomic.Uint64 // bytes
	skips   atomic.Uint64 // times it fell behind and skipped to a keyframe
	evicted atomic.Bool
	paused  atomic.Bool                              // the client sent PAUSE (and no PLAY since)
	resync  atomic.Bool                              // set by pause: the writer drops the queue, waits for a keyframe
	onEvict func(behindFor time.Duration, err error) // run once, in its own goroutine

	// writer-owned
	queue      []*unit
	queued     int
	head       int       // UDP: packets of queue[0] already sent
	waitKey    bool      // skip to the next keyframe (a new reader without a replay, or one that fell behind)
	stuckSince time.Time // since when bytes wait that the socket does not take
	dirty      bool
	tokens     float64
	refilled   time.Time
	iov        [][]byte
	msgs       []udpMsg
}

// pause stops delivery until resume, which starts again at a keyframe.
func (r *fanReader) pause() {
	r.paused.Store(true)
	r.resync.Store(true)
}

func (r *fanReader) resume() { r.paused.Store(false) }

func (r *fanReader) size(u *unit) int {
	if r.tcp != nil {
		return len(u.tcpBytes(r.layout))
	}
	return len(u.raw)
}

// enqueue adds units to r's queue within its budget and reports whether r
// has something to send. Writer goroutine only.
func (r *fanReader) enqueue(units []*unit, now time.Time) bool {
	if r.isClosed() {
		return false
	}
	if r.resync.Swap(false) {
		// PAUSE: drop what waits (a unit the socket took in part still
		// completes); PLAY resumes at a keyframe.
		for i := range r.queue {
			r.queue[i] = nil
		}
		r.queue, r.queued, r.head = r.queue[:0], 0, 0
		r.waitKey = true
	}
	if r.paused.Load() {
		return r.pendingBytes() > 0
	}
	for _, u := range units {
		if r.waitKey && !u.rtcp {
			if !u.key {
				continue
			}
			r.waitKey = false
		}
		sz := r.size(u)
		if sz == 0 {
			continue
		}
		if r.queued+sz+r.pendingBytes() > r.w.e.budget && r.tcp != nil && len(r.queue) > 0 {
			// The writer itself may be late (its jobs piled up): give the
			// socket what is queued before calling the reader behind.
			r.flush(now)
		}
		if r.queued+sz+r.pendingBytes() > r.w.e.budget {
			// Behind: drop what has not started and resume at a keyframe.
			for i := range r.queue {
				r.queue[i] = nil
			}
			r.queue, r.queued, r.head = r.queue[:0], 0, 0
			r.skips.Add(1)
			if !u.key && !u.rtcp || sz+r.pendingBytes() > r.w.e.budget {
				r.waitKey = true
				continue
			}
		}
		r.queue = append(r.queue, u)
		r.queued += sz
	}
	return len(r.queue) > 0 || r.pendingBytes() > 0
}

func (r *fanReader) pendingBytes() int {
	if r.tcp != nil {
		return r.tcp.pendingBytes()
	}
	return 0
}

// flush sends what r has queued without blocking and reports whether a UDP
// backlog is left for the pacer. Writer goroutine only.
func (r *fanReader) flush(now time.Time) (pace bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.drop()
		return false
	}
	var err error
	wrote := 0
	if r.tcp != nil {
		wrote, err = r.flushTCP()
	} else {
		err = r.flushUDP(now)
		pace = len(r.queue) > 0
	}
	r.mu.Unlock()
	if err != nil {
		r.drop()
		r.evict(0, err)
		return false
	}
	switch {
	case wrote > 0 || r.udp != nil || len(r.queue) == 0 && r.pendingBytes() == 0:
		r.stuckSince = time.Time{}
	case r.stuckSince.IsZero():
		r.stuckSince = now
	case now.Sub(r.stuckSince) >= r.w.e.stallFor:
		r.evict(now.Sub(r.stuckSince), nil)
	}
	return pace
}

func (r *fanReader) flushTCP() (int, error) {
	if len(r.queue) == 0 && r.tcp.pendingBytes() == 0 {
		return 0, nil
	}
	iov := r.iov[:0]
	n := 0
	for _, u := range r.queue {
		if len(iov) == maxIOV {
			break
		}
		iov = append(iov, u.tcpBytes(r.layout))
		n++
	}
	taken, wrote, err := r.tcp.tryWritev(iov)
	r.sent.Add(uint64(wrote))
	for i := range iov {
		iov[i] = nil
	}
	r.iov = iov[:0]
	if cap(iov) > 16 {
		r.iov = nil // a GOP replay's long vector is not kept per reader
	}
	if err != nil {
		return wrote, err
	}
	if taken {
		for i := 0; i < n; i++ {
			r.queued -= len(r.queue[i].tcpBytes(r.layout))
			r.queue[i] = nil
		}
		r.queue = append(r.queue[:0], r.queue[n:]...)
	}
	return wrote, nil
}

func (r *fanReader) flushUDP(now time.Time) error {
	if r.refilled.IsZero() {
		r.tokens = udpBurst
	} else {
		r.tokens = min(udpBurst, r.tokens+now.Sub(r.refilled).Seconds()*udpPaceRate)
	}
	r.refilled = now
	msgs := r.msgs[:0]
	var sentBytes int
	for len(r.queue) > 0 && r.tokens > 0 {
		u := r.queue[0]
		for r.head < len(u.pkts) && r.tokens > 0 {
			p := u.pkts[r.head]
			r.head++
			addr := r.udp.addr(p)
			if addr == nil {
				continue
			}
			b := u.raw[p.off : p.off+p.len]
			msgs = append(msgs, udpMsg{b: b, addr: addr, rtcp: p.rtcp})
			r.tokens -= float64(len(b))
			sentBytes += len(b)
		}
		if r.head >= len(u.pkts) {
			r.queued -= len(u.raw)
			r.queue[0] = nil
			r.queue = r.queue[1:]
			r.head = 0
		}
	}
	if len(r.queue) == 0 {
		r.queue = r.queue[:0:0]
	}
	err := r.udp.send(msgs)
	for i := range msgs {
		msgs[i] = udpMsg{}
	}
	r.msgs = msgs[:0]
	r.sent.Add(uint64(sentBytes))
	return err
}

// drop releases the queue (writer goroutine only).
func (r *fanReader) drop() {
	for i := range r.queue {
		r.queue[i] = nil
	}
	r.queue, r.queued, r.head = nil, 0, 0
}

func (r *fanReader) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// close stops all delivery to r: once it returns nothing more is sent.
func (r *fanReader) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

func (r *fanReader) evict(behindFor time.Duration, err error) {
	if r.onEvict != nil && r.evicted.CompareAndSwap(false, true) {
		go r.onEvict(behindFor, err)
	}
}

// udpDest is where a UDP reader's packets go, per served media.
type udpDest struct {
	e     *fanEngine
	rtp   []*net.UDPAddr // by served media; nil = not set up
	rtcpA []*net.UDPAddr
}

func (d *udpDest) addr(p pktRef) *net.UDPAddr {
	if int(p.media) >= len(d.rtp) {
		return nil
	}
	if p.rtcp {
		return d.rtcpA[p.media]
	}
	return d.rtp[p.media]
}

type udpMsg struct {
	b    []byte
	addr *net.UDPAddr
	rtcp bool
}

func (d *udpDest) send(msgs []udpMsg) error {
	var rtpMsgs, rtcpMsgs []udpMsg
	for _, m := range msgs {
		if m.rtcp {
			rtcpMsgs = append(rtcpMsgs, m)
		}
	}
	if len(rtcpMsgs) == 0 {
		rtpMsgs = msgs
	} else {
		for _, m := range msgs {
			if !m.rtcp {
				rtpMsgs = append(rtpMsgs, m)
			}
		}
	}
	if d.e.udpRTP != nil && len(rtpMsgs) > 0 {
		if err := d.e.udpRTP.send(rtpMsgs); err != nil {
			return err
		}
	}
	if d.e.udpRTCP != nil && len(rtcpMsgs) > 0 {
		return d.e.udpRTCP.send(rtcpMsgs)
	}
	return nil
}
