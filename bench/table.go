package bench

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Targets from the issue, for a 2-core machine.
const (
	targetRSSPerReaderKB = 40 // steady-state growth per reader (marginal)
	targetFloorRatio     = 1.5
	target2000P99Ms      = 50
	target2000Cores      = 0.8
	targetRevokeP99Ms    = 10
	targetPolicyNs       = 1000
	targetReadyMs        = 300
	targetTTFFMs         = 10
)

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// Table renders the results as the text table make bench prints.
func (r *Results) Table() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "camwarden benchmarks — %s, %d CPUs (%s), %s, kernel %s, took %.0f s\n\n",
		r.Started.Format("2006-01-02 15:04 MST"), m.CPUs, m.CPUModel, m.GoVersion, m.Kernel, r.DurationS)

	if len(r.Fanout) > 0 {
		b.WriteString("1. Fan-out: one camsim camera (1920x1080, 4 Mbit/s, 25 fps) to N TCP readers\n")
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "readers\tserver\tclient\tok\tserver cores\tx floor\tRSS MB\tKB/reader\tmarginal KB/reader\tpkts/s/reader\tlost/reader\tlat p50 ms\tlat p99 ms\tload-client cores\tcamsim cores\tmachine busy cores\twrites/pkt\tgoroutines/reader\tstack KB/reader\theap KB/reader\t")
		for _, f := range r.Fanout {
			if f.Error != "" {
				fmt.Fprintf(w, "%d\t%s\t%s\tERROR\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", f.Readers, f.Server, f.Client)
				continue
			}
			ratio := "-"
			if f.FloorRatio > 0 {
				ratio = fmt.Sprintf("%.2f", f.FloorRatio)
			}
			goCols := "-\t-\t-"
			if f.Server == "camwarden" {
				goCols = fmt.Sprintf("%.2f\t%.1f\t%.1f", f.GoroutinesPerReader, f.StackKBPerReader, f.HeapKBPerReader)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%.3f\t%s\t%.1f\t%.1f\t%s\t%.1f\t%.2f\t%.1f\t%.1f\t%.3f\t%.3f\t%.2f\t%.3f\t%s\t\n",
				f.Readers, f.Server, f.Client, f.Connected, f.DaemonCores, ratio, float64(f.RSSKB)/1024, f.RSSPerReaderKB, marginal(f), f.PacketsPerS,
				f.LostPerReader, f.LatencyP50Ms, f.LatencyP99Ms, f.LoadClientCores, f.CamsimCores, f.MachineCores, f.DaemonWritesPerPkt, goCols)
		}
		w.Flush()
		b.WriteString("   (server cores: utime+stime of the serving process from /proc over the window; x floor: camwarden's cores over the floor's at the same readers, same run)\n")
		exp := expectedPPS(r.Fanout)
		for _, f := range r.Fanout {
			if f.Error != "" || f.Server != "camwarden" {
				continue
			}
			if f.FloorRatio > 0 && (f.Readers == 500 || f.Readers == 1000) {
				fmt.Fprintf(&b, "   target at %d readers: CPU <= %.1fx the floor: %s (%.2fx: %.3f vs %.3f cores)\n",
					f.Readers, targetFloorRatio, verdict(f.FloorRatio <= targetFloorRatio), f.FloorRatio, f.DaemonCores, f.FloorCores)
			}
			if f.Readers == 2000 {
				fmt.Fprintf(&b, "   target at 2000 readers (%s client): every reader keeps up: %s (%.0f of %.0f packets/s, %d of 2000 connected, %d ended); 0 lost: %s (%d); p99 <= %d ms: %s (%.1f ms); <= %.1f cores: %s (%.3f)\n",
					f.Client, verdict(keepsUp(f, exp) && f.Connected == 2000 && f.ReadersEnded == 0), f.PacketsPerS, exp, f.Connected, f.ReadersEnded,
					verdict(f.LostTotal == 0), f.LostTotal, target2000P99Ms, verdict(f.LatencyP99Ms <= target2000P99Ms), f.LatencyP99Ms,
					target2000Cores, verdict(f.DaemonCores <= target2000Cores), f.DaemonCores)
			}
			if f.RSSMarginalKB != 0 && f.Readers >= 1000 {
				fmt.Fprintf(&b, "   target at %d readers: steady-state RSS growth <= %d KB/reader: %s (%.1f KB/reader over the previous step)\n",
					f.Readers, targetRSSPerReaderKB, verdict(f.RSSMarginalKB <= targetRSSPerReaderKB), f.RSSMarginalKB)
			}
		}
		b.WriteString("\n")
	}
	if c := r.Cameras; c != nil && c.Error == "" {
		f := c.Fanout
		fmt.Fprintf(&b, "1b. Many cameras: %d camsim cameras (1920x1080, %d kbit/s) x %d raw readers each: daemon %.3f cores (%.4f per camera), RSS %.1f MB (%.0f KB per camera over the empty daemon's %.1f MB); readers %d of %d, %.1f packets/s each, %d lost, latency p50 %.1f / p99 %.1f ms; camsim %.2f cores, load client %.2f, machine %.2f\n\n",
			c.Cameras, c.KbpsPerCamera, c.ReadersPerCamera, f.DaemonCores, c.CoresPerCamera, float64(f.RSSKB)/1024, c.RSSPerCameraKB, float64(c.EmptyRSSKB)/1024,
			f.Connected, f.Readers, f.PacketsPerS, f.LostTotal, f.LatencyP50Ms, f.LatencyP99Ms, f.CamsimCores, f.LoadClientCores, f.MachineCores)
	}
	if p := r.Policy; p != nil && p.Error == "" {
		fmt.Fprintf(&b, "2. Policy decision (%s, 10k users/1k groups/50k grants): %.1f ns/op, %.0f allocs/op, %.0f B/op — target < 1 µs, 0 allocs: %s\n\n",
			p.Benchmark, p.NsPerOp, p.AllocsPerOp, p.BytesPerOp, verdict(p.NsPerOp < targetPolicyNs && p.AllocsPerOp == 0))
	}
	if v := r.Revocation; v != nil && v.Error == "" {
		fmt.Fprintf(&b, "3. Revocation (%d live readers, %d revocations): admin call -> reader socket closed p50 %.1f ms, p99 %.1f ms, max %.1f ms (the Revoke call alone p50 %.1f / p99 %.1f ms; close after its return p99 %.1f ms; disk fsync p50 %.1f / p99 %.1f ms); unaffected readers: %d packets, %d lost, %d ended — target p99 < %d ms and 0 lost: %s\n\n",
			v.LiveReaders, v.Revocations, v.Latency.P50Ms, v.Latency.P99Ms, v.Latency.MaxMs, v.APICall.P50Ms, v.APICall.P99Ms,
			v.AfterReturn.P99Ms, v.Fsync.P50Ms, v.Fsync.P99Ms,
			v.UnaffectedPkts, v.UnaffectedLost, v.UnaffectedGone, targetRevokeP99Ms,
			verdict(v.Latency.P99Ms < targetRevokeP99Ms && v.UnaffectedLost == 0 && v.UnaffectedGone == 0 && v.Closed == v.Revocations))
	}
	if s := r.Startup; s != nil && s.Error == "" {
		fmt.Fprintf(&b, "4. Start-up (%d on-demand cameras, %d users via %s, %d groups, %d grants; %d KB database): exec -> READY=1 p50 %.1f ms, max %.1f ms over %d starts (first %.1f ms); empty database p50 %.1f ms; RSS at ready %.1f MB — target p50 < %d ms: %s\n\n",
			s.Cameras, s.Users, s.UsersVia, s.Groups, s.Grants, s.DBSizeKB, s.Ready.P50Ms, s.Ready.MaxMs, s.Ready.N,
			s.FirstMs, s.EmptyReady.P50Ms, float64(s.ReadyRSSKB)/1024, targetReadyMs, verdict(s.Ready.P50Ms < targetReadyMs))
	}
	if d := r.Discovery; d != nil && d.Error == "" && d.Skipped == "" {
		fmt.Fprintf(&b, "5. Discovery (%d camsim cameras, %s, onvif.Probe on lo): all found within a %.0f ms window; default window found %d in %.0f ms\n\n",
			d.Cameras, d.Namespace, d.AllFoundWindowMs, d.DefaultFound, d.DefaultCallMs)
	}
	if d := r.Discovery; d != nil && d.Skipped != "" {
		fmt.Fprintf(&b, "5. Discovery: not run: %s\n\n", d.Skipped)
	}
	if t := r.TTFF; t != nil && t.Error == "" {
		fmt.Fprintf(&b, "6. Time to first frame (%d readers joining at random moments while %d others play, GOP %.0f s): DESCRIBE -> first IDR packet p50 %.1f ms, p99 %.1f ms (first packet p50 %.1f ms) — target < %d ms: %s\n",
			t.Readers, t.LiveReaders, t.GOPS, t.Keyframe.P50Ms, t.Keyframe.P99Ms, t.FirstPacket.P50Ms, targetTTFFMs, verdict(t.Keyframe.P99Ms < targetTTFFMs))
		fmt.Fprintf(&b, "   where the time goes (p50 / p99 ms): DESCRIBE with its 401 and Digest retry %.1f / %.1f, SETUP %.1f / %.1f, PLAY %.1f / %.1f, PLAY answered to first IDR packet %.1f / %.1f\n\n",
			t.Describe.P50Ms, t.Describe.P99Ms, t.Setup.P50Ms, t.Setup.P99Ms, t.Play.P50Ms, t.Play.P99Ms, t.ToKeyframe.P50Ms, t.ToKeyframe.P99Ms)
	}
	if len(r.Errors) > 0 {
		b.WriteString("Errors:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  - %s\n", strings.ReplaceAll(e, "\n", "\n    "))
		}
	}
	return b.String()
}

func marginal(f FanoutResult) string {
	if f.RSSMarginalKB == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", f.RSSMarginalKB)
}

// expectedPPS is the camera's packet rate as the smallest fan-out step saw
// it (that step never falls behind).
func expectedPPS(rows []FanoutResult) float64 {
	best, readers := 0.0, 0
	for _, f := range rows {
		if f.Error == "" && f.PacketsPerS > 0 && (readers == 0 || f.Readers < readers) {
			best, readers = f.PacketsPerS, f.Readers
		}
	}
	return best
}

// keepsUp: a reader that gets fewer packets per second than the camera
// sends is falling behind (the backlog sits in socket buffers and shows as
// latency before it shows as loss).
func keepsUp(f FanoutResult, expected float64) bool {
	return expected > 0 && f.PacketsPerS >= 0.98*expected
}
