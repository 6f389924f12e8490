package token

import (
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"
)

// Many sessions, one heap: each ends at its expiry (never before, and within
// a tolerance generous enough for a loaded 2-core machine), untracked ones
// never end, and tracking them starts no goroutine per session.
func TestTrackerEndsManySessionsAtTheirExpiry(t *testing.T) {
	const sessions = 5000
	const tolerance = 750 * time.Millisecond
	ended := newEndLog()
	tr := NewTracker(ended.onEnd)
	t.Cleanup(tr.Close)
	goroutinesBefore := runtime.NumGoroutine()
	start := time.Now().Add(300 * time.Millisecond)
	expiry := map[string]time.Time{}
	for i := 0; i < sessions; i++ {
		id := fmt.Sprintf("s%05d", i)
		// spread over 1.5 s, in an order unrelated to expiry
		exp := start.Add(time.Duration((i*7919)%sessions) * (1500 * time.Millisecond) / sessions)
		expiry[id] = exp
		tr.Track(id, Identity{Issuer: "portal", Subject: id, KeyID: "k", JTI: "j" + id, Expiry: exp})
	}
	if g := runtime.NumGoroutine(); g > goroutinesBefore+2 {
		t.Fatalf("%d goroutines after tracking %d sessions (was %d): not one heap", g, sessions, goroutinesBefore)
	}
	untracked := []string{"s00001", "s02500", "s04999"}
	for _, id := range untracked {
		tr.Untrack(id)
	}
	waitFor(t, 30*time.Second, "every session to end", func() bool { return ended.count() == sessions-len(untracked) })

	ended.mu.Lock()
	defer ended.mu.Unlock()
	var lateness []time.Duration
	for id, r := range ended.ended {
		if r != EndExpired {
			t.Fatalf("%s ended with %v (-1 = twice)", id, r)
		}
		late := ended.at[id].Sub(expiry[id])
		if late < 0 {
			t.Fatalf("%s ended %s before its expiry", id, -late)
		}
		lateness = append(lateness, late)
	}
	for _, id := range untracked {
		if _, ok := ended.ended[id]; ok {
			t.Fatalf("untracked session %s ended", id)
		}
	}
	sort.Slice(lateness, func(i, j int) bool { return lateness[i] < lateness[j] })
	p50, p99, max := lateness[len(lateness)/2], lateness[len(lateness)*99/100], lateness[len(lateness)-1]
	t.Logf("lateness of %d expiries: p50 %s, p99 %s, max %s", len(lateness), p50, p99, max)
	if max > tolerance {
		t.Fatalf("a session ended %s after its expiry (tolerance %s)", max, tolerance)
	}
}

func TestTrackerReplaceExpiredAndIndexes(t *testing.T) {
	ended := newEndLog()
	tr := NewTracker(ended.onEnd)
	t.Cleanup(tr.Close)
	far := time.Now().Add(time.Hour)
	// an already-expired token ends at once
	tr.Track("past", Identity{Issuer: "a", Expiry: time.Now().Add(-time.Second)})
	waitFor(t, 5*time.Second, "expired session to end", func() bool { return ended.reason("past") == EndExpired })
	// re-tracking replaces: the old expiry must not fire
	tr.Track("renewed", Identity{Issuer: "a", KeyID: "k1", Expiry: time.Now().Add(100 * time.Millisecond)})
	tr.Track("renewed", Identity{Issuer: "a", KeyID: "k2", Expiry: far})
	tr.Track("soon", Identity{Issuer: "b", Expiry: time.Now().Add(300 * time.Millisecond)})
	waitFor(t, 5*time.Second, "the later session to end", func() bool { return ended.reason("soon") == EndExpired })
	if r := ended.reason("renewed"); r != 0 {
		t.Fatalf("replaced session ended by its old expiry: %v", r)
	}
	// the old key's index was replaced too
	tr.KeyRemoved("a", "k1")
	if tr.Len() != 1 {
		t.Fatal("removing the replaced token's key ended the session")
	}
	tr.KeyRemoved("a", "k2")
	waitFor(t, 5*time.Second, "key removal", func() bool { return ended.reason("renewed") == EndKeyRemoved })
	if tr.Len() != 0 {
		t.Fatalf("%d still tracked", tr.Len())
	}
	tr.Close()
	tr.Track("after-close", Identity{Expiry: far}) // must not block or panic
	if tr.Len() != 0 {
		t.Fatal("a closed tracker tracks")
	}
}
