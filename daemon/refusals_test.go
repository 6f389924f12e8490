package daemon

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/internal/testutil"
	"github.com/camwarden/camwarden/store"
)

type refusalRig struct {
	a       *refusalAuditor
	now     atomic.Int64 // unix nanoseconds of the fake clock
	mu      sync.Mutex
	entries []store.AuditEntry
	logs    *testutil.SyncBuffer
}

func newRefusalRig(t *testing.T) *refusalRig {
	r := &refusalRig{logs: &testutil.SyncBuffer{}}
	r.now.Store(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	write := func(_ context.Context, e store.AuditEntry) {
		r.mu.Lock()
		r.entries = append(r.entries, e)
		r.mu.Unlock()
	}
	log := hclog.New(&hclog.LoggerOptions{Output: r.logs, Level: hclog.Debug})
	r.a = newRefusalAuditor(time.Minute, func() time.Time { return time.Unix(0, r.now.Load()) }, write, log)
	go r.a.run()
	t.Cleanup(func() {
		select {
		case <-r.a.done:
		default:
			r.a.stop()
		}
	})
	return r
}

// advance moves the fake clock once the auditor has taken every refusal
// handed to it (each was stamped with the time it was refused).
func (r *refusalRig) advance(t *testing.T, d time.Duration) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "refusals taken", func() bool { return len(r.a.in) == 0 })
	r.now.Add(int64(d))
}

func (r *refusalRig) written() []store.AuditEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.AuditEntry(nil), r.entries...)
}

func (r *refusalRig) waitEntries(t *testing.T, n int) []store.AuditEntry {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "audit entries", func() bool { return len(r.written()) >= n })
	return r.written()
}

func (r *refusalRig) refuse(uid, n int) {
	for i := range n {
		r.a.take(context.Background(), refusal{caller: api.Caller{UID: uid, GID: uid, PID: 1000 + i, Exe: "flood"},
			method: "GET", path: "/v1/users", reason: "not an admin"})
	}
}

// TestRefusalsCoalescedPerCaller: 5,000 refusals from one caller within a
// minute are one entry at once and one entry with the count when the
// minute ends; a caller that keeps going is counted, one entry per minute;
// another caller has its own window; each window logs once.
func TestRefusalsCoalescedPerCaller(t *testing.T) {
	r := newRefusalRig(t)
	r.refuse(65534, 5000)
	r.refuse(4242, 3)
	got := r.waitEntries(t, 2)
	if len(got) != 2 || got[0].UID != 65534 || got[0].Args["count"] != "1" || got[1].UID != 4242 {
		t.Fatalf("entries during the first minute: %+v", got)
	}
	if !strings.HasPrefix(got[0].Outcome, "refused: ") || got[0].Target != "GET /v1/users" || got[0].Action != "api.refused" {
		t.Errorf("first entry %+v", got[0])
	}
	r.advance(t, 61*time.Second)
	got = r.waitEntries(t, 4)
	byUID := map[int]string{}
	for _, e := range got[2:] {
		byUID[e.UID] = e.Args["count"]
	}
	if len(got) != 4 || byUID[65534] != "4999" || byUID[4242] != "2" {
		t.Fatalf("coalesced entries: %+v", got[2:])
	}
	// Still flooding in the next minute: counted, not written one by one.
	r.refuse(65534, 700)
	r.advance(t, 61*time.Second)
	got = r.waitEntries(t, 5)
	if len(got) != 5 || got[4].Args["count"] != "700" || got[4].Args["window"] != "1m0s" {
		t.Fatalf("second minute: %+v", got[4:])
	}
	// A quiet minute writes nothing; the next refusal is again written at once.
	r.advance(t, 61*time.Second)
	r.refuse(65534, 1)
	got = r.waitEntries(t, 6)
	if len(got) != 6 || got[5].Args["count"] != "1" {
		t.Fatalf("after a quiet minute: %+v", got[5:])
	}
	if n := strings.Count(r.logs.String(), "refused"); n > 6 {
		t.Errorf("%d log lines about refusals for 5,704 refusals:\n%s", n, r.logs.String())
	}
}

// TestRefusalCountsWrittenAtStop: a stop in the middle of a window writes
// its count instead of losing it.
func TestRefusalCountsWrittenAtStop(t *testing.T) {
	r := newRefusalRig(t)
	r.refuse(65534, 40)
	r.a.stop()
	got := r.written()
	if len(got) != 2 || got[0].Args["count"] != "1" || got[1].Args["count"] != "39" {
		t.Fatalf("entries %+v", got)
	}
}

// TestRefusalCallersBounded: callers beyond the cap share one window.
func TestRefusalCallersBounded(t *testing.T) {
	r := newRefusalRig(t)
	for uid := range 2000 {
		r.refuse(10000+uid, 2)
	}
	r.a.stop()
	if n := len(r.written()); n > 2*(maxRefusalCallers+1) {
		t.Fatalf("%d entries for 2,000 callers, want at most %d", n, 2*(maxRefusalCallers+1))
	}
}

// TestRefusalMethodCapped: a refused request with a 64 KiB method writes
// neither a 64 KiB log line nor a 64 KiB audit target, at the first
// refusal of a window or in the coalesced count after it.
func TestRefusalMethodCapped(t *testing.T) {
	r := newRefusalRig(t)
	method := strings.Repeat("M", 64<<10)
	for range 2 {
		r.a.take(context.Background(), refusal{caller: api.Caller{UID: 7, GID: 7, PID: 1, Exe: "flood"},
			method: method, path: "/v1/users", reason: "not an admin"})
	}
	r.a.stop()
	got := r.written()
	if len(got) != 2 {
		t.Fatalf("entries %+v", got)
	}
	for _, e := range got {
		if len(e.Target) > maxRefusalMethod+maxRefusalPath+32 {
			t.Errorf("audit target of %d bytes for a 64 KiB method", len(e.Target))
		}
	}
	if n := len(r.logs.String()); n > 4<<10 {
		t.Errorf("%d bytes of log for two refusals with a 64 KiB method", n)
	}
}

func TestCapUTF8(t *testing.T) {
	s := strings.Repeat("é", 300)
	c := capUTF8(s, 11)
	if !strings.HasPrefix(c, "ééééé…") || !strings.HasSuffix(c, "(600 bytes)") {
		t.Errorf("capUTF8 = %q", c)
	}
	if capUTF8("short", 10) != "short" {
		t.Error("short string changed")
	}
}
