package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

// sendPlaying sends a request on a playing connection and reads until its
// answer, dropping the media frames before it.
func (r *rawConn) sendPlaying(t *testing.T, raw string) *rawResp {
	t.Helper()
	_ = r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write([]byte(raw)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := r.skipFrames(); err != nil {
		t.Fatalf("reading up to the answer: %v", err)
	}
	res, err := r.read()
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	return res
}

// doPlaying is do on a playing connection.
func (r *rawConn) doPlaying(t *testing.T, method, url string, hdr map[string]string) *rawResp {
	t.Helper()
	r.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, r.cseq)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	res := r.sendPlaying(t, b.String())
	if res.header["cseq"] != fmt.Sprint(r.cseq) {
		t.Fatalf("%s answer CSeq = %q, want %d", method, res.header["cseq"], r.cseq)
	}
	return res
}

// skipFrames reads interleaved frames until the next byte starts something
// else.
func (r *rawConn) skipFrames() error {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != '$' {
			return nil
		}
		var hdr [4]byte
		if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
			return err
		}
		if _, err := r.br.Discard(int(binary.BigEndian.Uint16(hdr[2:]))); err != nil {
			return err
		}
	}
}

// nextRTP reads up to the next RTP packet on channel 0.
func (r *rawConn) nextRTP(t *testing.T) *rtp.Packet {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
			t.Fatalf("reading media: %v", err)
		}
		if hdr[0] != '$' {
			t.Fatalf("expected media, got %q", hdr[:])
		}
		buf := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
		if _, err := io.ReadFull(r.br, buf); err != nil {
			t.Fatalf("reading media: %v", err)
		}
		if hdr[1] != 0 {
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf); err != nil {
			t.Fatalf("bad RTP: %v", err)
		}
		return &p
	}
}

// goroutinesIn counts the goroutines whose stack mentions fn.
func goroutinesIn(fn string) int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

func TestPlayingTCPReaderLeavesGortsplib(t *testing.T) {
	r := camsimRig(t, nil)
	camSessions := goroutinesIn("gortsplib/v5.(*ServerSession).run")
	camConns := goroutinesIn("gortsplib/v5.(*ServerConn).run")
	const readers = 20
	var rs []*rawReader
	for range readers {
		rs = append(rs, startRawReader(t, r, 0, false, 0))
	}
	waitFor(t, 20*time.Second, "every reader receiving", func() bool {
		for _, x := range rs {
			if x.pkts.Load() < 10 {
				return false
			}
		}
		return true
	})
	// gortsplib runs no goroutine for a playing TCP reader any more (what
	// is left is the in-process camera's server): its sessions and
	// connections are gone, ours are registered.
	waitFor(t, 10*time.Second, "gortsplib letting go of the readers", func() bool {
		return goroutinesIn("gortsplib/v5.(*ServerSession).run") == camSessions &&
			goroutinesIn("gortsplib/v5.(*ServerConn).run") == camConns
	})
	if n := goroutinesIn("(*playConn).serve"); n != readers {
		t.Fatalf("%d playConn goroutines, want one per reader (%d)", n, readers)
	}
	if n := len(r.srv.Sessions()); n != readers {
		t.Fatalf("Sessions() lists %d, want %d", n, readers)
	}
	if got := r.status("cam1/main").Readers; got != readers {
		t.Fatalf("stream lists %d readers, want %d", got, readers)
	}
	// They keep receiving, with no gap.
	before := rs[0].pkts.Load()
	waitFor(t, 10*time.Second, "more packets", func() bool { return rs[0].pkts.Load() > before+50 })
	for i, x := range rs {
		if g := x.gaps.Load(); g != 0 {
			t.Errorf("reader %d: %d sequence gaps", i, g)
		}
	}
	// Kick: gone from the list and its socket closed when Kick returns.
	victim := r.srv.Sessions()[0]
	if !r.srv.Kick(victim.ID) {
		t.Fatal("Kick found no session")
	}
	for _, s := range r.srv.Sessions() {
		if s.ID == victim.ID {
			t.Fatal("kicked session still listed after Kick returned")
		}
	}
	waitFor(t, 5*time.Second, "one reader cut off", func() bool {
		ended := 0
		for _, x := range rs {
			select {
			case <-x.done:
				ended++
			default:
			}
		}
		return ended == 1
	})
	// Removing the camera ends the handed-off readers too.
	r.srv.SetCameras(t.Context(), nil)
	for i, x := range rs {
		select {
		case <-x.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("reader %d still open after its camera was removed", i)
		}
	}
	waitFor(t, 5*time.Second, "no session left", func() bool { return len(r.srv.Sessions()) == 0 })
}

func TestPlayingReaderRequestsAnswered(t *testing.T) {
	r := camsimRig(t, nil)
	// What gortsplib offers before PLAY is what we offer after.
	pre := dialRaw(t, r.addr, 0)
	res, err := pre.do("OPTIONS", "rtsp://"+r.addr+"/cam1/main", nil)
	if err != nil || res.status != 200 {
		t.Fatalf("OPTIONS before PLAY: %v %+v", err, res)
	}
	if res.header["public"] != publicMethods {
		t.Fatalf("gortsplib's OPTIONS offers %q, the handed-off connection %q", res.header["public"], publicMethods)
	}

	rc, sess := setupRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	url := "rtsp://" + r.addr + "/cam1/main/"
	res, err = rc.do("PLAY", url, map[string]string{"Authorization": basicAuth("alice", "alicepw"), "Session": sess})
	if err != nil || res.status != 200 {
		t.Fatalf("PLAY %v %+v", err, res)
	}
	rc.nextRTP(t)
	waitFor(t, 10*time.Second, "handoff", func() bool { return goroutinesIn("(*playConn).serve") == 1 })
	withSess := map[string]string{"Session": sess}
	defer func() {
		if t.Failed() {
			t.Log(r.logs.String())
		}
	}()

	res = rc.doPlaying(t, "GET_PARAMETER", url, withSess)
	if res.status != 200 || sessionIDOf(res.header["session"]) != sess || !strings.Contains(res.header["session"], "timeout=55") {
		t.Fatalf("GET_PARAMETER: %+v", res)
	}
	if res.header["server"] != serverHeader {
		t.Errorf("Server header %q", res.header["server"])
	}
	res = rc.doPlaying(t, "OPTIONS", url, nil)
	if res.status != 200 || res.header["public"] != publicMethods {
		t.Fatalf("OPTIONS: %+v", res)
	}
	// A keep-alive whose URL carries a long token (gortsplib takes up to
	// 2,048 bytes) still fits the buffer.
	long := url + "?token=" + strings.Repeat("x", 1900)
	if res = rc.doPlaying(t, "GET_PARAMETER", long, withSess); res.status != 200 {
		t.Fatalf("GET_PARAMETER with a long URL: %+v", res)
	}
	// Another session's id, or a request that makes no sense now.
	if res = rc.doPlaying(t, "GET_PARAMETER", url, map[string]string{"Session": "0123456789abcdef"}); res.status != 454 {
		t.Fatalf("unknown session: %+v", res)
	}
	if res = rc.doPlaying(t, "SETUP", url, withSess); res.status != 455 {
		t.Fatalf("SETUP while playing: %+v", res)
	}
	if res = rc.doPlaying(t, "SET_PARAMETER", url, withSess); res.status != 501 {
		t.Fatalf("SET_PARAMETER: %+v", res)
	}
	// The client's RTCP receiver report is read and dropped.
	rr := []byte{'$', 1, 0, 8, 0x80, 201, 0, 1, 0, 0, 0, 1}
	if _, err := rc.c.Write(rr); err != nil {
		t.Fatal(err)
	}
	rc.nextRTP(t)
	if res = rc.doPlaying(t, "GET_PARAMETER", url, withSess); res.status != 200 {
		t.Fatalf("GET_PARAMETER after an RTCP report: %+v", res)
	}
	// PAUSE, then PLAY: delivery resumes at a keyframe.
	if res = rc.doPlaying(t, "PAUSE", url, withSess); res.status != 200 {
		t.Fatalf("PAUSE: %+v", res)
	}
	if res = rc.doPlaying(t, "PLAY", url, withSess); res.status != 200 {
		t.Fatalf("PLAY after PAUSE: %+v", res)
	}
	if p := rc.nextRTP(t); !isKeyStart(p) {
		t.Fatalf("first packet after PAUSE/PLAY is not the start of a keyframe (seq %d)", p.SequenceNumber)
	}
	// TEARDOWN: answered, then the connection closes and the session ends.
	res = rc.doPlaying(t, "TEARDOWN", url, withSess)
	if res.status != 200 {
		t.Fatalf("TEARDOWN: %+v", res)
	}
	if _, ok := res.header["session"]; ok {
		t.Errorf("TEARDOWN answer carries a Session header")
	}
	if err := rc.skipFrames(); err != io.EOF {
		t.Fatalf("after TEARDOWN: %v, want EOF", err)
	}
	waitFor(t, 5*time.Second, "session ended", func() bool { return len(r.srv.Sessions()) == 0 })
}

// isKeyStart reports whether p starts an IDR picture (or its SPS/PPS).
func isKeyStart(p *rtp.Packet) bool {
	k, _, _ := h264Scan(p.Payload)
	return k
}

func TestPlayingReaderGarbageEndsItsSessionOnly(t *testing.T) {
	r := camsimRig(t, nil)
	keep := startRawReader(t, r, 0, false, 0)
	rc := playRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	rc.nextRTP(t)
	waitFor(t, 10*time.Second, "handoff", func() bool { return goroutinesIn("(*playConn).serve") == 2 })
	if _, err := rc.c.Write([]byte("\x16\x03\x01 not rtsp at all\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := rc.skipFrames(); err == nil {
		// the server may answer nothing; it must close
		if !rc.closed() {
			t.Fatal("connection still open after garbage")
		}
	}
	waitFor(t, 5*time.Second, "one session left", func() bool { return len(r.srv.Sessions()) == 1 })
	before := keep.pkts.Load()
	waitFor(t, 10*time.Second, "the other reader still receiving", func() bool { return keep.pkts.Load() > before+20 })
}

func TestPauseAndPlayOverUDP(t *testing.T) {
	// UDP readers stay with gortsplib, which answered PAUSE with 501.
	r := camsimRig(t, nil)
	rd := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolUDP)
	waitFor(t, 10*time.Second, "UDP packets", func() bool { return rd.pkts.Load() > 0 })
	if _, err := rd.c.Pause(); err != nil {
		t.Fatalf("PAUSE: %v", err)
	}
	if _, err := rd.c.Play(nil); err != nil {
		t.Fatalf("PLAY after PAUSE: %v", err)
	}
	n := rd.pkts.Load()
	waitFor(t, 10*time.Second, "packets after PLAY", func() bool { return rd.pkts.Load() > n+20 })
}

// pipelined writes PLAY and a second request in one write, the way a
// client that does not wait for PLAY's answer would, and reads both
// answers.
func pipelined(t *testing.T, rc *rawConn, sess, url, second string) (play, next *rawResp) {
	t.Helper()
	raw := fmt.Sprintf("PLAY %s RTSP/1.0\r\nCSeq: 10\r\nAuthorization: %s\r\nSession: %s\r\n\r\n"+
		"%s %s RTSP/1.0\r\nCSeq: 11\r\nSession: %s\r\n\r\n", url, basicAuth("alice", "alicepw"), sess, second, url, sess)
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	var out [2]*rawResp
	for i := range out {
		if err := rc.skipFrames(); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		res, err := rc.read()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		out[i] = res
	}
	return out[0], out[1]
}

func TestPipelinedTeardownAfterPlayEndsTheSession(t *testing.T) {
	// gortsplib may read the TEARDOWN before the handoff and answer it
	// itself: the session must end all the same.
	r := camsimRig(t, nil)
	rc, sess := setupRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	play, td := pipelined(t, rc, sess, "rtsp://"+r.addr+"/cam1/main/", "TEARDOWN")
	if play.status != 200 || td.status != 200 {
		t.Fatalf("PLAY %d, TEARDOWN %d", play.status, td.status)
	}
	waitFor(t, 10*time.Second, "session ended", func() bool { return len(r.srv.Sessions()) == 0 })
	if err := rc.skipFrames(); err == nil {
		t.Fatal("connection still open after TEARDOWN")
	}
	waitFor(t, 5*time.Second, "no reader on the stream", func() bool { return r.status("cam1/main").Readers == 0 })
}

func TestPipelinedPauseAfterPlayIsApplied(t *testing.T) {
	r := camsimRig(t, nil)
	rc, sess := setupRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	url := "rtsp://" + r.addr + "/cam1/main/"
	play, pause := pipelined(t, rc, sess, url, "PAUSE")
	if play.status != 200 || pause.status != 200 {
		t.Fatalf("PLAY %d, PAUSE %d", play.status, pause.status)
	}
	if r.srv.thr.blockedCount() != 0 || strings.Contains(r.logs.String(), "login failed") {
		t.Fatal("a pipelined PAUSE was counted as a failed login")
	}
	rc.cseq = 11
	if res := rc.doPlaying(t, "PLAY", url, map[string]string{"Session": sess}); res.status != 200 {
		t.Fatalf("PLAY after PAUSE: %+v", res)
	}
	if p := rc.nextRTP(t); !isKeyStart(p) {
		t.Fatalf("first packet after PAUSE/PLAY is not the start of a keyframe (seq %d)", p.SequenceNumber)
	}
	if n := len(r.srv.Sessions()); n != 1 {
		t.Fatalf("sessions = %d, want 1", n)
	}
}

func TestBusyPlayingClientIsNotCutAtTheIdleTimeout(t *testing.T) {
	// The idle timeout counts from the client's last byte, also while
	// what it sends never quite empties the read buffer.
	old := readerIdleTimeout
	readerIdleTimeout = 2 * time.Second
	t.Cleanup(func() { readerIdleTimeout = old })
	r := camsimRig(t, nil)
	rc := playRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	rc.nextRTP(t)
	waitFor(t, 10*time.Second, "handoff", func() bool { return goroutinesIn("(*playConn).serve") == 1 })
	go func() { // the media, drained
		buf := make([]byte, 64<<10)
		for {
			_ = rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := rc.br.Read(buf); err != nil {
				return
			}
		}
	}()
	frame := make([]byte, 4+300) // an RTCP-sized frame on channel 1
	frame[0], frame[1], frame[2], frame[3] = '$', 1, 1, 44
	half := len(frame) / 2
	_ = rc.c.SetWriteDeadline(time.Time{})
	if _, err := rc.c.Write(frame[:half]); err != nil {
		t.Fatal(err)
	}
	// Every write ends half-way through a frame for 2.5 idle timeouts.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := rc.c.Write(append(append([]byte{}, frame[half:]...), frame[:half]...)); err != nil {
			t.Fatalf("client cut off while it sent every 20 ms: %v", err)
		}
	}
	if n := len(r.srv.Sessions()); n != 1 {
		t.Fatalf("busy client's session ended (sessions = %d)", n)
	}
	// Silent now: cut after the idle timeout.
	waitFor(t, 10*time.Second, "silent client cut", func() bool { return len(r.srv.Sessions()) == 0 })
}

func TestWriterThreadsRunAtALowerPriority(t *testing.T) {
	niceOf := func(stat []byte) string {
		// field 19 of a stat line; the command name (field 2) may hold
		// spaces: count from its ')'
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) <= 16 {
			return ""
		}
		return f[16]
	}
	// The nice of an ordinary thread (not the main one: a writer of an
	// earlier test may have ended on it, leaving it parked at its nice).
	runtime.LockOSThread()
	self, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", unix.Gettid()))
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	var base int
	if _, err := fmt.Sscan(niceOf(self), &base); err != nil {
		t.Fatalf("nice of the test's thread: %v", err)
	}
	want := fmt.Sprint(min(base+writerNiceOffset, 19))
	r := newRig(t, nil)
	writers := len(r.srv.fan.writers)
	waitFor(t, 5*time.Second, "writer threads "+fmt.Sprint(writerNiceOffset)+" nicer than the process", func() bool {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, task := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
			if err != nil {
				continue // the thread ended
			}
			if niceOf(b) == want {
				n++
			}
		}
		return n >= writers
	})
}
