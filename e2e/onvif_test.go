package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim"
	"github.com/camwarden/camwarden/internal/camsim/media"
	"github.com/camwarden/camwarden/internal/testutil"
)

// startSim runs simulated ONVIF cameras on loopback; their discovery
// answers only directed (unicast) probes, so nothing reaches the LAN.
func startSim(t *testing.T, n int, skew time.Duration) *camsim.Sim {
	t.Helper()
	sim, err := camsim.New(camsim.Options{Cameras: n, Addr: "127.0.0.1", DiscoveryPort: 0, DiscoveryInterfaces: []string{"none"},
		Username: "admin", Password: cameraPassword, ClockSkew: skew, Seed: t.Name(),
		Profiles: []media.Profile{
			{Name: "main", Width: 1280, Height: 720, FPS: 25, BitrateKbps: 1500, GOP: time.Second},
			{Name: "sub", Width: 640, Height: 360, FPS: 25, BitrateKbps: 400, GOP: time.Second},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

type discovered struct {
	Devices []struct {
		URN       string   `json:"urn"`
		Name      string   `json:"name"`
		XAddrs    []string `json:"xaddrs"`
		AdoptedAs string   `json:"adopted_as"`
	} `json:"devices"`
}

func (d *daemonProc) discover(target string) discovered {
	d.t.Helper()
	out := d.must("", "--json", "discover", "--timeout", "1s", "--target", target)
	var res discovered
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		d.t.Fatalf("discover output: %v\n%s", err, out)
	}
	return res
}

func ffprobe(t *testing.T, url, transport string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_entries",
		"stream=codec_name,width,height", "-of", "compact=p=0:nk=0", url)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDiscoverAdoptPlay: a directed probe finds a camsim camera, adoption
// creates one stream per profile, and ffprobe plays them through the
// restream with Digest credentials.
func TestDiscoverAdoptPlay(t *testing.T) {
	sim := startSim(t, 2, 0)
	d := startDaemon(t, "")
	target := sim.DiscoveryAddr().String()
	res := d.discover(target)
	if len(res.Devices) != 2 {
		t.Fatalf("found %d devices, want 2: %+v", len(res.Devices), res)
	}
	cam := sim.Cameras()[0]
	d.must(cameraPassword+"\n", "camera", "adopt", "front", "--device", cam.URN(), "--user", "admin", "--password-stdin")
	show := d.must("", "--json", "camera", "show", "front")
	for _, want := range []string{`"name": "main"`, `"name": "sub"`, cam.URN()} {
		if !strings.Contains(show, want) {
			t.Errorf("adopted camera lacks %s:\n%s", want, show)
		}
	}
	if res := d.discover(target); !strings.Contains(mustJSON(t, res), `"adopted_as":"front"`) {
		t.Errorf("discover does not say the device is adopted: %+v", res)
	}
	d.must(alicePassword+"\n", "user", "add", "viewer", "--password-stdin")
	d.must("", "grant", "viewer", "read", "front/*")
	testutil.WaitFor(t, 15*time.Second, "adopted streams live", func() bool {
		out, _ := d.cli("", "--json", "stream", "list")
		return strings.Count(out, `"state": "live"`) >= 2
	})
	url := "rtsp://viewer:" + alicePassword + "@" + d.rtsp + "/front/main"
	out, err := ffprobe(t, url, "tcp")
	if err != nil || !strings.Contains(out, "codec_name=h264") || !strings.Contains(out, "width=1280") {
		t.Fatalf("ffprobe through the restream: %v\n%s\ndaemon:\n%s", err, out, tail(d.logs.String(), 3000))
	}
}

// TestAdoptRefusals: wrong credentials and an unreachable device give clear
// errors and create nothing; a camera whose clock is a year off is adopted.
func TestAdoptRefusals(t *testing.T) {
	skewed := startSim(t, 1, 8760*time.Hour)
	d := startDaemon(t, "")
	xaddr := skewed.Cameras()[0].XAddr()

	out, code := d.cli("wrong-password\n", "camera", "adopt", "bad", "--xaddr", xaddr, "--user", "admin", "--password-stdin")
	if code == 0 || !strings.Contains(strings.ToLower(out), "credential") {
		t.Errorf("wrong credentials: exit %d: %s", code, out)
	}
	out, code = d.cli(cameraPassword+"\n", "camera", "adopt", "gone", "--xaddr", "http://127.0.0.1:1/onvif/device_service", "--user", "admin", "--password-stdin")
	if code == 0 || !strings.Contains(out, "reach") {
		t.Errorf("unreachable camera: exit %d: %s", code, out)
	}
	if list := d.must("", "--json", "camera", "list"); strings.Contains(list, `"bad"`) || strings.Contains(list, `"gone"`) {
		t.Fatalf("a failed adoption created a camera:\n%s", list)
	}
	d.must(cameraPassword+"\n", "camera", "adopt", "skewed", "--xaddr", xaddr, "--user", "admin", "--password-stdin")
}

// TestRenumberedCameraKeepsStreaming: the camera comes back on new ports
// with the same URN; the next probe notices, but a discovery answer proves
// nothing, so the camera keeps its addresses and shows a pending move; the
// admin confirms it with camera move, the daemon re-reads the stream
// addresses there, only its puller restarts, and readers can play it again.
func TestRenumberedCameraKeepsStreaming(t *testing.T) {
	sim := startSim(t, 2, 0)
	d := startDaemon(t, "")
	target := sim.DiscoveryAddr().String()
	d.discover(target)
	moving, steady := sim.Cameras()[0], sim.Cameras()[1]
	d.must(cameraPassword+"\n", "camera", "adopt", "moving", "--device", moving.URN(), "--user", "admin", "--password-stdin")
	d.must(cameraPassword+"\n", "camera", "adopt", "steady", "--device", steady.URN(), "--user", "admin", "--password-stdin")
	d.must(alicePassword+"\n", "user", "add", "viewer", "--password-stdin")
	d.must("", "grant", "viewer", "read", "*")
	testutil.WaitFor(t, 15*time.Second, "4 streams live", func() bool {
		out, _ := d.cli("", "--json", "stream", "list")
		return strings.Count(out, `"state": "live"`) >= 4
	})
	witness := d.reader("steady/main", "viewer", alicePassword)

	oldURL := moving.RTSPURL("main")
	if err := moving.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if moving.RTSPURL("main") == oldURL {
		t.Fatal("camsim restart kept the RTSP port")
	}
	d.discover(target)
	newAddr := strings.TrimPrefix(strings.TrimSuffix(moving.XAddr(), "/onvif/device_service"), "http://")
	testutil.WaitFor(t, 15*time.Second, "pending move shown", func() bool {
		return strings.Contains(d.must("", "camera", "show", "moving"), "camwarden camera move moving --to "+newAddr)
	})
	if show := d.must("", "--json", "camera", "show", "moving"); !strings.Contains(show, oldURL) || strings.Contains(show, moving.RTSPURL("main")) {
		t.Fatalf("an unconfirmed move changed the camera:\n%s", show)
	}
	if list := d.must("", "stream", "list"); !strings.Contains(list, "moved? seen at "+newAddr) {
		t.Fatalf("stream list does not show the pending move:\n%s", list)
	}
	d.must("", "camera", "move", "moving", "--to", newAddr)
	show := d.must("", "--json", "camera", "show", "moving")
	if !strings.Contains(show, moving.RTSPURL("main")) || strings.Contains(show, "pending_move") {
		t.Fatalf("after camera move:\n%s", show)
	}
	d.reader("moving/main", "viewer", alicePassword)
	if witness.Closed() || witness.Lost() != 0 {
		t.Errorf("reader of the other camera: closed=%v lost=%d", witness.Closed(), witness.Lost())
	}
	audit := d.must("", "audit", "list")
	if !strings.Contains(audit, "camera.move_pending") || !strings.Contains(audit, "camera.move") {
		t.Errorf("moves not audited:\n%s", audit)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
