package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim"
	"github.com/camwarden/camwarden/internal/testutil"
)

// startRecorder runs a simulated network recorder on loopback: one ONVIF
// device with channels video sources, two profiles each.
func startRecorder(t *testing.T, channels, maxStreams int, media string, h265 bool) *camsim.Camera {
	t.Helper()
	sim, err := camsim.New(camsim.Options{Addr: "127.0.0.1", DiscoveryPort: 0, DiscoveryInterfaces: []string{"none"},
		Username: "admin", Password: cameraPassword, Seed: t.Name() + "/" + media, RecorderChannels: channels,
		MaxStreams: maxStreams, MediaServices: media, Media2H265: h265})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim.Cameras()[0]
}

type channelCameraJSON struct {
	Name        string `json:"name"`
	User        string `json:"user"`
	HasPassword bool   `json:"has_password"`
	Recorder    string `json:"recorder"`
	Channel     int    `json:"channel"`
	ChannelName string `json:"channel_name"`
	Streams     []struct {
		Name     string `json:"name"`
		URL      string `json:"url"`
		OnDemand bool   `json:"on_demand"`
	} `json:"streams"`
}

func (d *daemonProc) cameras() []channelCameraJSON {
	d.t.Helper()
	var res struct {
		Cameras []channelCameraJSON `json:"cameras"`
	}
	out := d.must("", "--json", "camera", "list")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		d.t.Fatalf("camera list: %v\n%s", err, out)
	}
	return res.Cameras
}

// TestRecorderAdoptedPerChannel: a 16-channel recorder adopted in one
// command is 16 cameras nvr1-ch01..16 with the recorder's channel names and
// on-demand streams; a group granted nvr1-ch03/* reads channel 3 through
// the restream (ffprobe) and is refused channel 4.
func TestRecorderAdoptedPerChannel(t *testing.T) {
	nvr := startRecorder(t, 16, 0, "", false)
	d := startDaemon(t, "")
	out := d.must(cameraPassword+"\n", "--json", "camera", "adopt", "nvr1", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin")
	var res struct {
		Cameras []channelCameraJSON `json:"cameras"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Cameras) != 16 {
		t.Fatalf("adopt answered %d cameras (%v):\n%s", len(res.Cameras), err, out)
	}
	cams := d.cameras()
	if len(cams) != 16 {
		t.Fatalf("%d cameras after adopting a 16-channel recorder", len(cams))
	}
	for i, c := range cams {
		n := i + 1
		if c.Name != fmt.Sprintf("nvr1-ch%02d", n) || c.Recorder != "nvr1" || c.Channel != n || c.ChannelName != fmt.Sprintf("Channel %02d", n) || !c.HasPassword {
			t.Errorf("camera %d: %+v", n, c)
		}
		if len(c.Streams) != 2 || c.Streams[0].Name != "main" || c.Streams[1].Name != "sub" || !c.Streams[0].OnDemand || !c.Streams[1].OnDemand {
			t.Errorf("camera %d streams %+v", n, c.Streams)
		}
		if want := nvr.RTSPURL(fmt.Sprintf("ch%02d_main", n)); c.Streams[0].URL != want {
			t.Errorf("camera %d pulls %s, want %s", n, c.Streams[0].URL, want)
		}
	}
	if show := d.must("", "camera", "show", "nvr1-ch03"); !strings.Contains(show, "nvr1, channel 3 (Channel 03)") {
		t.Errorf("camera show of a channel:\n%s", show)
	}
	d.must(alicePassword+"\n", "user", "add", "guard", "--password-stdin")
	d.must("", "group", "add", "lobby")
	d.must("", "group", "member", "add", "lobby", "guard")
	d.must("", "grant", "@lobby", "read", "nvr1-ch03/*")
	url := func(ch string) string { return "rtsp://guard:" + alicePassword + "@" + d.rtsp + "/" + ch + "/main" }
	probe, err := ffprobe(t, url("nvr1-ch03"), "tcp")
	if err != nil || !strings.Contains(probe, "codec_name=h264") || !strings.Contains(probe, "width=640") {
		t.Fatalf("guard on nvr1-ch03: %v\n%s\ndaemon:\n%s", err, probe, tail(d.logs.String(), 3000))
	}
	probe, err = ffprobe(t, url("nvr1-ch04"), "tcp")
	if err == nil || strings.Contains(probe, "codec_name") {
		t.Fatalf("guard read nvr1-ch04 without a grant:\n%s", probe)
	}
	if !strings.Contains(probe, "401") && !strings.Contains(probe, "403") && !strings.Contains(probe, "404") {
		t.Errorf("refusal of nvr1-ch04 is not an RTSP refusal:\n%s", probe)
	}
	// A second adoption under the same name changes nothing.
	if out, code := d.cli(cameraPassword+"\n", "camera", "adopt", "nvr1", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin"); code == 0 {
		t.Errorf("adopting nvr1 twice succeeded: %s", out)
	}
	// Removing the recorder by its name removes every channel and the
	// recorder's record: the name can be adopted afresh.
	d.must("", "camera", "remove", "nvr1")
	if cams := d.cameras(); len(cams) != 0 {
		t.Fatalf("after camera remove nvr1: %d cameras", len(cams))
	}
	d.must(cameraPassword+"\n", "camera", "adopt", "nvr1", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin", "--channels", "3")
	d.scanSecrets()
}

// TestRecorderChannelSubset: --channels 1,3-5 adopts those channels only;
// bad syntax is refused by the CLI (exit 2) and a channel the recorder
// lacks by the daemon, both creating nothing; removing the channels one by
// one leaves nothing behind.
func TestRecorderChannelSubset(t *testing.T) {
	nvr := startRecorder(t, 8, 0, camsim.Media1Only, false)
	d := startDaemon(t, "")
	for _, bad := range []string{"3-1", "0", "1,x", "1-", "200"} {
		out, code := d.cli(cameraPassword+"\n", "camera", "adopt", "nvr2", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin", "--channels", bad)
		if code != 2 || !strings.Contains(out, "channel") {
			t.Errorf("--channels %q: exit %d: %s", bad, code, out)
		}
	}
	out, code := d.cli(cameraPassword+"\n", "camera", "adopt", "nvr2", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin", "--channels", "2,9")
	if code == 0 || !strings.Contains(out, "channel 9") {
		t.Errorf("channel 9 of 8: exit %d: %s", code, out)
	}
	if cams := d.cameras(); len(cams) != 0 {
		t.Fatalf("refused adoptions created %+v", cams)
	}
	d.must(cameraPassword+"\n", "camera", "adopt", "nvr2", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin", "--channels", "1,3-5")
	var names []string
	for _, c := range d.cameras() {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, " "); got != "nvr2-ch01 nvr2-ch03 nvr2-ch04 nvr2-ch05" {
		t.Fatalf("cameras %s", got)
	}
	// The recorder's credentials are shared: a change through one channel
	// is every channel's.
	d.must("", "camera", "set", "nvr2-ch03", "--user", "operator")
	for _, c := range d.cameras() {
		if c.User != "operator" || !c.HasPassword {
			t.Errorf("%s after the user changed through nvr2-ch03: %+v", c.Name, c)
		}
	}
	for _, n := range names {
		d.must("", "camera", "remove", n)
	}
	// The recorder (and its shared secret) went with its last channel: the
	// name is free again.
	d.must(cameraPassword+"\n", "camera", "adopt", "nvr2", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin", "--channels", "2")
}

// TestRecorderStreamCapIsTheLastError: a recorder that serves one stream at
// a time refuses a second channel's pull with 453, which stream list shows
// as that stream's last error while the first reader keeps playing.
func TestRecorderStreamCapIsTheLastError(t *testing.T) {
	nvr := startRecorder(t, 2, 1, "", false)
	d := startDaemon(t, "")
	d.must(cameraPassword+"\n", "camera", "adopt", "nvr3", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin")
	d.must(alicePassword+"\n", "user", "add", "viewer", "--password-stdin")
	d.must("", "grant", "viewer", "read", "*")
	first := d.reader("nvr3-ch01/main", "viewer", alicePassword)
	if _, err := testutil.StartReader(d.rtsp, "nvr3-ch02/main", "viewer", alicePassword); err == nil {
		t.Error("a second channel played beyond the recorder's cap")
	}
	testutil.WaitFor(t, 30*time.Second, "453 as nvr3-ch02/main's last error", func() bool {
		var res struct {
			Streams []struct {
				Path      string `json:"path"`
				LastError string `json:"last_error"`
			} `json:"streams"`
		}
		out, _ := d.cli("", "--json", "stream", "list")
		if json.Unmarshal([]byte(out), &res) != nil {
			return false
		}
		for _, s := range res.Streams {
			if s.Path == "nvr3-ch02/main" && strings.Contains(s.LastError, "453") {
				return true
			}
		}
		return false
	})
	before := first.Packets()
	testutil.WaitFor(t, 10*time.Second, "the first reader still playing", func() bool { return first.Packets() > before+10 })
	if out := d.must("", "stream", "list"); !strings.Contains(out, "453") {
		t.Errorf("stream list (text) does not show the 453:\n%s", out)
	}
}

// TestMedia2OnlyAndMedia1OnlyCameras: a camera offering Media2 only (its
// main profile H.265) and one offering Media1 only are both adopted with
// their two profiles.
func TestMedia2OnlyAndMedia1OnlyCameras(t *testing.T) {
	m2 := startRecorder(t, 0, 0, camsim.Media2Only, true)
	m1 := startRecorder(t, 0, 0, camsim.Media1Only, false)
	d := startDaemon(t, "")
	d.must(cameraPassword+"\n", "camera", "adopt", "hevc", "--xaddr", m2.XAddr(), "--user", "admin", "--password-stdin")
	d.must(cameraPassword+"\n", "camera", "adopt", "old", "--xaddr", m1.XAddr(), "--user", "admin", "--password-stdin")
	cams := d.cameras()
	if len(cams) != 2 {
		t.Fatalf("cameras %+v", cams)
	}
	for _, c := range cams {
		cam := m1
		if c.Name == "hevc" {
			cam = m2
		}
		if c.Recorder != "" || len(c.Streams) != 2 || c.Streams[0].URL != cam.RTSPURL("main") || c.Streams[1].URL != cam.RTSPURL("sub") || c.Streams[0].OnDemand {
			t.Errorf("camera %+v", c)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "both cameras live", func() bool {
		out, _ := d.cli("", "--json", "stream", "list")
		return strings.Count(out, `"state": "live"`) >= 4
	})
}

// TestRecorderMovesAsOneDevice: confirming the move of one channel of a
// recorder that came back on new ports moves every channel, each to its
// own channel's stream address there (not channel 1's), and a granted
// reader plays a channel at the new address.
func TestRecorderMovesAsOneDevice(t *testing.T) {
	nvr := startRecorder(t, 3, 0, "", false)
	d := startDaemon(t, "")
	d.must(cameraPassword+"\n", "camera", "adopt", "nvr4", "--xaddr", nvr.XAddr(), "--user", "admin", "--password-stdin")
	if err := nvr.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	newAddr := strings.TrimPrefix(strings.TrimSuffix(nvr.XAddr(), "/onvif/device_service"), "http://")
	d.must("", "camera", "move", "nvr4-ch02", "--to", newAddr)
	for _, c := range d.cameras() {
		for _, s := range c.Streams {
			if want := nvr.RTSPURL(fmt.Sprintf("ch%02d_%s", c.Channel, s.Name)); want == "" || s.URL != want {
				t.Errorf("%s/%s pulls %s after the move, want %s", c.Name, s.Name, s.URL, want)
			}
		}
	}
	d.must(alicePassword+"\n", "user", "add", "viewer", "--password-stdin")
	d.must("", "grant", "viewer", "read", "nvr4-ch03/*")
	d.reader("nvr4-ch03/sub", "viewer", alicePassword)
}
