package stream

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/hashicorp/go-hclog"
)

// recObserver records what the Server reports.
type recObserver struct {
	mu     sync.Mutex
	closed map[string]int
	auth   map[string]int
	ttff   []time.Duration
}

func (o *recObserver) SessionClosed(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed[reason]++
}

func (o *recObserver) FirstFrame(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ttff = append(o.ttff, d)
}

func (o *recObserver) AuthFailed(method string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.auth[method]++
}

func (o *recObserver) closedBy(reason string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed[reason]
}

func (o *recObserver) failures(method string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.auth[method]
}

func (o *recObserver) firstFrames() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Duration(nil), o.ttff...)
}

func newObserver() *recObserver {
	return &recObserver{closed: map[string]int{}, auth: map[string]int{}}
}

// TestObserverHearsSessionsAndLogins: each way a session ends is reported
// with its reason, failed logins with their method, and every reader's
// first frame once; the stream's counters grow.
func TestObserverHearsSessionsAndLogins(t *testing.T) {
	obs := newObserver()
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.Observer = obs })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })

	// Revoked: bob loses his grant.
	bob := mustReader(t, r.url("bob", "bob%20pw%3A%40%2F", "cam1/main"), gortsplib.ProtocolTCP)
	alice := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 5*time.Second, "both readers get packets", func() bool { return bob.pkts.Load() > 5 && alice.pkts.Load() > 5 })
	r.policy.Store(mustPolicy(t, []string{"alice", "bob"}, readGrant("alice", "*")))
	if n := r.srv.Enforce(r.policy.Load()); n != 1 {
		t.Fatalf("Enforce closed %d, want 1", n)
	}
	waitFor(t, 5*time.Second, "revocation reported", func() bool { return obs.closedBy(CloseRevoked) == 1 })

	// Kicked.
	ses := r.srv.Sessions()
	if len(ses) != 1 || ses[0].User != "alice" {
		t.Fatalf("sessions = %+v", ses)
	}
	r.srv.Kick(ses[0].ID)
	waitFor(t, 5*time.Second, "kick reported", func() bool { return obs.closedBy(CloseKicked) == 1 })

	// Client: the reader goes away by itself.
	carol := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 5*time.Second, "reader gets packets", func() bool { return carol.pkts.Load() > 5 })
	carol.c.Close()
	waitFor(t, 5*time.Second, "client close reported", func() bool { return obs.closedBy(CloseClient) == 1 })

	// Three readers, three first frames, each soon after connecting (the
	// GOP cache hands them a keyframe at PLAY).
	if ff := obs.firstFrames(); len(ff) != 3 {
		t.Errorf("first frames = %v, want 3", ff)
	} else {
		for _, d := range ff {
			if d <= 0 || d > 5*time.Second {
				t.Errorf("time to first frame %v out of range", d)
			}
		}
	}

	// Failed logins, by method; a missing Authorization (the normal first
	// challenge) is not a failure.
	rc := dialRaw(t, r.addr, 0)
	if res, err := rc.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", nil); err != nil || res.status != 401 {
		t.Fatalf("challenge: %v %+v", err, res)
	}
	rc = dialRaw(t, r.addr, 0)
	if res, err := rc.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wrong"))}); err != nil || res.status != 401 {
		t.Fatalf("wrong Basic: %v %+v", err, res)
	}
	if st, _, _, _ := describeDigest(t, r.addr, "cam1/main", "alice", "wrong"); st != 401 {
		t.Fatalf("wrong Digest = %d", st)
	}
	if obs.failures("basic") != 1 || obs.failures("digest") != 1 || obs.failures("other") != 0 {
		t.Errorf("auth failures = %v, want basic 1, digest 1", obs.auth)
	}

	st := r.status("cam1/main")
	if st.PacketsReceived == 0 || st.BytesReceived < st.PacketsReceived*12 || st.Frames == 0 || st.LastFrame.IsZero() {
		t.Errorf("stream counters not kept: %+v", st)
	}
	if time.Since(st.LastFrame) > 5*time.Second {
		t.Errorf("last frame %v ago", time.Since(st.LastFrame))
	}

	// Stopped: the camera is removed while a reader plays.
	dave := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 5*time.Second, "reader gets packets", func() bool { return dave.pkts.Load() > 5 })
	r.srv.SetCameras(context.Background(), nil)
	waitFor(t, 5*time.Second, "stopped reported", func() bool {
		return obs.closedBy(CloseStopped)+obs.closedBy(CloseClient) == 2
	})
	if obs.closedBy(CloseStopped) != 1 {
		t.Errorf("closes = %v, want the camera removal as stopped", obs.closed)
	}
}

// TestReconnectsCounted: a source that drops is counted as a reconnect.
func TestReconnectsCounted(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	if n := r.status("cam1/main").Reconnects; n != 0 {
		t.Fatalf("reconnects = %d before any failure", n)
	}
	cam.close()
	waitFor(t, 10*time.Second, "reconnect counted", func() bool { return r.status("cam1/main").Reconnects >= 1 })
}

// TestAliveReportsADeadListener: when the RTSP listener fails (here it is
// closed under the server, as when accept fails on too many open files),
// Alive says so; before, it is nil.
func TestAliveReportsADeadListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *Config) { c.Listener = ln })
	if err := r.srv.Alive(); err != nil {
		t.Fatalf("Alive on a serving server: %v", err)
	}
	ln.Close()
	waitFor(t, 5*time.Second, "Alive reports the stopped server", func() bool { return r.srv.Alive() != nil })
	if err := r.srv.Alive(); !strings.Contains(err.Error(), "RTSP server stopped") {
		t.Errorf("Alive = %v", err)
	}
}

// TestThrottledAddresses counts refused addresses.
func TestThrottledAddresses(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(2, time.Minute, time.Second, 100, hclog.NewNullLogger())
	th.now = func() time.Time { return now }
	for _, ip := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.3"} {
		th.fail(ip)
	}
	if n := th.blockedCount(); n != 2 {
		t.Fatalf("blocked = %d, want 2", n)
	}
	now = now.Add(2 * time.Second)
	if n := th.blockedCount(); n != 0 {
		t.Fatalf("blocked after the period = %d, want 0", n)
	}
}

// TestObserverEvictionAndKeyframeWait: an evicted reader is reported as
// evicted; without the GOP cache a reader's first frame is reported when
// the next keyframe reaches it, not at PLAY.
func TestObserverEvictionAndKeyframeWait(t *testing.T) {
	obs := newObserver()
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword, frameEvery: 10 * time.Millisecond, idrSize: 30000, sliceSize: 25000})
	r := newRig(t, func(c *Config) {
		c.Observer = obs
		c.WriteQueueSize = 128
		c.StalledReaderTimeout = time.Second
		c.GOPCacheDisabled = true
	})
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	good := mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	waitFor(t, 10*time.Second, "first frame from a keyframe", func() bool { return len(obs.firstFrames()) == 1 })
	if good.pkts.Load() == 0 {
		t.Error("first frame reported before the reader got any packet")
	}
	playRaw(t, r.addr, "cam1/main", "bob", "bob pw:@/", 4096) // PLAY, then never read again
	waitFor(t, 20*time.Second, "eviction reported", func() bool { return obs.closedBy(CloseEvicted) == 1 })
	if obs.closedBy(CloseClient) != 0 || obs.closedBy(CloseStopped) != 0 {
		t.Errorf("closes = %v, want only the eviction", obs.closed)
	}
}

func TestCloseReasonFromGortsplib(t *testing.T) {
	for err, want := range map[error]string{
		liberrors.ErrServerSessionTimedOut{}: CloseExpired,
		liberrors.ErrServerTerminated{}:      CloseStopped,
		liberrors.ErrServerSessionTornDown{}: CloseClient,
		io.EOF:                               CloseClient,
		fmt.Errorf("x: %w", liberrors.ErrServerSessionTimedOut{}): CloseExpired,
	} {
		if got := closeReason(err); got != want {
			t.Errorf("closeReason(%T %v) = %s, want %s", err, err, got, want)
		}
	}
}

// TestSecurityCounts: a throttled address's connections are counted as
// refused, and connections that have not authenticated are counted while
// they are open.
func TestSecurityCounts(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ThrottleFailures = 1; c.ThrottleBase = time.Minute })
	waitFor(t, 5*time.Second, "no unauthenticated connection", func() bool { return r.srv.Security().Unauthenticated == 0 })
	idle := dialRaw(t, r.addr, 0)
	waitFor(t, 5*time.Second, "one unauthenticated connection", func() bool { return r.srv.Security().Unauthenticated == 1 })
	idle.c.Close()
	waitFor(t, 5*time.Second, "closed connection leaves the count", func() bool { return r.srv.Security().Unauthenticated == 0 })

	rc := dialRaw(t, r.addr, 0)
	if res, err := rc.do("DESCRIBE", "rtsp://"+r.addr+"/cam1/main", map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wrong"))}); err != nil || res.status != 401 {
		t.Fatalf("wrong Basic: %v %+v", err, res)
	}
	if n := r.srv.Security().ConnectionsRefused; n != 0 {
		t.Fatalf("refused = %d before the address was throttled", n)
	}
	refused := dialRaw(t, r.addr, 0) // now throttled: closed on arrival
	waitFor(t, 5*time.Second, "refusal counted", func() bool { return r.srv.Security().ConnectionsRefused == 1 })
	waitFor(t, 5*time.Second, "refused connection closed", refused.closed)
}

// TestEndReportsItsReason: a session ended by the daemon for a reason of
// its own (a token that expired) is reported with that reason.
func TestEndReportsItsReason(t *testing.T) {
	obs := newObserver()
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, func(c *Config) { c.Observer = obs })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	mustReader(t, r.url("alice", "alicepw", "cam1/main"), gortsplib.ProtocolTCP)
	ses := r.srv.Sessions()
	if len(ses) != 1 {
		t.Fatalf("sessions = %+v", ses)
	}
	if !r.srv.End(ses[0].ID, CloseExpired) {
		t.Fatal("End returned false")
	}
	waitFor(t, 5*time.Second, "expiry reported", func() bool { return obs.closedBy(CloseExpired) == 1 })
	if obs.closedBy(CloseKicked) != 0 {
		t.Errorf("closes = %v, want expired only", obs.closed)
	}
}
