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
	` audit_seq=(\d{1,20}) audit_hash=([0-9a-f]{64}) audit_key=([0-9a-f]{16})$`)

// journaldPrefix is what journalctl's default formats put before the
// message ("Dec 02 13:00:00 nvr camwardend[812]: "); `-o cat` has none.
var journaldPrefix = regexp.MustCompile(`^\S.*? camwardend\[\d+\]: `)

// maxJournalLine bounds one line read from the journal input.
const maxJournalLine = 1 << 20

// parseJournalHeads reads journal output (`journalctl -u camwardend`, in
// its default format or with -o cat, or the daemon's log file) and
// returns, per audit key, the newest head seen, newest key first, at most
// apitype.MaxJournalHeads of them,
// and how many mirror lines it read.
func parseJournalHeads(r io.Reader) ([]apitype.AuditHead, int, error) {
	newest := map[string]apitype.AuditHead{}
	var order []string
	lines := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxJournalLine)
	for sc.Scan() {
		h, ok := parseMirrorLine(sc.Text())
		if !ok {
			continue
		}
		lines++
		cur, seen := newest[h.KeyID]
		if !seen {
			order = append(order, h.KeyID)
		}
		if !seen || h.Seq > cur.Seq {
			newest[h.KeyID] = h
		}
	}
	if err := sc.Err(); err != nil {
		return nil, lines, err
	}
	out := make([]apitype.AuditHead, 0, len(order))
	for i := len(order) - 1; i >= 0 && len(out) < apitype.MaxJournalHeads; i-- {
		out = append(out, newest[order[i]])
	}
	return out, lines, nil
}

func parseMirrorLine(line string) (apitype.AuditHead, bool) {
	line = strings.TrimRight(line, "\r")
	if loc := journaldPrefix.FindStringIndex(line); loc != nil {
		line = line[loc[1]:]
	}
	if strings.HasPrefix(line, "{") {
		var j struct {
			Module  string          `json:"@module"`
			Message string          `json:"@message"`
			Seq     json.RawMessage `json:"audit_seq"`
			Hash    string          `json:"audit_hash"`
			Key     string          `json:"audit_key"`
		}
		if json.Unmarshal([]byte(line), &j) != nil || j.Module != mirrorModule || j.Message != mirrorMessage {
			return apitype.AuditHead{}, false
		}
		seq, err := strconv.ParseUint(string(j.Seq), 10, 64)
		h := apitype.AuditHead{Seq: seq, Hash: j.Hash, KeyID: j.Key}
		if err != nil || h.Validate() != nil {
			return apitype.AuditHead{}, false
		}
		return h, true
	}
	m := mirrorText.FindStringSubmatch(line)
	if m == nil {
		return apitype.AuditHead{}, false
	}
	seq, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return apitype.AuditHead{}, false
	}
	return apitype.AuditHead{Seq: seq, Hash: m[2], KeyID: m[3]}, true
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
