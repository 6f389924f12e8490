package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditRollbackDetectedWithJournal replaces the database file with an
// older copy of itself (a genuine, correctly keyed chain, only shorter):
// `audit verify` alone cannot tell, `audit verify --journal` given the
// daemon's log (what systemd sends to the journal) can. Both log formats.
func TestAuditRollbackDetectedWithJournal(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "state", "camwarden.db")
			var journal strings.Builder
			run := func(users ...string) *daemonProc {
				d := startDaemon(t, dir, "--log-format", format, "--log-level", "error") // the mirror ignores the level
				for _, u := range users {
					d.must(alicePassword+"\n", "user", "add", u, "--password-stdin")
				}
				return d
			}
			d := run("u1", "u2")
			d.stop()
			journal.WriteString(d.logs.String())
			// The run's first head, and only that one, is marked as its start
			// (where --journal knows the previous run ended).
			if lines := strings.Split(d.logs.String(), "\n"); strings.Count(d.logs.String(), "audit_start") != 1 ||
				!strings.Contains(firstLineWith(lines, "audit_seq"), "audit_start") {
				t.Errorf("start mark of the run's audit heads:\n%s", d.logs.String())
			}
			old, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			d = run("u3", "u4", "u5")
			d.stop()
			journal.WriteString(d.logs.String())
			jf := filepath.Join(t.TempDir(), "journal.txt")
			if err := os.WriteFile(jf, []byte(journal.String()), 0o600); err != nil {
				t.Fatal(err)
			}

			d = startDaemon(t, dir)
			if out := d.must("", "audit", "verify", "--journal", jf); !strings.Contains(out, "holds the journal's newest head (entry 5)") {
				t.Fatalf("intact database against its journal:\n%s", out)
			}
			d.stop()

			// Roll the file back to the copy taken after two entries.
			if err := os.WriteFile(db, old, 0o600); err != nil {
				t.Fatal(err)
			}
			d = startDaemon(t, dir)
			if out := d.must("", "audit", "verify"); !strings.Contains(out, "intact") {
				t.Fatalf("the old copy alone verifies (it is a genuine chain): %s", out)
			}
			out, code := d.cli("", "audit", "verify", "--journal", jf)
			if code != 1 || !strings.Contains(out, "BROKEN at entry 3") || !strings.Contains(out, "rolled back") {
				t.Fatalf("rolled-back database with --journal: exit %d\n%s", code, out)
			}
			// The same through stdin, as `journalctl ... | camwarden audit verify --journal -`.
			out, code = d.cli(journal.String(), "audit", "verify", "--journal", "-")
			if code != 1 || !strings.Contains(out, "rolled back") {
				t.Fatalf("--journal -: exit %d\n%s", code, out)
			}
			// The rolled-back database grows past the journal's old newest
			// head (2 + 6 > 5): the last head before the rollback still
			// shows it, in the whole journal, this run's heads included.
			for i := range 6 {
				d.must(alicePassword+"\n", "user", "add", fmt.Sprint("later", i), "--password-stdin")
			}
			out, code = d.cli(journal.String()+d.logs.String(), "audit", "verify", "--journal", "-")
			if code != 1 || !strings.Contains(out, "BROKEN at entry 5") || !strings.Contains(out, "rolled back") {
				t.Fatalf("rolled back, then 6 more entries, with --journal: exit %d\n%s", code, out)
			}
			// A log without mirrored heads proves nothing and says so.
			out, code = d.cli("nothing here\n", "audit", "verify", "--journal", "-")
			if code == 0 || !strings.Contains(out, "no audit heads found") {
				t.Fatalf("--journal without heads: exit %d\n%s", code, out)
			}
			// Heads of another database (another audit key) cannot vouch for this one.
			foreign := "[INFO]  camwardend.audit: audit head: audit_seq=1 audit_hash=" + strings.Repeat("a", 64) + " audit_key=ffffffffffffffff\n"
			out, code = d.cli(foreign, "audit", "verify", "--journal", "-")
			if code != 1 || !strings.Contains(out, "another database or master key") {
				t.Fatalf("--journal of another database: exit %d\n%s", code, out)
			}
		})
	}
}

func firstLineWith(lines []string, sub string) string {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
