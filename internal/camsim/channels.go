package camsim

import (
	"fmt"

	"github.com/camwarden/camwarden/internal/camsim/media"
)

// channel is one video source of a camera: a camera has one ("vs0"), a
// recorder one per channel ("vs1".."vsN", named "Channel NN").
type channel struct {
	number   int // 1-based
	token    string
	name     string
	profiles []*simProfile
}

// simProfile is one media profile of a channel. Its token is also the
// RTSP path and the media server's profile name.
type simProfile struct {
	token string
	name  string // the ONVIF profile name ("main", "sub")
	ch    *channel
	media media.Profile
	h265  bool // reported as H.265, through Media2 only
}

func buildChannels(opts Options) []*channel {
	n, recorder := opts.RecorderChannels, opts.RecorderChannels > 0
	if !recorder {
		n = 1
	}
	var out []*channel
	for i := 1; i <= n; i++ {
		ch := &channel{number: i, token: "vs0", name: "VideoSourceConfig"}
		if recorder {
			ch.token = fmt.Sprintf("vs%d", i)
			ch.name = fmt.Sprintf("Channel %02d", i)
		}
		for j, base := range opts.Profiles {
			p := &simProfile{token: base.Name, name: base.Name, ch: ch, media: base, h265: opts.Media2H265 && j == 0}
			if recorder {
				p.token = fmt.Sprintf("ch%02d_%s", i, base.Name)
			}
			p.media.Name = p.token
			ch.profiles = append(ch.profiles, p)
		}
		out = append(out, ch)
	}
	return out
}

// mediaProfiles is what the RTSP server serves: every channel's profiles.
func (s *Sim) mediaProfiles() []media.Profile {
	var out []media.Profile
	for _, ch := range s.channels {
		for _, p := range ch.profiles {
			out = append(out, p.media)
		}
	}
	return out
}

func (s *Sim) profileByToken(token string) *simProfile {
	for _, ch := range s.channels {
		for _, p := range ch.profiles {
			if p.token == token {
				return p
			}
		}
	}
	return nil
}

// offersMedia1 and offersMedia2 say which media services the device has.
func (s *Sim) offersMedia1() bool { return s.opts.MediaServices != Media2Only }
func (s *Sim) offersMedia2() bool { return s.opts.MediaServices != Media1Only }

// ChannelInfo describes one video source of a simulated device.
type ChannelInfo struct {
	Number   int
	Token    string
	Name     string
	Profiles []string // profile tokens, which are also the RTSP paths
}

// Channels lists the device's video sources (one for a camera).
func (c *Camera) Channels() []ChannelInfo {
	var out []ChannelInfo
	for _, ch := range c.sim.channels {
		ci := ChannelInfo{Number: ch.number, Token: ch.token, Name: ch.name}
		for _, p := range ch.profiles {
			ci.Profiles = append(ci.Profiles, p.token)
		}
		out = append(out, ci)
	}
	return out
}
