package daemon

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
	"github.com/camwarden/camwarden/internal/testutil"
	"github.com/camwarden/camwarden/store"
)

// testDaemon runs a real daemon in-process (real bbolt in a temp dir, RTSP on
// 127.0.0.1, admin socket in the temp dir, discovery off) and returns it once
// the admin API answers.
type testDaemon struct {
	d      *Daemon
	client *client.Client
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startTestDaemon(t *testing.T) *testDaemon {
	t.Helper()
	return startTestDaemonLogging(t, io.Discard)
}

// startTestDaemonLogging is startTestDaemon with the daemon's log also
// written to log.
func startTestDaemonLogging(t *testing.T, log io.Writer) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	opts := Options{
		ConfigFile:         filepath.Join(dir, "absent.conf"),
		ConfigMayBeMissing: true,
		Flags: map[string]string{
			"state_dir":            filepath.Join(dir, "state"),
			"socket":               socket,
			"rtsp_addr":            "127.0.0.1:0",
			"rtsp_udp":             "false",
			"rtsps_addr":           "127.0.0.1:0",
			"discovery_interfaces": "none",
		},
		LogOutput: io.MultiWriter(testutil.LogFile(t, "camwardend.log"), log),
		Version:   "test",
	}
	d, err := newDaemon(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{d: d, client: client.New(socket), cancel: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.run(ctx) }()
	t.Cleanup(td.stop)
	testutil.WaitFor(t, 30*time.Second, "admin API answers", func() bool {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_, err := td.client.Status(sctx)
		return err == nil
	})
	return td
}

// stop cancels the daemon and waits for run to return.
func (td *testDaemon) stop() {
	td.once.Do(func() {
		td.cancel()
		select {
		case <-td.done:
		case <-time.After(60 * time.Second):
			panic("daemon did not stop within 60s")
		}
	})
}

// TestReloadBesideStatusIsRaceFree is the race probe: SIGHUP reloads run on
// the loop while API requests read the configuration. Run under -race.
func TestReloadBesideStatusIsRaceFree(t *testing.T) {
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			td.d.post(ctx, td.d.reload)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if _, err := td.client.Status(ctx); err != nil {
				t.Error(err)
				return
			}
			if _, err := td.client.Discover(ctx, clientDiscoverNoWait()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
}

// TestPostReturnsAfterLoopStops: a background producer that hands work to
// the loop after it has exited must not block forever, even with a
// context that never ends.
func TestPostReturnsAfterLoopStops(t *testing.T) {
	td := startTestDaemon(t)
	td.stop()
	returned := make(chan struct{})
	go func() {
		td.d.post(context.Background(), func() {})
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("post blocked after the loop stopped")
	}
	doErr := make(chan error, 1)
	go func() { doErr <- td.d.do(context.Background(), func() {}) }()
	select {
	case err := <-doErr:
		if err == nil {
			t.Fatal("do reported success after the loop stopped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("do blocked after the loop stopped")
	}
}

// clientDiscoverNoWait is a discover request that returns at once: discovery
// is off and there are no targets, so no socket is opened.
func clientDiscoverNoWait() apitype.DiscoverRequest { return apitype.DiscoverRequest{TimeoutMS: 1} }

// buildSnapshot is a snapshot holding only the policy derived from pd.
func buildSnapshot(pd store.PolicyData) (*snapshot, error) {
	pv, err := buildPolicy(pd)
	if err != nil {
		return nil, err
	}
	return &snapshot{policyView: pv}, nil
}

// Status reports the schema version recorded in the database (it said 0).
func TestStatusReportsTheSchemaVersion(t *testing.T) {
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := td.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want int
	if err := td.d.store.View(ctx, func(tx *store.Tx) error { want = tx.SchemaVersion(); return nil }); err != nil {
		t.Fatal(err)
	}
	if want < 1 || st.SchemaVersion != want {
		t.Fatalf("status schema %d, database schema %d", st.SchemaVersion, want)
	}
}

// A camera edit says how many of its streams restarted; an edit that
// changes no stream restarts none.
func TestCameraSetReportsRestartedStreams(t *testing.T) {
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Nothing listens on port 1: the puller backs off, which is all we need.
	res, err := td.client.CameraAdd(ctx, apitype.CameraAddRequest{Name: "cam1", URL: "rtsp://127.0.0.1:1/live"})
	if err != nil {
		t.Fatal(err)
	}
	if res.RestartedStreams != 0 {
		t.Errorf("camera add restarted %d streams, want 0", res.RestartedStreams)
	}
	tcp := "tcp"
	res, err = td.client.CameraSet(ctx, apitype.CameraSetRequest{Name: "cam1", Transport: &tcp})
	if err != nil {
		t.Fatal(err)
	}
	if res.RestartedStreams != 1 {
		t.Errorf("changing the transport restarted %d streams, want 1", res.RestartedStreams)
	}
	user := "viewer"
	res, err = td.client.CameraSet(ctx, apitype.CameraSetRequest{Name: "cam1", User: &user})
	if err != nil {
		t.Fatal(err)
	}
	if res.RestartedStreams != 1 {
		// Every camera edit bumps its revision: its pullers reconnect with the new settings.
		t.Errorf("changing the user restarted %d streams, want 1", res.RestartedStreams)
	}
}
