package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim"
	"github.com/camwarden/camwarden/internal/testutil"
)

// TestMulticastDiscoveryInNamespace runs the daemon's multicast discovery
// in a private network namespace: 50 camsim cameras are found exactly once
// within the default window, a camera's Hello adds it and its Bye removes
// it without any probe.
func TestMulticastDiscoveryInNamespace(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	d := startDaemon(t, "", "--discovery-interfaces", "lo", "--discovery-interval", "1h")
	sim, err := camsim.New(camsim.Options{Cameras: 50, Addr: "127.0.0.1", DiscoveryInterfaces: []string{"lo"},
		Username: "admin", Password: cameraPassword, Seed: "fifty"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	// Multicast probe with the default window: every camera exactly once.
	start := time.Now()
	res := d.discover50()
	if len(res.Devices) != 50 {
		t.Fatalf("found %d devices, want 50", len(res.Devices))
	}
	seen := map[string]bool{}
	for _, dev := range res.Devices {
		if seen[dev.URN] {
			t.Fatalf("device %s listed twice", dev.URN)
		}
		seen[dev.URN] = true
	}
	t.Logf("50 cameras discovered in %s", time.Since(start).Round(time.Millisecond))

	// A camera that appears later announces itself with Hello, and leaves
	// with Bye; the daemon follows both without probing.
	late, err := camsim.New(camsim.Options{Cameras: 1, Addr: "127.0.0.1", DiscoveryInterfaces: []string{"lo"},
		Username: "admin", Password: cameraPassword, Seed: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	urn := late.Cameras()[0].URN()
	testutil.WaitFor(t, 5*time.Second, "Hello of the late camera", func() bool {
		return strings.Contains(d.logs.String(), "device discovered") && strings.Contains(d.logs.String(), urn)
	})
	late.Close()
	testutil.WaitFor(t, 5*time.Second, "Bye of the late camera", func() bool {
		return strings.Contains(d.logs.String(), "device said Bye") && strings.Count(d.logs.String(), urn) >= 2
	})
	if strings.Count(d.logs.String(), "discovery probe") > 1 {
		t.Log("note: periodic probe ran during the test")
	}
}

// discover50 runs a multicast probe with the default window.
func (d *daemonProc) discover50() discovered {
	d.t.Helper()
	out := d.must("", "--json", "discover")
	var res discovered
	if err := jsonUnmarshal(out, &res); err != nil {
		d.t.Fatalf("discover: %v\n%s", err, out)
	}
	return res
}
