package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

// TestExecCommandCredentialsRefusedAndHidden: the daemon itself refuses an
// exec command holding a URL with user:password@ (a client that skips the
// CLI's check), and a command stored before that rule has the URL's
// userinfo hidden in camera show and camera list.
func TestExecCommandCredentialsRefusedAndHidden(t *testing.T) {
	const secret = "CamPassw0rdSecret" // in testdata/test-secrets.txt
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leaky := "ffmpeg -i rtsp://admin:" + secret + "@127.0.0.1:9/main -c copy -f rtsp {output}"
	if _, err := td.client.CameraAdd(ctx, apitype.CameraAddRequest{Name: "leak", Exec: leaky}); err == nil ||
		!strings.Contains(err.Error(), "CAMWARDEN_PASSWORD") || strings.Contains(err.Error(), secret) {
		t.Errorf("camera add with credentials in --exec: %v", err)
	}
	if _, err := td.client.CameraShow(ctx, "leak"); err == nil {
		t.Error("the refused command was stored")
	}

	// A command stored before the rule (written to the store directly).
	if err := td.d.store.Update(ctx, nil, func(tx *store.Tx) error {
		return tx.CreateCamera(store.Camera{Name: "legacy", Streams: []store.Stream{{Name: "main", Exec: leaky}}}, "")
	}); err != nil {
		t.Fatal(err)
	}
	cam, err := td.client.CameraShow(ctx, "legacy")
	if err != nil || len(cam.Streams) != 1 || !strings.Contains(cam.Streams[0].Exec, "ffmpeg -i rtsp://127.0.0.1:9/main") {
		t.Fatalf("camera show legacy: %+v, %v", cam, err)
	}
	list, err := td.client.CameraList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{cam, list} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), secret) {
			t.Errorf("a stored command's URL password is shown: %s", b)
		}
	}
	audit, err := td.client.AuditList(ctx, apitype.AuditListRequest{})
	if b, _ := json.Marshal(audit); err != nil || strings.Contains(string(b), secret) {
		t.Errorf("audit list: %v: %s", err, b)
	}
}
