package daemon

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/internal/textutil"
	"github.com/camwarden/camwarden/store"
)

// Refused admin requests are coalesced per caller (uid, gid): the first
// refusal in a window is audited and logged at once; the rest of that
// window is counted and written as one entry, with the count, when it
// ends (or when the daemon stops). Under a steady flood that is one entry
// and one log line per caller per window, however fast the caller asks.
// A stranger with a widened socket mode could otherwise fill the disk
// with audit entries and log lines (one fsynced entry per request).
const (
	refusalWindow     = time.Minute
	maxRefusalCallers = 256 // further callers share one window
	maxRefusalPath    = 256 // bytes of the request path kept for the log and the audit entry
	maxRefusalMethod  = 16  // bytes of the method kept: every real method is shorter, a request line may carry 64 KiB
)

// refusal is one refused request.
type refusal struct {
	caller               api.Caller
	method, path, reason string
	at                   time.Time
}

type refusalKey struct{ uid, gid int }

// overflowKey collects callers beyond maxRefusalCallers.
var overflowKey = refusalKey{-2, -2}

type refusalWindowState struct {
	start  time.Time
	folded int     // refusals in this window not yet written
	last   refusal // the latest of them, for the entry
}

// refusalAuditor owns the per-caller windows; only its run goroutine
// touches them. Handlers hand refusals over with take.
type refusalAuditor struct {
	in     chan refusal
	quit   chan struct{}
	done   chan struct{}
	window time.Duration
	now    func() time.Time
	write  func(ctx context.Context, e store.AuditEntry)
	log    hclog.Logger
}

func newRefusalAuditor(window time.Duration, now func() time.Time, write func(context.Context, store.AuditEntry), log hclog.Logger) *refusalAuditor {
	return &refusalAuditor{in: make(chan refusal, 1024), quit: make(chan struct{}), done: make(chan struct{}),
		window: window, now: now, write: write, log: log}
}

// take hands a refusal to the auditor; it waits only while the auditor is
// busy writing, and gives up when ctx ends or the auditor has stopped.
func (a *refusalAuditor) take(ctx context.Context, r refusal) {
	r.at = a.now()
	r.path = capUTF8(r.path, maxRefusalPath)
	r.method = capUTF8(r.method, maxRefusalMethod)
	select {
	case a.in <- r:
	case <-ctx.Done():
	case <-a.done:
	}
}

// stop writes every pending count and returns when that is done.
func (a *refusalAuditor) stop() {
	close(a.quit)
	<-a.done
}

func (a *refusalAuditor) run() {
	defer close(a.done)
	windows := map[refusalKey]*refusalWindowState{}
	tick := time.NewTicker(min(a.window/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case r := <-a.in:
			a.add(windows, r)
		case <-tick.C:
			a.expire(windows, a.now(), false)
		case <-a.quit:
		drain:
			for {
				select {
				case r := <-a.in:
					a.add(windows, r)
				default:
					break drain
				}
			}
			a.expire(windows, a.now(), true)
			return
		}
	}
}

func (a *refusalAuditor) add(windows map[refusalKey]*refusalWindowState, r refusal) {
	key := refusalKey{r.caller.UID, r.caller.GID}
	if windows[key] == nil && len(windows) >= maxRefusalCallers {
		key = overflowKey
	}
	w := windows[key]
	if w != nil && r.at.Sub(w.start) < a.window {
		w.folded++
		w.last = r
		return
	}
	if w != nil && w.folded > 0 {
		a.flush(w)
	}
	windows[key] = &refusalWindowState{start: r.at}
	a.log.Warn("admin request refused; further refusals of this caller within the next "+a.window.String()+" are counted in one audit entry",
		"caller", r.caller.String(), "method", r.method, "path", r.path, "reason", r.reason)
	a.write(context.Background(), a.entry(r, 1, r.at))
}

// expire writes the count of every window that ended (all: every window).
// A window that ended with refusals in it is followed by a new one at
// once, so a caller that keeps going is counted, not logged, from then on.
func (a *refusalAuditor) expire(windows map[refusalKey]*refusalWindowState, now time.Time, all bool) {
	for key, w := range windows {
		if !all && now.Sub(w.start) < a.window {
			continue
		}
		if w.folded == 0 {
			delete(windows, key)
			continue
		}
		a.flush(w)
		if all {
			delete(windows, key)
		} else {
			windows[key] = &refusalWindowState{start: now}
		}
	}
}

func (a *refusalAuditor) flush(w *refusalWindowState) {
	a.log.Warn("admin requests refused", "caller", w.last.caller.String(), "count", w.folded,
		"since", w.start.UTC().Format(time.RFC3339), "method", w.last.method, "path", w.last.path, "reason", w.last.reason)
	a.write(context.Background(), a.entry(w.last, w.folded, w.start))
	w.folded = 0
}

func (a *refusalAuditor) entry(r refusal, count int, since time.Time) store.AuditEntry {
	e := auditEntry(r.caller, "api.refused", r.method+" "+r.path, "refused: "+r.reason,
		map[string]string{"count": strconv.Itoa(count)})
	if count > 1 {
		e.Args["since"] = since.UTC().Format(time.RFC3339)
		e.Args["window"] = a.window.String()
	}
	return e
}

// capUTF8 cuts s to at most n bytes on a rune boundary, marking the cut.
func capUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s%s(%d bytes)", textutil.Prefix(s, n), textutil.Ellipsis, len(s))
}
