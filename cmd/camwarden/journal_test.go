package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
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
		if len(heads) != 2 || heads[0].KeyID != keyB || heads[0].Seq != 2 ||
			heads[1].KeyID != keyA || heads[1].Seq != 7 || heads[1].Hash != h('b') {
			t.Errorf("json=%v: heads %+v", json, heads)
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
