package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/internal/testutil"
)

// TestOldDatabaseChainKeyedAtFirstStart starts the real daemon on a copy of
// the committed schema-v1 database, whose audit chain predates keying: it
// is migrated and re-keyed in one go, the re-keying is itself audited, and
// the chain verifies (also against the journal heads of that start).
func TestOldDatabaseChainKeyedAtFirstStart(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	fixture := filepath.Join(testutil.RepoRoot(), "testdata", "store")
	db, err := os.ReadFile(filepath.Join(fixture, "schema-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(fixture, "schema-v1.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "master.key")
	if os.WriteFile(filepath.Join(state, "camwarden.db"), db, 0o600) != nil || os.WriteFile(keyFile, key, 0o600) != nil {
		t.Fatal("cannot copy the fixture")
	}
	d := startDaemon(t, dir, "--key-file", keyFile)
	list := d.must("", "audit", "list")
	if !strings.Contains(list, "audit.rekey") || !strings.Contains(list, "entries=2") {
		t.Fatalf("no audit.rekey entry for the 2 old entries:\n%s", list)
	}
	if out := d.must("", "audit", "verify"); !strings.Contains(out, "intact: 3 entries") {
		t.Fatalf("audit verify after re-keying: %s", out)
	} else if !strings.Contains(out, "entry 3 re-keyed 2 entries from an unkeyed chain (schema 1)") {
		t.Errorf("audit verify does not report the migration's re-keying: %s", out)
	}
	if !strings.Contains(d.logs.String(), "audit chain keyed under the master key") {
		t.Errorf("the re-keying is not in the log:\n%s", tail(d.logs.String(), 2000))
	}
	out := d.must(d.logs.String(), "audit", "verify", "--journal", "-")
	if !strings.Contains(out, "holds the journal's newest head (entry 3)") {
		t.Errorf("against this start's journal: %s", out)
	}
	d.stop()
	// A second start does not re-key again.
	d = startDaemon(t, dir, "--key-file", keyFile)
	if out := d.must("", "audit", "verify"); !strings.Contains(out, "intact: 3 entries") {
		t.Fatalf("after a second start: %s", out)
	}
}
