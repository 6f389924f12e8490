package reliability

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"

	"github.com/camwarden/camwarden/internal/testutil"
)

// TestBasicLoginFromReturningAddressDuringFlood: an address that logged in
// before (here with Digest) goes before every fresh flooding address in the
// Basic check queue, so each of its first Basic logins (new users: no cache
// to help) gets 200 within a second while 1,000 fresh addresses flood, where
// a stranger's first login may see 503.
func TestBasicLoginFromReturningAddressDuringFlood(t *testing.T) {
	const addrs = 1000
	raiseNoFile(t, 4*addrs)
	d := startDaemon(t, "")
	for i := range 5 {
		d.addViewer(fmt.Sprintf("viewer%d", i))
	}
	d.addCamera("door", startCamera(t, 300))
	host := d.rtsp
	const returning = "127.0.0.4"
	if st, err := describeStatus(returning, host, "door/main", "viewer0", viewerPassword); st != 200 {
		t.Fatalf("Digest login before the flood: %d %v", st, err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answeredOnce, busy atomic.Int64
	for i := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				if c, err := dialRTSP(fmt.Sprintf("127.71.%d.%d", i/250, 1+i%250), host, "", ""); err == nil {
					res, _ := basicGuess(c, host, "door/main", "viewer0", fmt.Sprintf("%s-%d-%d", wrongPassword, i, n))
					c.Close()
					if res != nil && res.StatusCode == base.StatusServiceUnavailable {
						busy.Add(1)
					}
				}
				if n == 0 {
					answeredOnce.Add(1)
				}
				select {
				case <-stop:
					return
				case <-time.After(rand.N(2 * time.Second)):
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testutil.WaitFor(t, 5*time.Minute, "every flooding address to have had its first answer", func() bool { return answeredOnce.Load() == addrs })

	busyBefore := busy.Load()
	for i := range 5 {
		user := fmt.Sprintf("viewer%d", i)
		start := time.Now()
		st, err := basicLogin(returning, host, "door/main", user, viewerPassword)
		took := time.Since(start)
		if st != 200 {
			t.Fatalf("Basic login %d (%s) from the returning address during the flood: %d %v", i, user, st, err)
		}
		if took >= time.Second {
			t.Errorf("Basic login %d from the returning address took %s, want < 1 s", i, took.Round(time.Millisecond))
		}
		t.Logf("returning address, first Basic login of %s: %s", user, took.Round(time.Millisecond))
	}
	if busy.Load() == busyBefore {
		t.Errorf("no flooding attempt was answered 503 during the logins: the flood did not saturate the checks")
	}
}
