package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDamagedSealedSecretReportedAtStart flips one byte inside a camera's
// sealed password (offline, as disk damage would): the daemon still starts,
// names the record in its log and in `camwarden status`, and the intact
// records are not listed. Before, nothing showed until that camera's next
// pull or that user's next login.
func TestDamagedSealedSecretReportedAtStart(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	d.must(cameraPassword+"\n", "camera", "add", "lobby", "--url", "rtsp://127.0.0.1:9/main", "--user", "admin", "--password-stdin")
	d.must(cameraPassword+"\n", "camera", "add", "gate", "--url", "rtsp://127.0.0.1:9/main", "--user", "admin", "--password-stdin")
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	if out := d.must("", "status"); strings.Contains(out, "DAMAGED") {
		t.Fatalf("intact database reported damaged:\n%s", out)
	}
	d.stop()

	db, err := bolt.Open(filepath.Join(dir, "state", "camwarden.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("cameras"))
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte("lobby")), &rec); err != nil {
			return err
		}
		pw, _ := rec["password"].(string)
		blob, err := base64.StdEncoding.DecodeString(pw)
		if err != nil || len(blob) < 40 {
			return fmt.Errorf("camera record has no sealed password: %v", rec)
		}
		blob[len(blob)-20] ^= 0x40
		rec["password"] = base64.StdEncoding.EncodeToString(blob)
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte("lobby"), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	d = startDaemon(t, dir)
	// Reported before READY=1, so it is in the log by now.
	logs := d.logs.String()
	if !strings.Contains(logs, "kind=camera name=lobby field=password") {
		t.Errorf("log does not name the damaged record:\n%s", tail(logs, 3000))
	}
	out := d.must("", "status")
	if !strings.Contains(out, "camera lobby: sealed password does not open") {
		t.Errorf("status does not list the damaged record:\n%s", out)
	}
	if strings.Contains(out, "gate") || strings.Contains(out, "alice") {
		t.Errorf("status lists intact records as damaged:\n%s", out)
	}
	var st struct {
		Damaged []struct{ Kind, Name, Field string } `json:"damaged"`
	}
	if err := json.Unmarshal([]byte(d.must("", "--json", "status")), &st); err != nil || len(st.Damaged) != 1 ||
		st.Damaged[0].Kind != "camera" || st.Damaged[0].Name != "lobby" || st.Damaged[0].Field != "password" {
		t.Errorf("status --json damaged = %+v %v", st.Damaged, err)
	}
	// Setting the secret again clears it.
	d.must(cameraPassword+"\n", "camera", "set", "lobby", "--user", "admin", "--password-stdin")
	if out := d.must("", "status"); strings.Contains(out, "DAMAGED") {
		t.Errorf("still damaged after setting the password again:\n%s", out)
	}
}
