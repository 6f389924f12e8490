package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/internal/testutil"
)

// SoakEnv enables TestSoak and says how long it runs; only `make soak`
// (scripts/soak.sh) sets it.
const SoakEnv = "CAMWARDEN_SOAK_DURATION"

// Secrets of the soak run; listed in testdata/test-secrets.txt.
const (
	soakPassword       = "rel-soak-pw-Mn42"
	soakCameraPassword = "rel-soak-cam-Vb19:x"
)

// Growth allowed between the start and the end of the soak, measured
// with the same steady load (camera pullers and one witness reader).
const (
	soakThreadSlack = 4
	soakFDSlack     = 5
	soakRSSSlackMB  = 24
)

// TestSoak runs simulated cameras, churning readers and admin edits
// together for $CAMWARDEN_SOAK_DURATION, samples the daemon's threads,
// open fds and RSS from /proc, and fails if they grew beyond a small
// tolerance, if a reader could not play, or if the witness reader lost a
// packet.
func TestSoak(t *testing.T) {
	raw := os.Getenv(SoakEnv)
	if raw == "" {
		t.Skip(SoakEnv + " is not set: the soak runs under `make soak DURATION=10m`")
	}
	dur, err := time.ParseDuration(raw)
	if err != nil || dur < 30*time.Second {
		t.Fatalf("%s=%q: want a Go duration of at least 30s", SoakEnv, raw)
	}
	warm := min(30*time.Second, dur/4)
	run := dur - warm

	d := startDaemon(t, "")
	cams := []string{"gate", "lobby", "yard"}
	for i, name := range cams {
		cam := startCameraWith(t, []int{2000, 1000, 500}[i], soakCameraPassword)
		d.must(soakCameraPassword+"\n", "camera", "add", name, "--url", cam.URL("main"), "--user", "admin", "--password-stdin", "--transport", "tcp")
		d.waitState(name+"/main", "live", 15*time.Second)
	}
	viewers := []string{"v0", "v1", "v2", "v3"}
	for _, v := range viewers {
		d.must(soakPassword+"\n", "user", "add", v, "--password-stdin")
		d.must("", "grant", v, "read", "*")
	}
	witness, err := testutil.StartReader(d.rtsp, "gate/main", "v0", soakPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer witness.Close()

	var readerStarts, readerFails, edits atomic.Int64
	var firstFail atomic.Value
	activity := func(ctx context.Context) {
		var wg sync.WaitGroup
		// Readers connect, play a while, leave.
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
				for ctx.Err() == nil {
					path := cams[r.IntN(len(cams))] + "/main"
					rd, err := testutil.StartReader(d.rtsp, path, viewers[1+r.IntN(len(viewers)-1)], soakPassword) // v0 is the witness's
					readerStarts.Add(1)
					if err != nil {
						readerFails.Add(1)
						firstFail.CompareAndSwap(nil, fmt.Sprintf("%s: %v", path, err))
						time.Sleep(200 * time.Millisecond)
						continue
					}
					hold := time.Duration(300+r.IntN(2700)) * time.Millisecond
					select {
					case <-ctx.Done():
					case <-time.After(hold):
					}
					if rd.Packets() == 0 && hold >= time.Second {
						readerFails.Add(1)
						firstFail.CompareAndSwap(nil, fmt.Sprintf("%s: no packet in %s", path, hold))
					}
					rd.Close()
				}
			}()
		}
		// Admin edits on their own names, next to the readers.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := soakEdit(ctx, d, i, cams); err != nil && ctx.Err() == nil {
					t.Errorf("admin edit %d: %v", i, err)
					return
				}
				edits.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		wg.Wait()
	}
	// settle stops the activity, lets connections wind down and samples.
	sample := func(label string) procStats {
		t.Helper()
		var ps procStats
		time.Sleep(3 * time.Second)
		testutil.WaitFor(t, 10*time.Second, "sessions to wind down", func() bool {
			return d.sessionsOf(t, "v1")+d.sessionsOf(t, "v2")+d.sessionsOf(t, "v3") == 0
		})
		ps, err := readProc(d.pid())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-6s %s", label, ps)
		return ps
	}

	ctx, cancel := context.WithTimeout(context.Background(), warm)
	activity(ctx)
	cancel()
	start := sample("start")

	ctx, cancel = context.WithTimeout(context.Background(), run)
	done := make(chan struct{})
	go func() { activity(ctx); close(done) }()
	tick := time.NewTicker(max(10*time.Second, run/10))
	began := time.Now()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			ps, _ := readProc(d.pid())
			t.Logf("%-6s %s readers=%d fails=%d edits=%d", time.Since(began).Round(time.Second), ps, readerStarts.Load(), readerFails.Load(), edits.Load())
		}
	}
	tick.Stop()
	cancel()
	end := sample("end")

	t.Logf("soak %s: %d reader sessions (%d failed), %d admin edits; witness got %d packets, lost %d",
		dur, readerStarts.Load(), readerFails.Load(), edits.Load(), witness.Packets(), witness.Lost())
	if end.Threads > start.Threads+soakThreadSlack {
		t.Errorf("threads grew from %d to %d", start.Threads, end.Threads)
	}
	if end.FDs > start.FDs+soakFDSlack {
		t.Errorf("open fds grew from %d to %d", start.FDs, end.FDs)
	}
	if end.RSSKB > start.RSSKB+soakRSSSlackMB*1024 {
		t.Errorf("RSS grew from %.1f MB to %.1f MB", float64(start.RSSKB)/1024, float64(end.RSSKB)/1024)
	}
	if n := readerFails.Load(); n*100 > readerStarts.Load() {
		t.Errorf("%d of %d reader sessions failed; first: %v", n, readerStarts.Load(), firstFail.Load())
	}
	if witness.Closed() || witness.Lost() != 0 {
		t.Errorf("the witness reader: closed=%v lost=%d", witness.Closed(), witness.Lost())
	}
	out := d.must("", "--json", "audit", "verify")
	if !strings.Contains(out, `"ok": true`) {
		t.Errorf("audit verify: %s", out)
	}
	d.stop()
}

// soakEdit is one round of admin changes that touch none of the readers'
// users or grants: a temporary user, group, grant and camera come and go.
func soakEdit(ctx context.Context, d *daemon, i int, cams []string) error {
	cl := d.cl
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u, g, cam := fmt.Sprintf("tmp-u%d", i%7), fmt.Sprintf("tmp-g%d", i%5), fmt.Sprintf("tmp-cam%d", i%3)
	steps := []func() error{
		func() error {
			_, err := cl.UserAdd(c, apitype.UserAddRequest{Name: u, Password: soakPassword})
			return err
		},
		func() error { _, err := cl.GroupAdd(c, g); return err },
		func() error {
			_, err := cl.GroupMemberAdd(c, apitype.GroupMemberRequest{Group: g, User: u})
			return err
		},
		func() error {
			_, err := cl.Grant(c, apitype.Grant{Subject: "@" + g, Action: "read", Pattern: cams[i%len(cams)] + "/*"})
			return err
		},
		func() error {
			_, err := cl.CameraAdd(c, apitype.CameraAddRequest{Name: cam, URL: "rtsp://127.0.0.1:9/" + cam, OnDemand: true, Transport: "tcp"})
			return err
		},
		func() error {
			tr := []string{"tcp", "udp", "auto"}[i%3]
			_, err := cl.CameraSet(c, apitype.CameraSetRequest{Name: cam, Transport: &tr})
			return err
		},
		func() error { _, err := cl.SessionList(c); return err },
		func() error { _, err := cl.StreamList(c); return err },
		func() error { _, err := cl.UserDisable(c, u); return err },
		func() error { _, err := cl.CameraRemove(c, cam); return err },
		func() error { _, err := cl.GroupRemove(c, g); return err },
		func() error { _, err := cl.UserRemove(c, u); return err },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}
