package camsim

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
)

// play opens an RTSP session on rawURL and keeps it until the test ends
// (or close is called).
func play(t *testing.T, rawURL string) (close func()) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(testUser, testPass)
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	desc, _, err := c.Describe(u)
	if err == nil {
		err = c.SetupAll(desc.BaseURL, desc.Medias)
	}
	if err == nil {
		_, err = c.Play(nil)
	}
	if err != nil {
		c.Close()
		t.Fatalf("play %s: %v", rawURL, err)
	}
	t.Cleanup(c.Close)
	return c.Close
}

func ffprobe(t *testing.T, rawURL string) (string, error) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	u.User = url.UserPassword(testUser, testPass)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name", "-of", "csv=p=0", u.String()).CombinedOutput()
	return string(out), err
}

// TestRecorderServesEveryChannel: one device, N video sources with two
// profiles each, one RTSP server with a path per channel and profile.
func TestRecorderServesEveryChannel(t *testing.T) {
	s, _ := startSim(t, Options{RecorderChannels: 4})
	c := s.Cameras()[0]
	chs := c.Channels()
	if len(chs) != 4 || chs[3].Token != "vs4" || chs[3].Name != "Channel 04" || strings.Join(chs[3].Profiles, ",") != "ch04_main,ch04_sub" {
		t.Fatalf("channels %+v", chs)
	}
	for _, ch := range chs {
		for _, p := range ch.Profiles {
			desc, err := describe(t, c.RTSPURL(p), testUser, testPass)
			if err != nil {
				t.Fatalf("DESCRIBE %s: %v", p, err)
			}
			var h264 *format.H264
			if desc.FindFormat(&h264) == nil {
				t.Fatalf("%s: no H.264", p)
			}
		}
	}
	if c.RTSPURL("main") != "" {
		t.Error("a recorder serves no un-numbered profile")
	}
}

// TestRecorderStreamCap: beyond MaxStreams sessions a real reader
// (ffprobe) is refused with 453 Not Enough Bandwidth; once a session
// ends, the next reader gets in.
func TestRecorderStreamCap(t *testing.T) {
	s, _ := startSim(t, Options{RecorderChannels: 3, MaxStreams: 1})
	c := s.Cameras()[0]
	stop := play(t, c.RTSPURL("ch01_main"))
	out, err := ffprobe(t, c.RTSPURL("ch02_main"))
	if err == nil || !strings.Contains(out, "453") {
		t.Fatalf("second stream beyond the cap: err %v, output %q", err, out)
	}
	stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = ffprobe(t, c.RTSPURL("ch02_main"))
		if err == nil && strings.Contains(out, "h264") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first session ended: err %v, output %q", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestRecorderOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{RecorderChannels: -1}, {RecorderChannels: MaxRecorderChannels + 1}, {MediaServices: "media3"},
		{MaxStreams: -2}, {MediaServices: Media1Only, Media2H265: true},
	} {
		o.Username, o.Password = testUser, testPass
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
