package onvif

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AdoptedStream is one profile the daemon can pull, named for the RTSP path.
type AdoptedStream struct {
	Name    string // normalised, unique within the device
	Profile Profile
	URI     StreamURI
}

// AdoptResult is everything the daemon needs to add an ONVIF camera.
type AdoptResult struct {
	Info        DeviceInfo
	XAddr       string // device service
	MediaXAddr  string // media service, host fixed up
	ClockOffset time.Duration
	Streams     []AdoptedStream
	// CertSHA256 is the TLS leaf certificate the device presented (https
	// only): every call of the adoption saw this same certificate.
	CertSHA256 string
}

// Adopt queries a camera in one go: date/time (clock offset), device
// information, media service, profiles and each video profile's stream URI.
// Failures wrap ErrUnauthorized (wrong credentials), ErrUnreachable (no
// answer) or ErrNoProfiles (nothing to stream), with the step that failed.
// A profile whose stream URI cannot be had is skipped; only if none is left
// is that an error.
func Adopt(ctx context.Context, xaddr string, opts ClientOptions) (AdoptResult, error) {
	c, err := NewClient(xaddr, opts)
	if err != nil {
		return AdoptResult{}, err
	}
	host := c.device.Host
	step := func(what string, err error) error {
		return fmt.Errorf("adopt %s: %s: %w", host, what, err)
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
	if res.MediaXAddr, err = c.MediaXAddr(ctx); err != nil {
		return AdoptResult{}, step("find media service", err)
	}
	profiles, err := c.GetProfiles(ctx)
	if err != nil {
		return AdoptResult{}, step("get profiles", err)
	}
	var video []Profile
	for _, p := range profiles {
		if p.HasVideo {
			video = append(video, p)
		}
	}
	if len(video) == 0 {
		return AdoptResult{}, step("get profiles", fmt.Errorf("%w (%d profiles, none with a video encoder)", ErrNoProfiles, len(profiles)))
	}
	var lastErr error
	var got []Profile
	var uris []StreamURI
	for _, p := range video {
		u, err := c.GetStreamURI(ctx, p.Token)
		if err != nil {
			if IsNotAuthorized(err) || errors.Is(err, ErrUnreachable) || ctx.Err() != nil {
				return AdoptResult{}, step("get stream URI", err)
			}
			c.log.Warn("skipping profile without a usable stream URI", "device", host, "profile", p.Token, "error", err)
			lastErr = err
			continue
		}
		got = append(got, p)
		uris = append(uris, u)
	}
	if len(got) == 0 {
		return AdoptResult{}, step("get stream URI", fmt.Errorf("%w: %w", ErrNoProfiles, lastErr))
	}
	names := make([]string, len(got))
	for i, p := range got {
		names[i] = p.Name
	}
	names = UniqueStreamNames(names)
	for i, p := range got {
		res.Streams = append(res.Streams, AdoptedStream{Name: names[i], Profile: p, URI: uris[i]})
	}
	res.ClockOffset = c.ClockOffset()
	res.CertSHA256 = c.CertSHA256()
	return res, nil
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
