package onvif

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"

	"github.com/use-go/onvif/media"
)

// A network recorder (NVR/DVR) is one ONVIF device with many video
// sources, one per channel, each with its own profiles.

const (
	// MaxChannels bounds the channels of one device: a recorder claiming
	// more is cut to the first MaxChannels.
	MaxChannels = 128
	// maxChannelProfiles bounds the profiles adopted per channel.
	maxChannelProfiles = 16
)

// ErrNoChannel: a channel asked for does not exist on the device.
var ErrNoChannel = errors.New("no such channel on the device")

// Channel is one video source of a device and its video profiles.
// Number is 1-based, in the order the device lists its video sources.
type Channel struct {
	Number      int
	SourceToken string
	Name        string // the source configuration's name, or "Channel NN"
	Profiles    []Profile
}

// GetVideoSources lists the Media1 video source tokens, without
// duplicates, at most MaxChannels.
func (c *Client) GetVideoSources(ctx context.Context) ([]string, error) {
	mu, err := c.mediaURL(ctx)
	if err != nil {
		return nil, err
	}
	var raw []byte
	if err := c.callRaw(ctx, mu, "GetVideoSources", mediaActionBase+"GetVideoSources", media.GetVideoSources{}, &raw); err != nil {
		return nil, err
	}
	ts, err := parseVideoSources(raw)
	if err != nil {
		return nil, fmt.Errorf("onvif: GetVideoSources on %s: %w", c.device.Host, err)
	}
	return ts, nil
}

// parseVideoSources decodes a GetVideoSourcesResponse by local names: the
// tokens in order, empty, overlong and repeated ones dropped.
func parseVideoSources(data []byte) ([]string, error) {
	var r struct {
		Sources []struct {
			Token string `xml:"token,attr"`
		} `xml:"VideoSources"`
	}
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range r.Sources {
		if len(out) >= MaxChannels {
			break
		}
		t := cleanField(s.Token)
		if t == "" || len(t) > maxSourceTokenLen || seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, nil
}

// GroupChannels sorts video profiles into channels. Channel N is the Nth
// of sources (the device's video sources, in its order); a source no
// profile uses keeps its number but is left out. Profiles naming a source
// the list lacks (or when the list is empty) form further channels in
// order of first appearance. Profiles naming no source belong to the
// device's only source when it has one (many cameras omit the source in
// some profiles), else they share a channel of their own.
// At most MaxChannels channels and maxChannelProfiles profiles each.
func GroupChannels(sources []string, profiles []Profile) []Channel {
	number := map[string]int{}
	order := []string{}
	for _, s := range sources {
		if _, dup := number[s]; dup || len(order) >= MaxChannels {
			continue
		}
		order = append(order, s)
		number[s] = len(order)
	}
	distinct := map[string]bool{}
	for _, s := range order {
		distinct[s] = true
	}
	for _, p := range profiles {
		if p.HasVideo && p.SourceToken != "" {
			distinct[p.SourceToken] = true
		}
	}
	only := ""
	if len(distinct) == 1 {
		for s := range distinct {
			only = s
		}
	}
	byToken := map[string]*Channel{}
	for _, p := range profiles {
		if !p.HasVideo {
			continue
		}
		if p.SourceToken == "" {
			p.SourceToken = only
		}
		n, ok := number[p.SourceToken]
		if !ok {
			if len(order) >= MaxChannels {
				continue
			}
			order = append(order, p.SourceToken)
			n = len(order)
			number[p.SourceToken] = n
		}
		ch := byToken[p.SourceToken]
		if ch == nil {
			ch = &Channel{Number: n, SourceToken: p.SourceToken}
			byToken[p.SourceToken] = ch
		}
		if ch.Name == "" && p.SourceName != "" {
			ch.Name = p.SourceName
		}
		if len(ch.Profiles) < maxChannelProfiles {
			ch.Profiles = append(ch.Profiles, p)
		}
	}
	var out []Channel
	for _, tok := range order {
		if ch := byToken[tok]; ch != nil {
			if ch.Name == "" {
				ch.Name = "Channel " + twoDigits(ch.Number)
			}
			out = append(out, *ch)
		}
	}
	return out
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// ChannelSuffix is the name suffix of channel n's camera: "-ch01".
func ChannelSuffix(n int) string { return "-ch" + twoDigits(n) }
