package daemon

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// lockedBuffer is a log sink the daemon writes from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const floodURN = "urn:uuid:6f1c2a9e-0000-4000-8000-0000000f100d"

// adoptForTest stores an adopted camera with floodURN at a plain-HTTP
// address nothing listens on (no pin: every sighting is only a hint).
func adoptForTest(t *testing.T, td *testDaemon, ctx context.Context) {
	t.Helper()
	var err error
	if derr := td.d.do(ctx, func() {
		_, err = td.d.mutateLocked(ctx, mutation{caller: systemCaller(), action: "camera.adopt", target: "lobby",
			apply: func(tx *store.Tx, ch *changeSet) error {
				ch.cameras = true
				return tx.CreateCamera(store.Camera{Name: "lobby", ONVIF: &store.ONVIFIdentity{URN: floodURN, XAddr: "http://127.0.0.1:1/onvif/device_service"},
					Streams: []store.Stream{{Name: "main", URL: "rtsp://127.0.0.1:1/main", Transport: "auto"}}}, "")
			}})
	}); derr != nil || err != nil {
		t.Fatal(derr, err)
	}
}

func sightings(t *testing.T, td *testDaemon, ctx context.Context, devs ...onvif.Device) {
	t.Helper()
	if err := td.d.do(ctx, func() { td.d.disc.merge(devs, "hello") }); err != nil {
		t.Fatal(err)
	}
}

func sighting(urn, host string) onvif.Device {
	return onvif.Device{URN: urn, XAddrs: []string{"http://" + host + "/onvif/device_service"}, Addr: host, Addrs: []string{host}, LastSeen: time.Now()}
}

// TestPendingMoveFloodIsNeverSilent: the real camera's new address comes
// first, then a spoofer announces 30 others within the minute. The camera's
// address stays listed, the move says the list is incomplete in camera
// show and stream list, and the log warns. Before the fix announcements
// beyond 5 a minute were dropped with a Debug line and only the newest 8
// addresses were kept.
func TestPendingMoveFloodIsNeverSilent(t *testing.T) {
	var logs lockedBuffer
	td := startTestDaemonLogging(t, &logs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adoptForTest(t, td, ctx)
	sightings(t, td, ctx, sighting(floodURN, "10.0.0.23")) // the camera, really moved
	for i := range 30 {
		sightings(t, td, ctx, sighting(floodURN, fmt.Sprintf("10.0.66.%d", i)))
	}
	cam, err := td.client.CameraShow(ctx, "lobby")
	if err != nil {
		t.Fatal(err)
	}
	pm := cam.PendingMove
	if pm == nil || pm.Addr != "10.0.0.23:80" || !pm.Truncated || !strings.Contains(pm.Hint, "verify the camera's address out of band") {
		t.Fatalf("pending move after a flood: %+v", pm)
	}
	streams, err := td.client.StreamList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(streams.Streams) != 1 || streams.Streams[0].PendingMove == nil || !streams.Streams[0].PendingMove.Truncated {
		t.Errorf("stream list does not show the truncation: %+v", streams.Streams)
	}
	if !strings.Contains(logs.String(), "[WARN]  camwardend.discovery: too many addresses announced") {
		t.Errorf("no warning about the flood in the log")
	}
	if n := strings.Count(logs.String(), "too many addresses announced"); n != 1 {
		t.Errorf("the flood warning was logged %d times in one minute, want 1", n)
	}
}

// TestDiscoveryTableFloodNeitherBlocksNorHidesMoves: 4096 fake Hellos fill
// the device table; a new device is still listed (the oldest fake makes
// room), and the adopted camera seen at a new address while the table is
// full gets its pending move. Entries expire after the TTL. Before the fix
// the table refused every new URN and the move went unnoticed.
func TestDiscoveryTableFloodNeitherBlocksNorHidesMoves(t *testing.T) {
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	adoptForTest(t, td, ctx)
	base := time.Now().Add(-time.Minute)
	var fakes []onvif.Device
	for i := range maxDiscovered {
		d := sighting(fmt.Sprintf("urn:uuid:fake-%d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250))
		d.LastSeen = base.Add(time.Duration(i) * time.Millisecond)
		fakes = append(fakes, d)
	}
	sightings(t, td, ctx, fakes...)
	sightings(t, td, ctx, sighting("urn:uuid:new-camera", "10.0.0.40"))
	var devs map[string]onvif.Device
	if err := td.d.do(ctx, func() { devs = maps.Clone(td.d.disc.devices) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := devs["urn:uuid:new-camera"]; !ok {
		t.Errorf("a new device was not listed while the table was full")
	}
	if _, ok := devs["urn:uuid:fake-0"]; ok || len(devs) > maxDiscovered {
		t.Errorf("the oldest entry was not evicted (%d entries)", len(devs))
	}
	sightings(t, td, ctx, sighting(floodURN, "10.0.0.23"))
	cam, err := td.client.CameraShow(ctx, "lobby")
	if err != nil {
		t.Fatal(err)
	}
	if cam.PendingMove == nil || cam.PendingMove.Addr != "10.0.0.23:80" {
		t.Errorf("the adopted camera's move went unnoticed with the table full: %+v", cam.PendingMove)
	}
	if err := td.d.do(ctx, func() {
		td.d.disc.expire(time.Now().Add(td.d.disc.ttl + time.Minute))
		td.d.publishDevices(td.d.disc.devices)
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(td.d.snap.Load().devices); n != 0 {
		t.Errorf("%d entries survived their TTL", n)
	}
}
