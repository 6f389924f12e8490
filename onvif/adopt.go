package onvif

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
)

// AdoptedStream is one profile the daemon can pull, named for the RTSP path.
type AdoptedStream struct {
	Name    string // normalised, unique within the device
	Profile Profile
	URI     StreamURI
}

// AdoptResult is everything the daemon needs to add an ONVIF camera, or
// one camera per channel of a recorder.
type AdoptResult struct {
	Info        DeviceInfo
	XAddr       string // device service
	MediaXAddr  string // the media service used, host fixed up
	Media2      bool   // profiles and URIs came from Media2 (ver20/media)
	ClockOffset time.Duration
	// Streams are the first selected channel's streams (a camera's only
	// channel): what a single-source device is adopted with.
	Streams []AdoptedStream
	// Channels are the selected channels with their streams; Sources is how
	// many channels the device has in all (more than 1: a recorder).
	Channels []AdoptedChannel
	Sources  int
	// CertSHA256 is the TLS leaf certificate the device presented (https
	// only): every call of the adoption saw this same certificate.
	CertSHA256 string
}

// AdoptedChannel is one channel of a device and its streams.
type AdoptedChannel struct {
	Number  int
	Name    string
	Token   string
	Streams []AdoptedStream
}

// Recorder reports whether the device has several video sources.
func (r AdoptResult) Recorder() bool { return r.Sources > 1 }

// Adopt queries a device in one go (every channel): see AdoptChannels.
func Adopt(ctx context.Context, xaddr string, opts ClientOptions) (AdoptResult, error) {
	return AdoptChannels(ctx, xaddr, opts, nil)
}

// AdoptChannels queries a camera or recorder in one go: date/time (clock
// offset), device information, media services (Media2 preferred when
// GetServices lists it, else Media1), profiles grouped by video source
// into channels, and each selected channel's video profiles' stream URIs.
// channels selects by 1-based number (nil: all); one the device lacks is
// ErrNoChannel. Failures wrap ErrUnauthorized (wrong credentials),
// ErrUnreachable (no answer) or ErrNoProfiles (nothing to stream), with
// the step that failed. A profile whose stream URI cannot be had is
// skipped; a selected channel left with none is ErrNoProfiles.
func AdoptChannels(ctx context.Context, xaddr string, opts ClientOptions, channels []int) (AdoptResult, error) {
	c, err := NewClient(xaddr, opts)
	if err != nil {
		return AdoptResult{}, err
	}
	host := c.device.Host
	step := func(what string, err error) error {
		return fmt.Errorf("adopt %s: %s: %w", host, what, err)
	}
	fatal := func(err error) bool {
		return IsNotAuthorized(err) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrCertMismatch) || ctx.Err() != nil
	}
	if _, err := c.GetSystemDateAndTime(ctx); err != nil {
		if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrCertMismatch) || ctx.Err() != nil {
			return AdoptResult{}, step("get date and time", err)
		}
		// Some cameras refuse it; the token then uses our own clock.
		c.log.Debug("GetSystemDateAndTime failed; continuing with our clock", "device", host, "error", err)
	}
	res := AdoptResult{XAddr: c.XAddr()}
	if res.Info, err = c.GetDeviceInformation(ctx); err != nil {
		return AdoptResult{}, step("get device information", err)
	}
	ms, err := c.mediaServices(ctx)
	if err != nil {
		return AdoptResult{}, step("find media service", err)
	}
	var profiles []Profile
	if ms.Media2 != nil {
		profiles, err = c.getProfiles2(ctx, ms.Media2)
		switch {
		case err == nil:
			res.Media2, res.MediaXAddr = true, ms.Media2.String()
		case IsNotAuthorized(err) || errors.Is(err, ErrCertMismatch) || ctx.Err() != nil || ms.Media1 == nil:
			return AdoptResult{}, step("get profiles (Media2)", err)
		default:
			c.log.Warn("Media2 GetProfiles failed; falling back to Media1", "device", host, "error", err)
		}
	}
	if !res.Media2 {
		res.MediaXAddr = ms.Media1.String()
		if profiles, err = c.GetProfiles(ctx); err != nil {
			return AdoptResult{}, step("get profiles", err)
		}
	}
	var sources []string
	if !res.Media2 || ms.Media1 != nil {
		// The device's own channel order; profiles alone give it otherwise.
		if sources, err = c.GetVideoSources(ctx); err != nil {
			if fatal(err) {
				return AdoptResult{}, step("get video sources", err)
			}
			c.log.Debug("GetVideoSources failed; ordering channels by profile", "device", host, "error", err)
		}
	}
	all := GroupChannels(sources, profiles)
	if len(all) == 0 {
		return AdoptResult{}, step("get profiles", fmt.Errorf("%w (%d profiles, none with a video encoder)", ErrNoProfiles, len(profiles)))
	}
	res.Sources = len(all)
	selected, err := selectChannels(all, channels)
	if err != nil {
		return AdoptResult{}, step("select channels", err)
	}
	for _, ch := range selected {
		streams, err := c.adoptStreams(ctx, ms, res.Media2, ch.Profiles)
		if err != nil {
			return AdoptResult{}, step(fmt.Sprintf("get stream URI (channel %d)", ch.Number), err)
		}
		res.Channels = append(res.Channels, AdoptedChannel{Number: ch.Number, Name: ch.Name, Token: ch.SourceToken, Streams: streams})
	}
	res.Streams = res.Channels[0].Streams
	res.ClockOffset = c.ClockOffset()
	res.CertSHA256 = c.CertSHA256()
	return res, nil
}

// selectChannels picks the numbered channels (nil: all) in order.
func selectChannels(all []Channel, want []int) ([]Channel, error) {
	if want == nil {
		return all, nil
	}
	byNumber := map[int]Channel{}
	var have []string
	for _, ch := range all {
		byNumber[ch.Number] = ch
		have = append(have, strconv.Itoa(ch.Number))
	}
	var out []Channel
	for _, n := range want {
		ch, ok := byNumber[n]
		if !ok {
			return nil, fmt.Errorf("%w: channel %d (the device has %s)", ErrNoChannel, n, textutil.Prefix(strings.Join(have, ","), 200))
		}
		out = append(out, ch)
	}
	return out, nil
}

// adoptStreams asks one channel's stream URIs and names its streams.
func (c *Client) adoptStreams(ctx context.Context, ms MediaServices, media2 bool, profiles []Profile) ([]AdoptedStream, error) {
	var lastErr error
	var got []Profile
	var uris []StreamURI
	for _, p := range profiles {
		var u StreamURI
		var err error
		if media2 {
			u, err = c.getStreamURI2(ctx, ms.Media2, p.Token)
		} else {
			u, err = c.GetStreamURI(ctx, p.Token)
		}
		if err != nil {
			if IsNotAuthorized(err) || errors.Is(err, ErrUnreachable) || ctx.Err() != nil {
				return nil, err
			}
			c.log.Warn("skipping profile without a usable stream URI", "device", c.device.Host, "profile", p.Token, "error", err)
			lastErr = err
			continue
		}
		got = append(got, p)
		uris = append(uris, u)
	}
	if len(got) == 0 {
		if lastErr == nil {
			return nil, ErrNoProfiles
		}
		return nil, fmt.Errorf("%w: %w", ErrNoProfiles, lastErr)
	}
	names := make([]string, len(got))
	for i, p := range got {
		names[i] = p.Name
	}
	names = UniqueStreamNames(names)
	out := make([]AdoptedStream, len(got))
	for i, p := range got {
		out[i] = AdoptedStream{Name: names[i], Profile: p, URI: uris[i]}
	}
	return out, nil
}

const maxNameLen = 64

// NormaliseName turns a profile name into a stream name: lower case,
// [a-z0-9_-] only, every run of other characters collapsed to one '_',
// trimmed of '_' and '-' at both ends, at most 64 bytes. A name with
// nothing usable becomes "profile" (UniqueStreamNames numbers it instead).
func NormaliseName(s string) string {
	if n := normaliseName(s); n != "" {
		return n
	}
	return "profile"
}

func normaliseName(s string) string {
	var b strings.Builder
	pendingSep := false
	for _, r := range strings.ToLower(s) {
		ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-'
		if !ok {
			pendingSep = true
			continue
		}
		if pendingSep && b.Len() > 0 {
			b.WriteByte('_')
		}
		pendingSep = false
		b.WriteRune(r)
		if b.Len() >= maxNameLen {
			break
		}
	}
	out := b.String()
	if len(out) > maxNameLen {
		out = out[:maxNameLen]
	}
	return strings.Trim(out, "_-")
}

// UniqueStreamNames normalises the profile names of one device: an
// unusable name becomes "profile<N>" (N is its 1-based position) and
// duplicates get "_2", "_3", ... so every name is unique.
func UniqueStreamNames(profileNames []string) []string {
	out := make([]string, len(profileNames))
	taken := map[string]bool{}
	for i, s := range profileNames {
		base := normaliseName(s)
		if base == "" {
			base = "profile" + strconv.Itoa(i+1)
		}
		name := base
		for n := 2; taken[name]; n++ {
			suf := "_" + strconv.Itoa(n)
			b := base
			if len(b)+len(suf) > maxNameLen {
				b = strings.TrimRight(b[:maxNameLen-len(suf)], "_-")
			}
			name = b + suf
		}
		taken[name] = true
		out[i] = name
	}
	return out
}
