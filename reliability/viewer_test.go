package reliability

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// sessionsOf counts the live sessions of user from the admin API.
func (d *daemon) sessionsOf(t *testing.T, user string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sl, err := d.cl.SessionList(ctx)
	if err != nil {
		t.Fatalf("session list: %v", err)
	}
	n := 0
	for _, s := range sl.Sessions {
		if s.User == user {
			n++
		}
	}
	return n
}

// TestSlowReaderEvicted plays a 8 Mbit/s camera with a raw client that
// stops reading after PLAY: once its buffers fill, the daemon evicts it,
// and a normal reader of the same stream loses nothing.
func TestSlowReaderEvicted(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "")
	d.addViewer("viewer")
	d.addViewer("sloth")
	d.addCamera("busy", startCamera(t, 8000))
	good := d.reader("busy/main", "viewer")

	before, err := readProc(d.pid())
	if err != nil {
		t.Fatal(err)
	}
	slow, err := dialRTSP("", d.rtsp, "sloth", viewerPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.nc.(*net.TCPConn).SetReadBuffer(4096) // fill sooner
	if err := slow.play(d.rtsp, "busy/main"); err != nil {
		t.Fatalf("slow reader: %v", err)
	}
	if n := d.sessionsOf(t, "sloth"); n != 1 {
		t.Fatalf("sloth has %d sessions after PLAY, want 1", n)
	}
	// Never read again. Kernel buffers (a few MB on loopback) fill in
	// seconds at 1 MB/s, then the per-reader queue, then the stall timeout.
	start := time.Now()
	testutil.WaitFor(t, 40*time.Second, "the stalled reader's eviction", func() bool { return d.sessionsOf(t, "sloth") == 0 })
	t.Logf("stalled reader evicted %s after PLAY", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(d.logs.String(), "evicting reader") {
		t.Error("the daemon did not log the eviction")
	}
	// Its connection is closed on the daemon's side (the kernel may still
	// be trickling the queued bytes into our tiny window): the daemon's fd
	// count is back to what it was before the slow reader came.
	testutil.WaitFor(t, 5*time.Second, "the evicted reader's socket to be closed", func() bool {
		now, err := readProc(d.pid())
		return err == nil && now.FDs <= before.FDs
	})

	time.Sleep(time.Second) // the good reader keeps flowing after the eviction
	pkts := good.Packets()
	testutil.WaitFor(t, 5*time.Second, "packets after the eviction", func() bool { return good.Packets() > pkts+20 })
	if good.Closed() {
		t.Fatal("the good reader was disconnected")
	}
	if n := good.Lost(); n != 0 {
		t.Errorf("the good reader lost %d packets", n)
	}
	if n := d.sessionsOf(t, "viewer"); n != 1 {
		t.Errorf("viewer has %d sessions, want 1", n)
	}
}

// raiseNoFile lifts this process's open-file limit to its hard limit; the
// daemon inherits it.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}
	if rl.Cur < need {
		t.Fatalf("open-file limit %d is below the %d this test needs (raise the hard limit: ulimit -Hn)", rl.Cur, need)
	}
}

// idleCloseWithin bounds how long a connection that never sends a request
// may hold a file descriptor: the read timeout (10 s) plus slack. (gortsplib
// v5.6.5 reads the first 4 bytes of a connection, to detect HTTP tunnelling,
// with no deadline at all: the daemon's listener has to set one on accept.)
const idleCloseWithin = 25 * time.Second

// TestIdleConnectionsClosed opens 1,000 RTSP connections that never send a
// request: the daemon's read timeout closes them all, and its open file
// count returns to where it was.
func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	const conns = 1000
	raiseNoFile(t, 3*conns)
	d := startDaemon(t, "")
	base, err := readProc(d.pid())
	if err != nil {
		t.Fatal(err)
	}
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := range conns {
		// Spread the sources over 127.0.0.0/8 so no ephemeral port range
		// or per-address limit is what is tested.
		local := &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(1+i%250))}
		dl := net.Dialer{Timeout: 5 * time.Second, LocalAddr: local}
		c, err := dl.Dial("tcp", d.rtsp)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	var peak int
	testutil.WaitFor(t, 10*time.Second, "the daemon to hold the idle connections", func() bool {
		ps, err := readProc(d.pid())
		peak = max(peak, ps.FDs)
		return err == nil && ps.FDs >= base.FDs+conns*9/10
	})
	start := time.Now()
	var now procStats
	what := fmt.Sprintf("the daemon's fds to return from %d to %d (connections that never sent a request must be closed)", peak, base.FDs)
	testutil.WaitFor(t, idleCloseWithin, what, func() bool {
		now, err = readProc(d.pid())
		return err == nil && now.FDs <= base.FDs+5
	})
	t.Logf("fds: %d at start, %d with %d idle connections, %d %s later", base.FDs, peak, conns, now.FDs, time.Since(start).Round(100*time.Millisecond))
	// Every one of ours sees the close.
	var wg sync.WaitGroup
	var notClosed atomic.Int64
	for _, c := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				notClosed.Add(1)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				notClosed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := notClosed.Load(); n != 0 {
		t.Errorf("%d idle connections still open on our side", n)
	}
}

// TestFailedLoginFlood sends 10,000 failed Digest logins from 2,000
// loopback addresses: the daemon's memory stays bounded, every address is
// throttled after 5 failures (even with the right password afterwards),
// and a fresh address still logs in.
func TestFailedLoginFlood(t *testing.T) {
	t.Parallel()
	const (
		addrs   = 2000
		perAddr = 5
		workers = 16
	)
	d := startDaemon(t, "")
	d.addViewer("viewer")
	d.addCamera("door", startCamera(t, 300))
	host := d.rtsp

	if st, err := describeStatus("127.30.0.1", host, "door/main", "viewer", viewerPassword); err != nil || st != 200 {
		t.Fatalf("a good login failed: %d %v", st, err)
	}
	// Warm up (first connections, first auth-failure paths) before the
	// baseline, so that it is growth that is measured.
	for i := range 20 {
		describeStatus(fmt.Sprintf("127.31.0.%d", i+1), host, "door/main", "viewer", wrongPassword)
	}
	base, err := readProc(d.pid())
	if err != nil {
		t.Fatal(err)
	}

	addrOf := func(i int) string { return fmt.Sprintf("127.40.%d.%d", i/250, 1+i%250) }
	jobs := make(chan int)
	var wg sync.WaitGroup
	var answered401, other atomic.Int64
	var firstErr atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				for range perAddr {
					st, err := describeStatus(addrOf(i), host, "door/main", "viewer", wrongPassword)
					switch {
					case err != nil:
						firstErr.CompareAndSwap(nil, err)
						other.Add(1)
					case st == 401:
						answered401.Add(1)
					default:
						other.Add(1)
					}
				}
			}
		}()
	}
	start := time.Now()
	var peakKB atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the daemon's RSS during the flood, not only after it
		defer close(sampled)
		for {
			if ps, err := readProc(d.pid()); err == nil && ps.RSSKB > peakKB.Load() {
				peakKB.Store(ps.RSSKB)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	for i := range addrs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(stopSampling)
	<-sampled
	after, err := readProc(d.pid())
	if err != nil {
		t.Fatal(err)
	}
	growthMB := float64(after.RSSKB-base.RSSKB) / 1024
	peakGrowthMB := float64(peakKB.Load()-base.RSSKB) / 1024
	t.Logf("%d failed logins from %d addresses in %s; daemon %s -> %s (%+.1f MB, peak %+.1f MB)", addrs*perAddr, addrs,
		time.Since(start).Round(100*time.Millisecond), base, after, growthMB, peakGrowthMB)
	if n := answered401.Load(); n != addrs*perAddr {
		t.Errorf("%d of %d failed logins were answered 401 (others: %d, first error: %v)", n, addrs*perAddr, other.Load(), firstErr.Load())
	}
	if growthMB > 32 || peakGrowthMB > 48 {
		t.Errorf("daemon RSS grew by %.1f MB (peak %.1f MB) over 10,000 failed logins", growthMB, peakGrowthMB)
	}

	// Every flooding address is now refused, even with the right password.
	for _, i := range []int{0, addrs / 2, addrs - 1} {
		if st, _ := describeStatus(addrOf(i), host, "door/main", "viewer", viewerPassword); st == 200 {
			t.Errorf("%s failed %d times and may still log in", addrOf(i), perAddr)
		}
	}
	// The throttle counts exactly: 4 failures leave an address usable, the
	// 5th closes it.
	probe := "127.50.0.1"
	for range perAddr - 1 {
		describeStatus(probe, host, "door/main", "viewer", wrongPassword)
	}
	if st, err := describeStatus(probe, host, "door/main", "viewer", viewerPassword); st != 200 {
		t.Errorf("after %d failures the right password is refused: %d %v", perAddr-1, st, err)
	}
	for range perAddr {
		describeStatus("127.50.0.2", host, "door/main", "viewer", wrongPassword)
	}
	if st, _ := describeStatus("127.50.0.2", host, "door/main", "viewer", viewerPassword); st == 200 {
		t.Errorf("after %d failures an address may still log in", perAddr)
	}
	// A fresh address logs in, and a real reader plays.
	if st, err := describeStatus("127.50.0.3", host, "door/main", "viewer", viewerPassword); st != 200 {
		t.Errorf("a fresh address cannot log in after the flood: %d %v", st, err)
	}
	d.reader("door/main", "viewer")
}
