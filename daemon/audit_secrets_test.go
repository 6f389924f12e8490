package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/internal/testutil"
)

// An edit's audit entry tells a kept password from a changed or removed one,
// and never holds the password itself.
func TestAuditTellsKeptFromChangedSecrets(t *testing.T) {
	const (
		oldPW = "audit-cam-Pw-old-3318" // in testdata/test-secrets.txt
		newPW = "audit-cam-Pw-new-7720"
	)
	td := startTestDaemon(t)
	cl := td.client
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	yes, empty, next := true, "", newPW
	steps := []func() error{
		func() error {
			_, err := cl.CameraAdd(ctx, apitype.CameraAddRequest{Name: "gate", URL: "rtsp://127.0.0.1:9/main", User: "admin", Password: oldPW, OnDemand: true})
			return err
		},
		func() error {
			_, err := cl.CameraSet(ctx, apitype.CameraSetRequest{Name: "gate", Password: &next})
			return err
		},
		func() error {
			_, err := cl.CameraSet(ctx, apitype.CameraSetRequest{Name: "gate", AllowBasic: &yes})
			return err
		},
		func() error {
			_, err := cl.CameraSet(ctx, apitype.CameraSetRequest{Name: "gate", Password: &empty})
			return err
		},
		func() error {
			_, err := cl.DirectorySet(ctx, apitype.DirectorySetRequest{URL: "ldaps://dc1.example.test", BindDN: "cn=svc,dc=example,dc=test",
				BindPassword: dirBindSecret, BaseDN: "dc=example,dc=test"})
			return err
		},
		func() error {
			_, err := cl.DirectorySet(ctx, apitype.DirectorySetRequest{URL: "ldaps://dc1.example.test", BindDN: "cn=svc,dc=example,dc=test",
				BaseDN: "dc=example,dc=test"})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}

	entries, err := td.d.store.AuditList(ctx, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		switch e.Action {
		case "camera.add", "camera.set":
			got = append(got, e.Action+" password="+e.Args["password"])
		case "directory.set":
			got = append(got, e.Action+" bind_password="+e.Args["bind_password"])
		}
	}
	want := []string{
		"camera.add password=(set)",
		"camera.set password=(changed)",
		"camera.set password=(kept)",
		"camera.set password=(removed)",
		"directory.set bind_password=(changed)",
		"directory.set bind_password=(kept)",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit secret markers\n got %q\nwant %q", got, want)
	}

	list, err := cl.AuditList(ctx, apitype.AuditListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := json.Marshal(entries)
	shown, _ := json.Marshal(list)
	testutil.CheckNoSecrets(t, "audit entries", string(stored)+string(shown), []string{oldPW, newPW, dirBindSecret})
}
