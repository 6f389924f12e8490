package stream

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// TrackStatus is one media of a stream: what the camera sends on it and
// what we serve.
type TrackStatus struct {
	Media      string // "video", "audio", "application"
	Codec      string // H264, H265, MJPEG, AAC, AAC-LATM, PCMU, PCMA, G722, G726, Opus, L16, ONVIF metadata, ...
	RTPMap     string // the camera's a=rtpmap value (encoding/clock[/channels])
	ClockRate  int
	SampleRate int // audio
	Channels   int // audio
	Width      int // video, from the SPS for H.264/H.265
	Height     int
	// DeclaredFPS is the frame rate the H.264/H.265 SPS states (0 if it states none).
	DeclaredFPS float64
	FPS         float64 // measured: marker bits per second (video)
	BitrateBps  float64
	Packets     uint64 // served
	// BackChannel tracks (ONVIF audio output to the camera) are listed but not restreamed.
	BackChannel bool
	// Repacketised: the camera's packets exceed our packet size and are split again.
	Repacketised bool
	Oversized    uint64 // packets dropped: too large and not splittable for this codec
	Malformed    uint64 // packets dropped: not a valid payload for the announced codec
	// Problem says what is wrong with what the camera sends on this track (with its first bytes), "" if nothing.
	Problem string
}

// silentTrackAfter: a live track that got nothing for this long is reported.
const silentTrackAfter = 5 * time.Second

// trackStats is the ingest side's account of one source media; guarded by path.mu.
type trackStats struct {
	media       string
	backChannel bool
	formats     []format.Format
	win         rateWindow
	packets     uint64
	malformed   uint64
	firstBad    []byte // first bytes of the first malformed payload
	lastBad     time.Time
	lastGood    time.Time
}

// codecInfo names a format the way admins know it and returns its audio parameters.
func codecInfo(f format.Format) (name string, sampleRate, channels int) {
	switch t := f.(type) {
	case *format.H264:
		return "H264", 0, 0
	case *format.H265:
		return "H265", 0, 0
	case *format.MJPEG:
		return "MJPEG", 0, 0
	case *format.MPEG4Audio:
		if t.Config != nil {
			return "AAC", t.Config.SampleRate, ascChannels(t.Config)
		}
		return "AAC", 0, 0
	case *format.MPEG4AudioLATM:
		if c := t.StreamMuxConfig; c != nil && len(c.Programs) > 0 && len(c.Programs[0].Layers) > 0 &&
			c.Programs[0].Layers[0].AudioSpecificConfig != nil {
			asc := c.Programs[0].Layers[0].AudioSpecificConfig
			return "AAC-LATM", asc.SampleRate, ascChannels(asc)
		}
		return "AAC-LATM", 0, 0
	case *format.G711:
		if t.MULaw {
			return "PCMU", t.SampleRate, t.ChannelCount
		}
		return "PCMA", t.SampleRate, t.ChannelCount
	case *format.G722:
		return "G722", 16000, 1 // RFC 3551: 16 kHz audio on an 8 kHz RTP clock
	case *format.G726:
		return "G726", 8000, 1
	case *format.Opus:
		return "Opus", 48000, t.ChannelCount
	case *format.LPCM:
		return fmt.Sprintf("L%d", t.BitDepth), t.SampleRate, t.ChannelCount
	case *format.Generic:
		enc, _, _ := strings.Cut(t.RTPMa, "/")
		if strings.EqualFold(enc, "vnd.onvif.metadata") {
			return "ONVIF metadata", 0, 0
		}
		if enc == "" {
			return "generic", 0, 0
		}
		return enc, 0, 0
	}
	return codecName(f), 0, 0
}

// ascChannels is the channel count of an AAC config (its ChannelCount
// field is deprecated in favour of ChannelConfig).
func ascChannels(c *mpeg4audio.AudioSpecificConfig) int {
	switch {
	case c.ChannelConfig >= 1 && c.ChannelConfig <= 6:
		return int(c.ChannelConfig)
	case c.ChannelConfig == 7:
		return 8
	}
	return 0
}

func mediaTypeName(m *description.Media) string {
	if m.Type == "" {
		return "unknown"
	}
	return string(m.Type)
}

func newTrackStats(m *description.Media, start time.Time) *trackStats {
	return &trackStats{media: mediaTypeName(m), backChannel: m.IsBackChannel, formats: m.Formats, win: rateWindow{start: start}}
}

// badPayload records a payload that is not valid for the track's codec.
func (t *trackStats) badPayload(payload []byte, now time.Time) {
	t.malformed++
	t.lastBad = now
	if t.firstBad == nil {
		t.firstBad = append([]byte{}, payload[:min(len(payload), 16)]...)
	}
}

// status renders the track; ffs are the track's formats' forwarders (nil for a back channel).
func (t *trackStats) status(now time.Time, ffs map[uint8]*formatFwd, live bool) TrackStatus {
	ts := TrackStatus{Media: t.media, BackChannel: t.backChannel, Packets: t.packets, Malformed: t.malformed}
	if len(t.formats) > 0 {
		f := t.formats[0]
		ts.Codec, ts.SampleRate, ts.Channels = codecInfo(f)
		ts.RTPMap = f.RTPMap()
		ts.ClockRate = f.ClockRate()
		if ff := ffs[f.PayloadType()]; ff != nil {
			ts.Width, ts.Height, ts.DeclaredFPS = ff.resolution()
		}
	}
	for _, ff := range ffs {
		ts.Oversized += ff.oversized
		ts.Malformed += ff.malformed
		ts.Repacketised = ts.Repacketised || ff.rp != nil
	}
	if live {
		ts.BitrateBps, ts.FPS = t.win.rates(now)
	}
	switch {
	case ts.Oversized > 0:
		ts.Problem = fmt.Sprintf("%d packets larger than the server's packet size dropped: %s cannot be re-packetised here", ts.Oversized, ts.Codec)
	case t.malformed > 0:
		ts.Problem = fmt.Sprintf("%d packets are not valid %s (first bytes: %s)", t.malformed, ts.Codec, hex.EncodeToString(t.firstBad))
	case live && !t.backChannel && t.packets == 0 && now.Sub(t.win.start) > silentTrackAfter:
		ts.Problem = "no packets since the stream went live: the camera announces this track but does not send it"
	}
	return ts
}

// validPayload reports whether an RTP payload can be of the format's codec:
// a cheap check of the headers RFCs define, so that a camera sending
// something else than it announced is noticed.
func validPayload(f format.Format, p []byte) bool {
	switch t := f.(type) {
	case *format.H264:
		if len(p) < 1 || p[0]&0x80 != 0 {
			return false
		}
		switch n := p[0] & 0x1f; {
		case n == 0 || n >= 30:
			return false
		case n == 28 || n == 29:
			return len(p) >= 2
		}
		return true
	case *format.H265:
		if len(p) < 2 || p[0]&0x80 != 0 || p[1]&0x07 == 0 {
			return false
		}
		n := (p[0] >> 1) & 0x3f
		return n <= 40 || (n >= 48 && n <= 50)
	case *format.MJPEG:
		return len(p) >= 8 // RFC 2435 main header
	case *format.MPEG4Audio:
		if t.SizeLength == 0 {
			return len(p) > 0
		}
		if len(p) < 2 {
			return false
		}
		bits := int(p[0])<<8 | int(p[1])
		return bits > 0 && 2+(bits+7)/8 <= len(p)
	case *format.LPCM:
		return len(p) > 0 && len(p)%max(1, t.BitDepth/8*t.ChannelCount) == 0
	}
	return len(p) > 0
}
