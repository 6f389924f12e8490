package api

import (
	"slices"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// sanitize strips credentials from every URL of a response before it is
// written, as a second line behind the backend (which should never put them
// there). It copies rather than edits: the backend may hand out shared,
// immutable snapshots.
func sanitize(v any) any {
	switch t := v.(type) {
	case *apitype.Camera:
		c := cleanCamera(*t)
		return &c
	case *apitype.CameraList:
		l := *t
		l.Cameras = make([]apitype.Camera, len(t.Cameras))
		for i, c := range t.Cameras {
			l.Cameras[i] = cleanCamera(c)
		}
		return &l
	case *apitype.MutationResult:
		m := *t
		if m.Camera != nil {
			c := cleanCamera(*m.Camera)
			m.Camera = &c
		}
		m.Message = apitype.RedactURLsInText(m.Message)
		return &m
	case *apitype.DiscoverResult:
		d := *t
		d.Devices = make([]apitype.Device, len(t.Devices))
		for i, dev := range t.Devices {
			dev.XAddrs = stripAll(dev.XAddrs)
			d.Devices[i] = dev
		}
		return &d
	case *apitype.StreamList:
		l := *t
		l.Streams = slices.Clone(t.Streams)
		for i := range l.Streams {
			l.Streams[i].LastError = apitype.RedactURLsInText(l.Streams[i].LastError)
		}
		return &l
	}
	return v
}

func cleanCamera(c apitype.Camera) apitype.Camera {
	c.Streams = slices.Clone(c.Streams)
	for i := range c.Streams {
		c.Streams[i].URL = apitype.StripUserinfo(c.Streams[i].URL)
	}
	if c.ONVIF != nil {
		o := *c.ONVIF
		o.XAddr = apitype.StripUserinfo(o.XAddr)
		c.ONVIF = &o
	}
	return c
}

func stripAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = apitype.StripUserinfo(u)
	}
	return out
}
