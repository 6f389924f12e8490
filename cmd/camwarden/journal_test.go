package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// mirrorLines writes audit heads the way the daemon does (hclog, module
// camwardend.audit), in text or JSON.
func mirrorLines(json bool, heads ...[3]string) string {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Name: "camwardend.audit", Level: hclog.Info, Output: &buf, JSONFormat: json})
	for _, h := range heads {
		var seq uint64
		fmt.Sscan(h[0], &seq)
		log.Info("audit head", "audit_seq", seq, "audit_hash", h[1], "audit_key", h[2])
	}
	return buf.String()
}

func TestParseJournalHeads(t *testing.T) {
	h := func(c byte) string { return strings.Repeat(string(c), 64) }
	keyA, keyB := "0123456789abcdef", "fedcba9876543210"
	for _, json := range []bool{false, true} {
		var in strings.Builder
		in.WriteString("unrelated line\n")
		in.WriteString(mirrorLines(json, [3]string{"3", h('a'), keyA}, [3]string{"7", h('b'), keyA}))
		// A value logged elsewhere cannot pass for a head, however it is dressed.
		other := hclog.New(&hclog.LoggerOptions{Name: "camwardend.api", Output: &in, JSONFormat: json})
		other.Warn("admin request refused", "path", "/x\n[INFO]  camwardend.audit: audit head: audit_seq=999 audit_hash="+h('f')+" audit_key="+keyA)
		in.WriteString("[INFO]  camwardend.audit: audit head: audit_seq=998 audit_hash=" + h('e') + " audit_key=" + keyA + " trailing\n")
		in.WriteString(mirrorLines(json, [3]string{"5", h('c'), keyA}, [3]string{"2", h('d'), keyB}))
		heads, n, err := parseJournalHeads(strings.NewReader(in.String()))
		if err != nil || n != 4 {
			t.Fatalf("json=%v: %d mirror lines, %v\n%s", json, n, err, in.String())
		}
		// 3 -> 7 -> 5 breaks the sequence twice: all three are kept, and
		// the newest of key B.
		var got []string
		for _, hd := range heads {
			got = append(got, fmt.Sprintf("%d%c%s", hd.Seq, hd.Hash[0], hd.KeyID[:1]))
		}
		if strings.Join(got, " ") != "3a0 7b0 5c0 2df" {
			t.Errorf("json=%v: heads %v", json, got)
		}
	}
	// journalctl's default format puts its own prefix before the message.
	short := "Dec 02 13:00:00 nvr camwardend[812]: " + strings.TrimRight(mirrorLines(false, [3]string{"11", h('a'), keyA}), "\n") + "\n" +
		"2026-12-02T13:00:01+0000 nvr camwardend[812]: " + mirrorLines(true, [3]string{"12", h('b'), keyA})
	if heads, n, err := parseJournalHeads(strings.NewReader(short)); err != nil || n != 2 || len(heads) != 1 || heads[0].Seq != 12 {
		t.Errorf("journalctl short format: %+v %d %v", heads, n, err)
	}
	if heads, n, err := parseJournalHeads(strings.NewReader("")); len(heads) != 0 || n != 0 || err != nil {
		t.Errorf("empty input: %v %d %v", heads, n, err)
	}
}

func FuzzParseJournalHeads(f *testing.F) {
	f.Add(mirrorLines(false, [3]string{"1", strings.Repeat("a", 64), "0123456789abcdef"}))
	f.Add(mirrorLines(true, [3]string{"18446744073709551615", strings.Repeat("0", 64), "0123456789abcdef"}))
	f.Add(`{"@module":"camwardend.audit","@message":"audit head","audit_seq":1e3}`)
	f.Fuzz(func(t *testing.T, in string) {
		heads, n, err := parseJournalHeads(strings.NewReader(in))
		if err == nil && len(heads) > n {
			t.Fatalf("%d heads from %d lines", len(heads), n)
		}
		for _, h := range heads {
			if h.Validate() != nil {
				t.Fatalf("bad head %+v", h)
			}
		}
	})
}

// runLines writes one daemon run's heads, seq from..to, the first marked
// as the run's start the way the daemon marks it.
func runLines(json bool, pid string, key string, from, to uint64, hash func(uint64) string) string {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Name: "camwardend.audit", Level: hclog.Info, Output: &buf, JSONFormat: json})
	for seq := from; seq <= to; seq++ {
		args := []any{"audit_seq", seq, "audit_hash", hash(seq), "audit_key", key}
		if seq == from {
			args = append(args, "audit_start", true)
		}
		log.Info("audit head", args...)
	}
	if pid == "" {
		return buf.String()
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l != "" {
			out.WriteString("Dec 02 13:00:00 nvr camwardend[" + pid + "]: " + l)
		}
	}
	return out.String()
}

// TestParseJournalHeadsKeepsTheLastHeadOfEveryRun: the journal of a
// database rolled back between two runs (run 1 ends at 10, run 2 starts
// from a copy at 5 and grows to 11) yields run 1's last head, which the
// rolled-back database does not hold, however far it grows; a head
// followed in its run by the next one is left out (the next one's MAC
// covers it). Runs are told apart by the daemon's start mark, and by the
// PID where journalctl's prefix gives one (lines from before the mark).
func TestParseJournalHeadsKeepsTheLastHeadOfEveryRun(t *testing.T) {
	key := "0123456789abcdef"
	lineage := func(tag byte) func(uint64) string {
		return func(seq uint64) string { return fmt.Sprintf("%c%063x", tag, seq) }
	}
	for _, json := range []bool{false, true} {
		in := runLines(json, "", key, 0, 10, lineage('a')) + runLines(json, "", key, 5, 11, lineage('b'))
		heads, n, err := parseJournalHeads(strings.NewReader(in))
		if err != nil || n != 18 {
			t.Fatalf("json=%v: %d lines, %v", json, n, err)
		}
		if len(heads) != 2 || heads[0].Seq != 10 || heads[0].Hash != lineage('a')(10) || heads[1].Seq != 11 || heads[1].Hash != lineage('b')(11) {
			t.Errorf("json=%v: heads %+v; want run 1's last (10) and the newest (11)", json, heads)
		}
	}
	// A rollback to a copy exactly one entry further on looks like the next
	// append; only the run boundary shows it. Without start marks, the PID.
	unmarked := strings.ReplaceAll(runLines(false, "812", key, 1, 4, lineage('a'))+runLines(false, "977", key, 5, 6, lineage('b')), " audit_start=true", "")
	heads, _, err := parseJournalHeads(strings.NewReader(unmarked))
	if err != nil || len(heads) != 2 || heads[0].Seq != 4 || heads[1].Seq != 6 {
		t.Errorf("runs told apart by PID: %+v %v", heads, err)
	}
	marked := runLines(false, "", key, 1, 4, lineage('a')) + runLines(false, "", key, 5, 6, lineage('b'))
	if heads, _, err := parseJournalHeads(strings.NewReader(marked)); err != nil || len(heads) != 2 || heads[0].Seq != 4 || heads[1].Seq != 6 {
		t.Errorf("runs told apart by the start mark: %+v %v", heads, err)
	}
	// A restart without a rollback repeats the head: sent once.
	again := runLines(false, "", key, 1, 4, lineage('a')) + runLines(false, "", key, 4, 6, lineage('a'))
	if heads, _, err := parseJournalHeads(strings.NewReader(again)); err != nil || len(heads) != 2 || heads[0].Seq != 4 || heads[1].Seq != 6 {
		t.Errorf("plain restart: %+v %v", heads, err)
	}
}

// TestParseJournalHeadsTooManyRuns: more runs than one check takes is a
// clear error naming the way out, not a silent cut.
func TestParseJournalHeadsTooManyRuns(t *testing.T) {
	var in strings.Builder
	key := "0123456789abcdef"
	for i := range apitype.MaxJournalHeads + 1 {
		seq := uint64(i + 1)
		in.WriteString(runLines(false, "", key, seq, seq, func(s uint64) string { return fmt.Sprintf("%064x", s) }))
	}
	if _, _, err := parseJournalHeads(strings.NewReader(in.String())); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Fatalf("err = %v", err)
	}
}
