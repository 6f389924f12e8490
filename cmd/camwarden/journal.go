package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// The daemon mirrors every audit head to its log (the journal under
// systemd) as one line of its own module, in text or JSON format:
//
//	2026-12-01T10:00:00.000Z [INFO]  camwardend.audit: audit head: audit_seq=42 audit_hash=<64 hex> audit_key=<16 hex>
//	{"@level":"info","@message":"audit head","@module":"camwardend.audit","audit_hash":"…","audit_key":"…","audit_seq":42,…}
//
// Only whole lines of that shape count: a request path or another value
// logged elsewhere cannot pass for a head.
const (
	mirrorModule  = "camwardend.audit"
	mirrorMessage = "audit head"
)

var mirrorText = regexp.MustCompile(`^(?:\S+ )?\[INFO\] +` + regexp.QuoteMeta(mirrorModule+": "+mirrorMessage+":") +
	` audit_seq=(\d{1,20}) audit_hash=([0-9a-f]{64}) audit_key=([0-9a-f]{16})( audit_start=true)?$`)

// journaldPrefix is what journalctl's default formats put before the
// message ("Dec 02 13:00:00 nvr camwardend[812]: "); `-o cat` has none.
var journaldPrefix = regexp.MustCompile(`^\S.*? camwardend\[(\d+)\]: `)

// maxJournalLine bounds one line read from the journal input.
const maxJournalLine = 1 << 20

// mirrorLine is one audit head line of the journal.
type mirrorLine struct {
	head  apitype.AuditHead
	start bool   // the first head of a daemon run
	pid   string // the daemon's PID, when the journal's prefix names it
}

// continues reports whether next was appended on top of l by the same
// daemon run: then the database holding next proves it held l (next's
// MAC covers l), and l need not be sent.
func (l mirrorLine) continues(next mirrorLine) bool {
	return !next.start && next.pid == l.pid && next.head.Seq == l.head.Seq+1
}

// parseJournalHeads reads journal output (`journalctl -u camwardend`, in
// its default format or with -o cat, or the daemon's log file) and
// returns the heads the database must hold, and how many mirror lines it
// read. Checking the newest head alone misses a database rolled back and
// grown past it again; checking every head would send one per audit
// entry. A head followed, in the same run, by the head one entry further
// on is implied by it, so what is left is the last head of every daemon
// run (and of every break in the sequence), plus the newest of every
// audit key: a rollback happens between runs, and the last head before it
// is not in the rolled-back database however far it grows.
func parseJournalHeads(r io.Reader) ([]apitype.AuditHead, int, error) {
	pending := map[string]mirrorLine{} // per audit key, the latest line, not yet judged
	var keys []string
	seen := map[apitype.AuditHead]bool{}
	var out []apitype.AuditHead
	keep := func(h apitype.AuditHead) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	lines := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxJournalLine)
	for sc.Scan() {
		l, ok := parseMirrorLine(sc.Text())
		if !ok {
			continue
		}
		lines++
		prev, seenKey := pending[l.head.KeyID]
		if !seenKey {
			keys = append(keys, l.head.KeyID)
		} else if !prev.continues(l) {
			keep(prev.head)
		}
		pending[l.head.KeyID] = l
		if len(out) > apitype.MaxJournalHeads {
			return nil, lines, tooManyHeads()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, lines, err
	}
	for _, k := range keys {
		keep(pending[k].head)
	}
	if len(out) > apitype.MaxJournalHeads {
		return nil, lines, tooManyHeads()
	}
	return out, lines, nil
}

func tooManyHeads() error {
	return fmt.Errorf("the journal holds more than %d daemon runs' audit heads, more than one check takes: "+
		"give it a shorter stretch, e.g. `journalctl -u camwardend -o cat --since 2026-01-01` (a rollback before that is not checked)", apitype.MaxJournalHeads)
}

func parseMirrorLine(line string) (mirrorLine, bool) {
	line = strings.TrimRight(line, "\r")
	var pid string
	if m := journaldPrefix.FindStringSubmatchIndex(line); m != nil {
		pid = line[m[2]:m[3]]
		line = line[m[1]:]
	}
	if strings.HasPrefix(line, "{") {
		var j struct {
			Module  string          `json:"@module"`
			Message string          `json:"@message"`
			Seq     json.RawMessage `json:"audit_seq"`
			Hash    string          `json:"audit_hash"`
			Key     string          `json:"audit_key"`
			Start   bool            `json:"audit_start"`
		}
		if json.Unmarshal([]byte(line), &j) != nil || j.Module != mirrorModule || j.Message != mirrorMessage {
			return mirrorLine{}, false
		}
		seq, err := strconv.ParseUint(string(j.Seq), 10, 64)
		h := apitype.AuditHead{Seq: seq, Hash: j.Hash, KeyID: j.Key}
		if err != nil || h.Validate() != nil {
			return mirrorLine{}, false
		}
		return mirrorLine{head: h, start: j.Start, pid: pid}, true
	}
	m := mirrorText.FindStringSubmatch(line)
	if m == nil {
		return mirrorLine{}, false
	}
	seq, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return mirrorLine{}, false
	}
	return mirrorLine{head: apitype.AuditHead{Seq: seq, Hash: m[2], KeyID: m[3]}, start: m[4] != "", pid: pid}, true
}

// journalHint says where mirrored heads come from.
const journalHint = "journalctl -u camwardend -o cat | camwarden audit verify --journal -"

func noHeadsError(src string) error {
	return fmt.Errorf("no audit heads found in %s: give it the daemon's log, e.g. `%s`", src, journalHint)
}

// rekeyNote says what one re-keying of the chain means for the entries
// before it: an unkeyed chain can be rewritten by anyone holding the file,
// so "intact" covers them only as far as the file was trustworthy then.
func rekeyNote(rk apitype.AuditRekey) string {
	from := rk.From
	if from == "" {
		from = "an earlier key"
	} else if from == "unkeyed" {
		from = "an unkeyed chain"
	}
	schema := ""
	if rk.Schema > 0 {
		schema = fmt.Sprintf(" (schema %d)", rk.Schema)
	}
	note := fmt.Sprintf("note: entry %d re-keyed %d entries from %s%s on %s",
		rk.Seq, rk.Entries, from, schema, rk.Time.UTC().Format(time.RFC3339))
	if rk.UnverifiedFrom > 0 {
		return note + fmt.Sprintf("; entries %d..%d are NOT verified", rk.UnverifiedFrom, rk.Seq-1)
	}
	return note + "; entries before it were checked against their unkeyed hashes then, which anyone holding the file could have forged: " +
		"trust them only if that is when this database was upgraded"
}
