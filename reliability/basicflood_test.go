package reliability

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"

	"github.com/camwarden/camwarden/internal/testutil"
)

func basicHeader(user, pass string) base.Header {
	return base.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// basicGuess sends one DESCRIBE with Basic credentials straight away, as a
// password guesser does. It returns the answer, or nil when the server
// closed the connection without one (refused).
func basicGuess(c *rtspConn, host, path, user, pass string) (*base.Response, error) {
	res, err := c.exchange(base.Describe, "rtsp://"+host+"/"+path, basicHeader(user, pass))
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, err
		}
		return nil, nil
	}
	return res, nil
}

// basicLogin is what a Basic client does: DESCRIBE, the 401 challenge,
// DESCRIBE with Basic credentials. It returns the final status.
func basicLogin(local, host, path, user, pass string) (int, error) {
	c, err := dialRTSP(local, host, "", "")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	res, err := c.exchange(base.Describe, "rtsp://"+host+"/"+path, nil)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != base.StatusUnauthorized || !strings.Contains(strings.Join(res.Header["WWW-Authenticate"], " "), "Basic") {
		return int(res.StatusCode), fmt.Errorf("no Basic challenge: %d %v", res.StatusCode, res.Header["WWW-Authenticate"])
	}
	res, err = basicGuess(c, host, path, user, pass)
	if err != nil || res == nil {
		return 0, err
	}
	return int(res.StatusCode), nil
}

// TestBasicLoginDuringFloodFromManyAddresses: 1,500 addresses keep sending
// wrong Basic passwords, each guess a different one (each argon2id check costs tens of ms; a queue
// without bound or fairness made a genuine first Basic login wait 21.5 s).
// During the flood a genuine Basic login from a fresh address completes
// in under a second, a Digest login too, and a repeated correct login is
// answered from the cache; the excess is answered 503 at once.
func TestBasicLoginDuringFloodFromManyAddresses(t *testing.T) {
	const addrs = 1500
	raiseNoFile(t, 4*addrs)
	d := startDaemon(t, "")
	d.addViewer("viewer")
	d.addCamera("door", startCamera(t, 300))
	host := d.rtsp
	addrOf := func(i int) string { return fmt.Sprintf("127.70.%d.%d", i/250, 1+i%250) }

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answeredOnce, busy, checked, refused atomic.Int64
	for i := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				if c, err := dialRTSP(addrOf(i), host, "", ""); err == nil {
					res, _ := basicGuess(c, host, "door/main", "viewer", fmt.Sprintf("%s-%d-%d", wrongPassword, i, n))
					c.Close()
					switch {
					case res == nil:
						refused.Add(1)
					case res.StatusCode == base.StatusServiceUnavailable:
						busy.Add(1)
					case res.StatusCode == base.StatusUnauthorized:
						checked.Add(1)
					}
				}
				if n == 0 {
					answeredOnce.Add(1)
				}
				// After the first burst each address tries again within
				// 0–4 s: about 750 attempts a second, spread out with no
				// lull (the machine is shared), where the checks manage a
				// few dozen.
				select {
				case <-stop:
					return
				case <-time.After(rand.N(4 * time.Second)):
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	start := time.Now()
	testutil.WaitFor(t, 5*time.Minute, "every flooding address to have had its first answer", func() bool { return answeredOnce.Load() == addrs })
	t.Logf("flood: every one of %d addresses answered once after %s", addrs, time.Since(start).Round(100*time.Millisecond))

	busyBefore := busy.Load()
	timed := func(what string, login func() (int, error)) {
		t.Helper()
		start := time.Now()
		st, err := login()
		took := time.Since(start)
		if st != 200 {
			t.Fatalf("%s during the flood: %d %v", what, st, err)
		}
		if took >= time.Second {
			t.Errorf("%s took %s during a flood from %d addresses, want < 1 s", what, took.Round(time.Millisecond), addrs)
		}
		t.Logf("%s: %s", what, took.Round(time.Millisecond))
	}
	timed("a genuine first Basic login", func() (int, error) {
		return basicLogin("127.0.0.2", host, "door/main", "viewer", viewerPassword)
	})
	timed("a Digest login", func() (int, error) {
		return describeStatus("127.0.0.3", host, "door/main", "viewer", viewerPassword)
	})
	timed("a repeated correct Basic login (from the cache)", func() (int, error) {
		return basicLogin("127.0.0.2", host, "door/main", "viewer", viewerPassword)
	})
	if busy.Load() == busyBefore {
		t.Errorf("no flooding attempt was answered 503 during the logins: the flood did not saturate the checks")
	}
	t.Logf("flood answers so far: %d checked (401), %d busy (503), %d refused", checked.Load(), busy.Load(), refused.Load())
	if n := strings.Count(d.logs.String(), "too many Basic logins to check"); n != 1 {
		t.Errorf("the daemon logged the turned-away logins %d times, want once a minute", n)
	}
}

// TestBasicGuessesFromOneAddressBounded: 60 simultaneous different wrong
// Basic passwords from one address (before, 186 of such guesses were checked
// before the block took hold, because failures were counted only after each
// argon2id run). Now the checks are booked before they are queued: the
// address never gets more than the throttle's 5 checks, the excess is
// answered 503 with Retry-After at once, and after 5 failures it is
// refused even with the right password.
func TestBasicGuessesFromOneAddressBounded(t *testing.T) {
	const guesses = 60 // below the 64 unauthenticated connections one address may hold
	const allowed = 5  // the throttle's failures per window
	d := startDaemon(t, "")
	d.addViewer("viewer")
	d.addCamera("door", startCamera(t, 300))
	host, from := d.rtsp, "127.71.0.1"

	conns := make([]*rtspConn, guesses)
	for i := range conns {
		c, err := dialRTSP(from, host, "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var checked, busy, retryAfter atomic.Int64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, _ := basicGuess(c, host, "door/main", "viewer", fmt.Sprintf("%s-%d", wrongPassword, i))
			switch {
			case res == nil:
			case res.StatusCode == base.StatusUnauthorized:
				checked.Add(1)
			case res.StatusCode == base.StatusServiceUnavailable:
				busy.Add(1)
				if len(res.Header["Retry-After"]) == 1 {
					retryAfter.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d simultaneous guesses from one address: %d checked, %d answered 503", guesses, checked.Load(), busy.Load())
	if n := checked.Load(); n > allowed {
		t.Errorf("%d simultaneous guesses from one address were checked (answered 401); at most %d may be", n, allowed)
	}
	if busy.Load() == 0 || retryAfter.Load() != busy.Load() {
		t.Errorf("excess guesses: %d answered 503, %d of them with Retry-After", busy.Load(), retryAfter.Load())
	}
	// One at a time, the address gets the rest of its 5 checks, then none.
	for i := 0; i < 2*allowed; i++ {
		c, err := dialRTSP(from, host, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if res, _ := basicGuess(c, host, "door/main", "viewer", fmt.Sprintf("%s-seq%d", wrongPassword, i)); res != nil && res.StatusCode == base.StatusUnauthorized {
			checked.Add(1)
		}
		c.Close()
	}
	if n := checked.Load(); n != allowed {
		t.Errorf("one address had %d guesses checked in all, want exactly %d", n, allowed)
	}
	if st, _ := basicLogin(from, host, "door/main", "viewer", viewerPassword); st == 200 {
		t.Error("the guessing address logs in with the right password after its 5 failures")
	}
	if st, err := basicLogin("127.71.0.2", host, "door/main", "viewer", viewerPassword); st != 200 {
		t.Errorf("another address cannot log in: %d %v", st, err)
	}
}

// TestOptionsOnlyConnectionsCapped: 3,000 connections from 3,000 addresses
// that only send OPTIONS (before, every one was kept: 5,000 held cost the
// daemon 80 MB). The daemon holds at most its 1,024 unauthenticated
// connections, and a viewer still logs in meanwhile.
func TestOptionsOnlyConnectionsCapped(t *testing.T) {
	t.Parallel()
	const conns, capTotal = 3000, 1024
	raiseNoFile(t, 3*conns)
	d := startDaemon(t, "")
	d.addViewer("viewer")
	d.addCamera("door", startCamera(t, 300))
	base0, err := readProc(d.pid())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var open []*rtspConn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, err := dialRTSP(fmt.Sprintf("127.80.%d.%d", i/250, 1+i%250), d.rtsp, "", "")
				if err != nil {
					continue
				}
				c.exchange(base.Options, "rtsp://"+d.rtsp+"/", nil) // answered, or closed to make room
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
			}
		}()
	}
	for i := range conns {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if st, err := basicLogin("127.81.0.1", d.rtsp, "door/main", "viewer", viewerPassword); st != 200 {
		t.Errorf("a viewer cannot log in beside %d OPTIONS-only connections: %d %v", conns, st, err)
	}
	var now procStats
	ok := testutil.Poll(10*time.Second, func() bool {
		now, err = readProc(d.pid())
		return err == nil && now.FDs <= base0.FDs+capTotal+16
	})
	t.Logf("%d OPTIONS-only connections: daemon %s -> %s", conns, base0, now)
	if !ok {
		t.Errorf("the daemon holds %d more descriptors with %d OPTIONS-only connections open, want at most its %d unauthenticated ones", now.FDs-base0.FDs, conns, capTotal)
	}
}

// TestBasicBurstFromOneClientAllAdmitted: a client starting 40 streams at
// once with the same Basic credentials (a VMS behind one address) gets all
// 40 in: identical checks in flight share one argon2id run instead of
// running (or being turned away) one by one.
func TestBasicBurstFromOneClientAllAdmitted(t *testing.T) {
	const streams = 40 // below the 64 unauthenticated connections one address may hold
	d := startDaemon(t, "")
	d.addViewer("viewer")
	d.addCamera("door", startCamera(t, 300))
	var wg sync.WaitGroup
	var admitted atomic.Int64
	var firstErr atomic.Value
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := basicLogin("127.72.0.1", d.rtsp, "door/main", "viewer", viewerPassword)
			if st == 200 {
				admitted.Add(1)
			} else {
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v", st, err))
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != streams {
		t.Errorf("%d of %d simultaneous logins with the same Basic credentials admitted (first refusal: %v)", n, streams, firstErr.Load())
	}
}
