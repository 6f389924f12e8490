package stream

// The RTMP source: a camera or encoder whose stream is pulled over RTMP
// (rtmp://, rtmps://) with gortmplib, its H.264 and AAC tracks
// re-packetised as RTP and served like any camera's.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// isRTMP reports whether a stream URL is pulled over RTMP.
func isRTMP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (strings.EqualFold(u.Scheme, "rtmp") || strings.EqualFold(u.Scheme, "rtmps"))
}

func randomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// splitRTMPPath reads rtmp://HOST/APP/STREAM as ffmpeg and OBS do (the
// application is the first path element, the stream key the rest) and puts
// it in the form gortmplib takes: the path is the application and the
// fragment the stream key.
func splitRTMPPath(u *url.URL) {
	if u.Fragment != "" {
		return // already APP#KEY
	}
	app, key, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok {
		return
	}
	u.Path, u.RawPath, u.Fragment = "/"+app, "", key
}

// rtpTime converts a presentation time to an RTP timestamp at clock Hz.
func rtpTime(base uint32, pts time.Duration, clock int) uint32 {
	return base + uint32(pts.Seconds()*float64(clock)+0.5)
}

// rtmpOnce pulls the stream once over RTMP until it fails.
func (p *path) rtmpOnce(ctx context.Context) (liveAt time.Time, err error) {
	sp := p.spec
	u, err := url.Parse(sp.URL)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid camera URL %s", apitype.RedactURL(sp.URL))
	}
	user, pass, err := sp.credentials(ctx, u)
	if err != nil {
		return time.Time{}, err
	}
	defer func() {
		if err != nil && !errors.Is(err, errIdle) { // errIdle is no failure: keep it recognisable
			err = errors.New(scrub(err.Error(), pass))
		}
	}()
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	splitRTMPPath(u)
	c := &gortmplib.Client{URL: u}
	dctx, cancel := context.WithTimeout(ctx, p.s.cfg.ReadTimeout)
	err = c.Initialize(dctx)
	cancel()
	if err != nil {
		return time.Time{}, fmt.Errorf("connect %s: %w", apitype.RedactURL(sp.URL), err)
	}
	defer c.Close()
	stopWatch := context.AfterFunc(ctx, c.Close)
	defer stopWatch()

	_ = c.NetConn().SetReadDeadline(time.Now().Add(p.s.cfg.ReadTimeout))
	r := &gortmplib.Reader{Conn: c}
	if err := r.Initialize(); err != nil {
		return time.Time{}, fmt.Errorf("read RTMP tracks: %w", err)
	}

	desc := &description.Session{}
	var skipped []string
	for _, tr := range r.Tracks() {
		switch codec := tr.Codec.(type) {
		case *codecs.H264:
			f := &format.H264{PayloadTyp: 96, SPS: codec.SPS, PPS: codec.PPS, PacketizationMode: 1}
			m := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
			enc, err := f.CreateEncoder()
			if err != nil {
				return time.Time{}, fmt.Errorf("H.264 track: %w", err)
			}
			desc.Medias = append(desc.Medias, m)
			base := randomUint32()
			r.OnDataH264(tr, func(pts, _ time.Duration, au [][]byte) {
				pkts, err := enc.Encode(au)
				if err != nil {
					return
				}
				ts := rtpTime(base, pts, f.ClockRate())
				for _, pkt := range pkts {
					pkt.Timestamp = ts
					p.ingest(m, pkt)
				}
			})
		case *codecs.MPEG4Audio:
			f := &format.MPEG4Audio{PayloadTyp: 97, Config: codec.Config, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
			m := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}
			enc, err := f.CreateEncoder()
			if err != nil {
				return time.Time{}, fmt.Errorf("AAC track: %w", err)
			}
			desc.Medias = append(desc.Medias, m)
			base := randomUint32()
			r.OnDataMPEG4Audio(tr, func(pts time.Duration, au []byte) {
				pkts, err := enc.Encode([][]byte{au})
				if err != nil {
					return
				}
				ts := rtpTime(base, pts, f.ClockRate())
				for _, pkt := range pkts {
					pkt.Timestamp = ts
					p.ingest(m, pkt)
				}
			})
		default:
			skipped = append(skipped, fmt.Sprintf("%T", tr.Codec))
		}
	}
	if len(desc.Medias) == 0 {
		return time.Time{}, fmt.Errorf("RTMP stream has no H.264 or AAC track (it has %s)", strings.Join(skipped, ", "))
	}
	for i, m := range desc.Medias {
		m.Control = fmt.Sprintf("trackID=%d", i)
	}
	if err := p.goLive(desc); err != nil {
		return time.Time{}, err
	}
	liveAt = time.Now()
	p.markLive()
	if len(skipped) > 0 {
		p.s.log.Warn("RTMP tracks not served", "path", p.name, "codecs", strings.Join(skipped, ", "))
	}
	p.s.log.Info("camera stream live", "path", p.name, "url", displayURL(sp), "transport", "rtmp")

	readErr := make(chan error, 1)
	go func() {
		for {
			_ = c.NetConn().SetReadDeadline(time.Now().Add(p.s.cfg.ReadTimeout))
			if err := r.Read(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	return liveAt, p.serveLive(ctx, liveAt, readErr)
}

// serveLive waits while a live source runs: until it fails (errc), the
// path stops, the source misbehaves, or an on-demand source loses its
// readers (errIdle).
func (p *path) serveLive(ctx context.Context, liveAt time.Time, errc <-chan error) error {
	idle := &idleWatch{p: p}
	defer idle.stop()
	idle.check()
	healthTick := time.NewTicker(badInputWindow / 2)
	defer healthTick.Stop()
	for {
		select {
		case now := <-healthTick.C:
			if err := p.checkSource(now); err != nil {
				return fmt.Errorf("%v; reconnecting", err)
			}
		case err := <-errc:
			if err == nil {
				err = errors.New("connection closed")
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-p.notify:
			idle.check()
		case <-idle.C:
			if idle.fired() {
				return errIdle
			}
		}
	}
}
