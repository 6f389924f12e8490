package onvif

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/camsim"
)

const simPass = "Sim-Pa55word-7"

func startCamsim(t *testing.T, opts camsim.Options) *camsim.Camera {
	t.Helper()
	opts.Username, opts.Password = "admin", simPass
	opts.DiscoveryInterfaces = []string{"none"}
	sim, err := camsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim.Cameras()[0]
}

func adoptSim(t *testing.T, cam *camsim.Camera, channels []int) (AdoptResult, string) {
	t.Helper()
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := AdoptChannels(ctx, cam.XAddr(), ClientOptions{Username: "admin", Password: simPass, Timeout: 10 * time.Second, Logger: traceLogger(&logs)}, channels)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	if strings.Contains(logs.String(), simPass) {
		t.Fatal("the password is in the log")
	}
	return res, logs.String()
}

// TestAdoptRecorderChannels: a 16-channel recorder (Media1 and Media2
// offered) comes back as 16 channels in the device's order, each with its
// own two profiles and per-channel RTSP URIs, through Media2.
func TestAdoptRecorderChannels(t *testing.T) {
	cam := startCamsim(t, camsim.Options{RecorderChannels: 16})
	res, _ := adoptSim(t, cam, nil)
	if !res.Recorder() || res.Sources != 16 || len(res.Channels) != 16 {
		t.Fatalf("sources %d, channels %d", res.Sources, len(res.Channels))
	}
	if !res.Media2 || !strings.HasSuffix(res.MediaXAddr, "/onvif/media2_service") {
		t.Errorf("Media2 not preferred: %v %s", res.Media2, res.MediaXAddr)
	}
	seen := map[string]bool{}
	for i, ch := range res.Channels {
		n := i + 1
		if ch.Number != n || ch.Name != fmt.Sprintf("Channel %02d", n) || ch.Token != fmt.Sprintf("vs%d", n) {
			t.Errorf("channel %d: %+v", n, ch)
		}
		if len(ch.Streams) != 2 || ch.Streams[0].Name != "main" || ch.Streams[1].Name != "sub" {
			t.Fatalf("channel %d streams %+v", n, ch.Streams)
		}
		for _, s := range ch.Streams {
			want := cam.RTSPURL(fmt.Sprintf("ch%02d_%s", n, s.Name))
			if want == "" || s.URI.URI != want {
				t.Errorf("channel %d %s: URI %q, want %q", n, s.Name, s.URI.URI, want)
			}
			if seen[s.URI.URI] {
				t.Errorf("URI %s given twice", s.URI.URI)
			}
			seen[s.URI.URI] = true
		}
	}
}

func TestAdoptRecorderChannelSubset(t *testing.T) {
	cam := startCamsim(t, camsim.Options{RecorderChannels: 8})
	res, _ := adoptSim(t, cam, []int{1, 3, 4, 5})
	var got []int
	for _, ch := range res.Channels {
		got = append(got, ch.Number)
	}
	if fmt.Sprint(got) != "[1 3 4 5]" || res.Sources != 8 {
		t.Fatalf("channels %v of %d", got, res.Sources)
	}
	if u := res.Channels[1].Streams[0].URI.URI; u != cam.RTSPURL("ch03_main") {
		t.Fatalf("channel 3 main %s", u)
	}
	_, err := AdoptChannels(context.Background(), cam.XAddr(), ClientOptions{Username: "admin", Password: simPass}, []int{2, 9})
	if !errors.Is(err, ErrNoChannel) || !strings.Contains(err.Error(), "channel 9") {
		t.Fatalf("channel 9 of 8: %v", err)
	}
}

// TestAdoptMedia2OnlyH265: a camera that offers Media2 only is adopted
// with its H.265 and H.264 profiles; Media1 is never needed.
func TestAdoptMedia2OnlyH265(t *testing.T) {
	cam := startCamsim(t, camsim.Options{MediaServices: camsim.Media2Only, Media2H265: true})
	res, _ := adoptSim(t, cam, nil)
	if !res.Media2 || res.Recorder() || len(res.Streams) != 2 {
		t.Fatalf("media2 %v recorder %v streams %+v", res.Media2, res.Recorder(), res.Streams)
	}
	m, s := res.Streams[0], res.Streams[1]
	if m.Name != "main" || m.Profile.Encoding != "H265" || m.Profile.Width != 1920 || m.URI.URI != cam.RTSPURL("main") {
		t.Errorf("main %+v", m)
	}
	if s.Name != "sub" || s.Profile.Encoding != "H264" || s.URI.URI != cam.RTSPURL("sub") {
		t.Errorf("sub %+v", s)
	}
	c, err := NewClient(cam.XAddr(), ClientOptions{Username: "admin", Password: simPass})
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := c.GetProfiles(context.Background()); err == nil {
		t.Fatalf("Media1 on a Media2-only device answered %+v", ps)
	}
}

// TestAdoptMedia1Fallback: without Media2 the Media1 path is used; with
// both offered and H.265 on, Media1 alone would miss the H.265 profile.
func TestAdoptMedia1Fallback(t *testing.T) {
	cam := startCamsim(t, camsim.Options{MediaServices: camsim.Media1Only, RecorderChannels: 3})
	res, _ := adoptSim(t, cam, nil)
	if res.Media2 || !strings.HasSuffix(res.MediaXAddr, "/onvif/media_service") || len(res.Channels) != 3 {
		t.Fatalf("media2 %v %s channels %d", res.Media2, res.MediaXAddr, len(res.Channels))
	}
	for _, ch := range res.Channels {
		if len(ch.Streams) != 2 || ch.Streams[0].Profile.Encoding != "H264" {
			t.Errorf("channel %+v", ch)
		}
	}
	both := startCamsim(t, camsim.Options{Media2H265: true})
	res, _ = adoptSim(t, both, nil)
	if !res.Media2 || len(res.Streams) != 2 || res.Streams[0].Profile.Encoding != "H265" {
		t.Fatalf("both offered: media2 %v streams %+v", res.Media2, res.Streams)
	}
	c, err := NewClient(both.XAddr(), ClientOptions{Username: "admin", Password: simPass})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.GetProfiles(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Token != "sub" {
		t.Fatalf("Media1 profiles of an H.265 camera: %+v %v", ps, err)
	}
}

func TestGroupChannels(t *testing.T) {
	v := func(tok, src, name string) Profile {
		return Profile{Token: tok, SourceToken: src, SourceName: name, HasVideo: true}
	}
	cases := []struct {
		name     string
		sources  []string
		profiles []Profile
		want     string
	}{
		{"camera without sources", nil, []Profile{v("a", "", ""), v("b", "", "")}, "1:Channel 01[a b]"},
		{"profile omits the only source", []string{"vs"}, []Profile{v("a", "vs", "Lobby"), v("b", "", "")}, "1:Lobby[a b]"},
		{"device order wins", []string{"s2", "s1"}, []Profile{v("a", "s1", ""), v("b", "s2", "")}, "1:Channel 01[b] 2:Channel 02[a]"},
		{"unused source keeps its number", []string{"s1", "s2", "s3"}, []Profile{v("a", "s1", ""), v("c", "s3", "")}, "1:Channel 01[a] 3:Channel 03[c]"},
		{"recorder reports 0 sources", []string{}, []Profile{v("a", "x", ""), v("b", "y", "")}, "1:Channel 01[a] 2:Channel 02[b]"},
		{"source not listed", []string{"s1"}, []Profile{v("a", "s1", ""), v("b", "ghost", "")}, "1:Channel 01[a] 2:Channel 02[b]"},
		{"duplicate sources", []string{"s1", "s1"}, []Profile{v("a", "s1", "")}, "1:Channel 01[a]"},
		{"no video", []string{"s1"}, []Profile{{Token: "audio", SourceToken: "s1"}}, ""},
		{"empty sources with several others", nil, []Profile{v("a", "x", ""), v("b", "", ""), v("c", "y", "")}, "1:Channel 01[a] 2:Channel 02[b] 3:Channel 03[c]"},
	}
	for _, tc := range cases {
		var parts []string
		for _, ch := range GroupChannels(tc.sources, tc.profiles) {
			var toks []string
			for _, p := range ch.Profiles {
				toks = append(toks, p.Token)
			}
			parts = append(parts, fmt.Sprintf("%d:%s[%s]", ch.Number, ch.Name, strings.Join(toks, " ")))
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestGroupChannelsCapsAbsurdCounts: a device claiming thousands of
// sources and profiles gives at most MaxChannels channels of at most
// maxChannelProfiles profiles.
func TestGroupChannelsCapsAbsurdCounts(t *testing.T) {
	var sources []string
	var profiles []Profile
	for i := 0; i < 5000; i++ {
		sources = append(sources, fmt.Sprint("s", i))
		profiles = append(profiles, Profile{Token: fmt.Sprint("p", i), SourceToken: fmt.Sprint("s", i%200), HasVideo: true})
	}
	chs := GroupChannels(sources, profiles)
	if len(chs) != MaxChannels {
		t.Fatalf("%d channels", len(chs))
	}
	for _, ch := range chs {
		if len(ch.Profiles) > maxChannelProfiles {
			t.Fatalf("channel %d has %d profiles", ch.Number, len(ch.Profiles))
		}
	}
	var many strings.Builder
	many.WriteString("<GetVideoSourcesResponse>")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&many, `<VideoSources token="v%d"/><VideoSources token="v%d"/>`, i, i)
	}
	many.WriteString("</GetVideoSourcesResponse>")
	ts, err := parseVideoSources([]byte(many.String()))
	if err != nil || len(ts) != MaxChannels || ts[1] != "v1" {
		t.Fatalf("%d sources %v", len(ts), err)
	}
}

func TestParseMedia2Responses(t *testing.T) {
	body := `<GetProfilesResponse>` +
		`<Profiles token="p1"><Name>Main H.265</Name><Configurations><VideoSource token="c1"><Name>Door</Name><SourceToken>vs1</SourceToken></VideoSource>` +
		`<VideoEncoder token="e1"><Encoding>HEVC</Encoding><Resolution><Width>3840</Width><Height>2160</Height></Resolution><RateControl><FrameRateLimit>20.0</FrameRateLimit><BitrateLimit>8192</BitrateLimit></RateControl></VideoEncoder></Configurations></Profiles>` +
		`<Profiles token="p1"><Name>duplicate token</Name><Configurations><VideoEncoder><Encoding>H264</Encoding></VideoEncoder></Configurations></Profiles>` +
		`<Profiles token=""><Name>no token</Name></Profiles>` +
		`<Profiles token="audio"><Name>audio only</Name><Configurations><AudioEncoder/></Configurations></Profiles>` +
		`</GetProfilesResponse>`
	ps, err := parseProfiles2([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("profiles %+v", ps)
	}
	p := ps[0]
	if p.Token != "p1" || p.Name != "Main H.265" || p.Encoding != "H265" || p.Width != 3840 || p.FrameRate != 20 || p.BitrateKbps != 8192 || p.SourceToken != "vs1" || p.SourceName != "Door" || !p.HasVideo {
		t.Errorf("profile %+v", p)
	}
	if ps[1].HasVideo {
		t.Errorf("audio profile has video: %+v", ps[1])
	}
	for _, bad := range []string{"", "<GetProfilesResponse><Profiles>", "not xml at all"} {
		if _, err := parseProfiles2([]byte(bad)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if u, err := parseStreamURI2([]byte(`<GetStreamUriResponse><Uri> rtsp://10.0.0.1/ch1 </Uri></GetStreamUriResponse>`)); err != nil || u != "rtsp://10.0.0.1/ch1" {
		t.Errorf("uri %q %v", u, err)
	}
	for _, bad := range []string{`<GetStreamUriResponse/>`, `<GetStreamUriResponse><Uri></Uri>`, `<<<`} {
		if _, err := parseStreamURI2([]byte(bad)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	svcs, err := parseServices([]byte(`<GetServicesResponse><Service><Namespace>` + media2NS + `</Namespace><XAddr>http://a/m2</XAddr></Service>` +
		`<Service><Namespace>` + media2NS + `</Namespace><XAddr>http://evil/m2</XAddr></Service></GetServicesResponse>`))
	if err != nil || svcs[media2NS] != "http://a/m2" {
		t.Errorf("services %v %v", svcs, err)
	}
}

// TestMedia2URIHostIsTheReachedOne: a Media2 stream URI naming another
// host is pointed at the host we reached the device at.
func TestMedia2URIHostIsTheReachedOne(t *testing.T) {
	cam := startCamsim(t, camsim.Options{MediaServices: camsim.Media2Only})
	c, err := NewClient(cam.XAddr(), ClientOptions{Username: "admin", Password: simPass})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := c.mediaServices(context.Background())
	if err != nil || ms.Media2 == nil || ms.Media1 != nil {
		t.Fatalf("services %+v %v", ms, err)
	}
	su, err := fixStreamURI("rtsp://user:pw@203.0.113.9:554/x", c.device)
	if err != nil || strings.Contains(su.URI, "203.0.113.9") || su.Password != "pw" || strings.Contains(su.URI, "pw") {
		t.Fatalf("fixed %+v %v", su, err)
	}
}

// TestMedia2FaultFallsBackToMedia1: a device that lists Media2 in
// GetServices but faults on its GetProfiles (the captured Hikvision
// answer, served by fakeCam at a path that only does Media1) is adopted
// through Media1, and the fallback is logged.
func TestMedia2FaultFallsBackToMedia1(t *testing.T) {
	var logs syncBuffer
	cam := newFakeCam(t)
	res, err := Adopt(context.Background(), cam.xaddr(), camOpts(cam, &logs))
	if err != nil {
		t.Fatal(err)
	}
	if res.Media2 || !strings.HasSuffix(res.MediaXAddr, "/onvif/media") || len(res.Streams) == 0 {
		t.Fatalf("media2 %v %s streams %d", res.Media2, res.MediaXAddr, len(res.Streams))
	}
	if !strings.Contains(logs.String(), "falling back to Media1") {
		t.Errorf("no fallback logged:\n%s", logs.String())
	}
	noSecret(t, cam, logs.String())
}
