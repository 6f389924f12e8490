package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// RevocationResult is the revocation scenario.
type RevocationResult struct {
	LiveReaders int  `json:"live_readers"`
	Revocations int  `json:"revocations"`
	Closed      int  `json:"closed"`   // affected sessions seen closed at the reader
	Latency     Dist `json:"latency"`  // admin call start -> reader's socket closed
	APICall     Dist `json:"api_call"` // the Revoke call alone (commit, fsync, enforce)
	// AfterReturn is the reader's close relative to the Revoke call's
	// return (negative: closed before the answer arrived).
	AfterReturn Dist `json:"close_after_return"`
	// Fsync is write+fsync of 4 KiB in the state directory, measured after
	// the revocations: the floor under every committed admin change.
	Fsync          Dist   `json:"fsync"`
	UnaffectedLost uint64 `json:"unaffected_lost"`
	UnaffectedGone int    `json:"unaffected_ended"`
	UnaffectedPkts uint64 `json:"unaffected_packets"`
	Error          string `json:"error,omitempty"`
}

// runRevocation keeps 2,000 readers live (by default 100 users with one
// reader each, and 1,900 readers of one unaffected user, all rtspload raw
// clients) and revokes the 100 users one by one.
func runRevocation(ctx context.Context, o *Options, cam *camsimProc) (res RevocationResult) {
	affected, unaffected := o.RevokeUsers, o.RevokeUnaffected
	fail := func(err error) RevocationResult {
		res.Error = err.Error()
		return res
	}
	// The revoked users share one password so that, with ImportUser, one
	// argon2id hash serves them all.
	// The revoked readers run in a load client of their own, the 1,900
	// others in the big one: what is timed is when the daemon closes the
	// socket, not how long a client busy with 1,900 sockets takes to
	// notice (both clients share the machine's cores with the daemon).
	var revCreds, keepCreds strings.Builder
	users := make([]string, affected)
	revPW, keepPW := secret(), secret()
	var accounts []readerUser
	for i := range affected {
		users[i] = fmt.Sprintf("rev%03d", i)
		accounts = append(accounts, readerUser{users[i], revPW, "cam1/*"})
		fmt.Fprintf(&revCreds, "%s:%s\n", users[i], revPW)
	}
	accounts = append(accounts, readerUser{"keeper", keepPW, "cam1/*"})
	for range unaffected {
		fmt.Fprintf(&keepCreds, "keeper:%s\n", keepPW)
	}
	dir, d, err := startScenario(ctx, o, cam, "revoke", accounts)
	if err != nil {
		return fail(err)
	}
	defer d.stop()
	keepFile, err := writeSecretFile(dir, "keep-creds", keepCreds.String())
	if err != nil {
		return fail(err)
	}
	revFile, err := writeSecretFile(dir, "rev-creds", revCreds.String())
	if err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	kp, err := startLoad(o.BinDir, "", "--addr", d.rtsp, "--path", "cam1/main", "--readers", fmt.Sprint(unaffected),
		"--credentials-file", keepFile, "--duration", "0", "--concurrency", "32", "--client", "raw")
	if err != nil {
		return fail(err)
	}
	defer kp.finish()
	if _, err := kp.next(rctx, "ready"); err != nil {
		return fail(err)
	}
	if _, err := kp.next(rctx, "measure_start"); err != nil {
		return fail(err)
	}
	lp, err := startLoad(o.BinDir, "", "--addr", d.rtsp, "--path", "cam1/main", "--readers", fmt.Sprint(affected),
		"--credentials-file", revFile, "--duration", "0", "--events", "--concurrency", "32", "--client", "raw")
	if err != nil {
		return fail(err)
	}
	defer lp.finish()
	if _, err := lp.next(rctx, "ready"); err != nil {
		return fail(err)
	}
	if _, err := lp.next(rctx, "measure_start"); err != nil {
		return fail(err)
	}
	res.LiveReaders = affected + unaffected
	var lat, call, after []time.Duration
	for _, u := range users {
		t0 := time.Now()
		if _, err := d.client.Revoke(rctx, apitype.Grant{Subject: u, Action: "read", Pattern: "cam1/*"}); err != nil {
			return fail(fmt.Errorf("revoke %s: %w", u, err))
		}
		t1 := time.Now()
		call = append(call, t1.Sub(t0))
		res.Revocations++
		wctx, wcancel := context.WithTimeout(rctx, 5*time.Second)
		for {
			ev, err := lp.next(wctx, "closed")
			if err != nil {
				wcancel()
				return fail(fmt.Errorf("after revoking %s: %w", u, err))
			}
			if ev.User != u {
				wcancel()
				return fail(fmt.Errorf("revoking %s closed a session of %s", u, ev.User))
			}
			lat = append(lat, time.Unix(0, ev.TimeNs).Sub(t0))
			after = append(after, time.Unix(0, ev.TimeNs).Sub(t1))
			res.Closed++
			break
		}
		wcancel()
	}
	// Give stray closes a moment to show, then report.
	if !sleepCtx(ctx, 500*time.Millisecond) {
		return fail(ctx.Err())
	}
	if err := kp.command("report"); err != nil {
		return fail(err)
	}
	ev, err := kp.next(rctx, "report")
	if err != nil {
		return fail(err)
	}
	if k := ev.Report.ByUser["keeper"]; k != nil {
		res.UnaffectedLost, res.UnaffectedGone, res.UnaffectedPkts = k.Lost, k.Ended, k.Packets
	}
	res.Latency, res.APICall, res.AfterReturn = distOf(lat), distOf(call), distOf(after)
	fs, err := fsyncTimes(dir, 50)
	if err != nil {
		return fail(err)
	}
	res.Fsync = distOf(fs)
	return res
}

// fsyncTimes writes and fsyncs a 4 KiB block n times in dir.
func fsyncTimes(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	var out []time.Duration
	for i := range n {
		t := time.Now()
		if _, err := f.WriteAt(block, int64(i)*4096); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}
