package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
)

// floodEnv tells a copy of this test binary, run as uid 65534, to send
// refused requests: "SOCKET COUNT".
const floodEnv = "CAMWARDEN_E2E_REFUSAL_FLOOD"

// TestRefusalFloodChild is the flooding side of TestRefusalFloodIsBounded
// (it does nothing unless run as that child).
func TestRefusalFloodChild(t *testing.T) {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		return
	}
	sock, n, _ := strings.Cut(spec, " ")
	count, _ := strconv.Atoi(n)
	cl := client.New(sock)
	refused := 0
	for range count {
		_, err := cl.UserList(context.Background())
		var ae *apitype.Error
		if errors.As(err, &ae) && ae.Code == apitype.CodeForbidden {
			refused++
		}
	}
	fmt.Printf("uid=%d refused=%d\n", os.Getuid(), refused)
}

// TestRefusalFloodIsBounded is the hostile test's finding: a stranger
// reaching the socket (mode widened) sends thousands of requests. Each was
// one fsynced audit entry and two log lines (the database grew 64 KB ->
// 67 MB and the log by 120 MB in 1.9 s). Now the database and the log grow
// by a small bounded amount, and the coalesced entry carries the count.
func TestRefusalFloodIsBounded(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root (CI runs as root) to run the flood as another uid")
	}
	dir, err := os.MkdirTemp("", "camwarden-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "e2e.test")
	if b, err := os.ReadFile(exe); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("copy the test binary: %v", err)
	}

	d := startDaemon(t, dir)
	if err := os.Chmod(d.sock, 0o666); err != nil { // the widened mode of the finding
		t.Fatal(err)
	}
	dbFile := filepath.Join(dir, "state", "camwarden.db")
	size := func() int64 {
		fi, err := os.Stat(dbFile)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	dbBefore, logBefore := size(), len(d.logs.String())

	const flood = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		bin, "-test.run", "^TestRefusalFloodChild$", "-test.count", "1")
	cmd.Env = append(os.Environ(), floodEnv+"="+d.sock+" "+strconv.Itoa(flood))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("uid=65534 refused=%d", flood)) {
		t.Fatalf("flood child: %v\n%s", err, out)
	}

	grown := size() - dbBefore
	logGrown := d.logs.String()[logBefore:]
	t.Logf("after %d refused requests: database +%d bytes, log +%d bytes", flood, grown, len(logGrown))
	if grown > 64<<10 {
		t.Errorf("database grew by %d bytes for %d refused requests", grown, flood)
	}
	if n := strings.Count(logGrown, "refused"); n > 2 || len(logGrown) > 4<<10 {
		t.Errorf("log grew by %d bytes, %d lines about refusals:\n%s", len(logGrown), n, tail(logGrown, 2000))
	}

	// Stopping writes the window's count; the restarted daemon shows it.
	d.stop()
	d = startDaemon(t, dir)
	var res apitype.AuditList
	if err := json.Unmarshal([]byte(d.must("", "--json", "audit", "list", "--limit", "1000")), &res); err != nil {
		t.Fatal(err)
	}
	total, entries := 0, 0
	for _, e := range res.Entries {
		if e.Action != "api.refused" || !strings.Contains(e.Actor, "uid=65534") {
			continue
		}
		entries++
		for _, f := range strings.Fields(e.Detail) {
			if v, ok := strings.CutPrefix(f, "count="); ok {
				n, _ := strconv.Atoi(v)
				total += n
			}
		}
	}
	if entries == 0 || entries > 2 || total != flood {
		t.Errorf("%d refusal entries counting %d refusals, want 1-2 entries counting %d:\n%+v", entries, total, flood, res.Entries)
	}
	if out := d.must("", "audit", "verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit verify: %s", out)
	}
}
