package daemon

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

func (b backend) Status(ctx context.Context, c api.Caller) (*apitype.Status, error) {
	d := b.d
	cfg := d.snap.Load().cfg
	st := &apitype.Status{
		Version: d.opts.Version, PID: os.Getpid(), StartedAt: d.started,
		RTSPAddr: d.streams.Addr().String(), StateDir: cfg.StateDir,
		DiscoveryInterfaces: cfg.DiscoveryInterfaces, KeyID: d.store.KeyID(),
	}
	if a := d.streams.RTSPSAddr(); a != nil && d.cert != nil {
		st.RTSPSAddr, st.RTSPSFingerprint, st.RTSPSCertGenerated = a.String(), d.cert.Fingerprint(), d.cert.Generated()
	}
	err := d.store.View(ctx, func(tx *store.Tx) error {
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		st.Users, st.Groups = len(pd.Users), len(pd.Groups)
		st.SchemaVersion = tx.SchemaVersion()
		cams, err := tx.Cameras()
		st.Cameras = len(cams)
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	// Opening every sealed blob is microseconds each; done on every status
	// so that a secret set again disappears from the list at once.
	damaged, err := d.store.CheckSealed(ctx)
	if err != nil {
		return nil, toAPIError(err)
	}
	for _, x := range damaged {
		st.Damaged = append(st.Damaged, apitype.DamagedRecord{Kind: x.Kind, Name: x.Name, Field: x.Field, Reason: x.Reason})
	}
	for _, s := range d.streams.Streams() {
		st.Streams++
		if s.State == "live" {
			st.StreamsUp++
		}
		st.Readers += s.Readers
	}
	st.Sessions = len(d.streams.Sessions())
	return st, nil
}

func (b backend) Discover(ctx context.Context, c api.Caller, req apitype.DiscoverRequest) (*apitype.DiscoverResult, error) {
	d := b.d
	cfg := d.snap.Load().cfg
	if err := req.Validate(); err != nil {
		return nil, err
	}
	window := time.Duration(req.TimeoutMS) * time.Millisecond
	opts := onvif.ProbeOptions{Interfaces: cfg.DiscoveryInterfaces, Targets: req.Targets, Window: window, Logger: d.log.Named("discovery")}
	if discoveryOff(cfg) {
		opts.Interfaces = []string{"none"}
	}
	devs, err := onvif.Probe(ctx, opts)
	if err != nil {
		return nil, apitype.Errorf(apitype.CodeUnavailable, "discovery failed: %v", err)
	}
	adopted := map[string]string{}
	_ = d.store.View(ctx, func(tx *store.Tx) error {
		cams, err := tx.Cameras()
		for _, cam := range cams {
			if cam.ONVIF != nil && cam.ONVIF.URN != "" {
				adopted[cam.ONVIF.URN] = cam.Name
				if cam.Recorder != "" {
					adopted[cam.ONVIF.URN] = cam.Recorder // its channels are NAME-chNN
				}
			}
		}
		return err
	})
	var all []onvif.Device
	if err := d.do(ctx, func() {
		d.disc.merge(devs, "discover")
		all = sortedDevices(d.snap.Load().devices)
		d.disc.showDevices(all)
	}); err != nil {
		return nil, toAPIError(err)
	}
	res := &apitype.DiscoverResult{Devices: []apitype.Device{}}
	for _, dev := range all {
		xa, why := deviceXAddr(dev)
		addrs := dev.Addrs
		if len(addrs) == 0 {
			addrs = nonEmpty(dev.Addr)
		}
		res.Devices = append(res.Devices, apitype.Device{
			URN: dev.URN, Name: dev.Name, Hardware: dev.Hardware, XAddrs: dev.XAddrs,
			Addresses: addrs, Interfaces: dev.Interfaces, AdoptedAs: adopted[dev.URN],
			DeviceXAddr: xa, Ambiguous: why,
		})
	}
	return res, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func (b backend) StreamList(ctx context.Context, c api.Caller) (*apitype.StreamList, error) {
	out := &apitype.StreamList{Streams: []apitype.StreamStatus{}}
	pending := map[string]*apitype.PendingMove{}
	sources := map[string]apitype.SourceKind{}
	if err := b.d.store.View(ctx, func(tx *store.Tx) error {
		cams, err := tx.Cameras()
		for _, c := range cams {
			if c.PendingMove != nil {
				pending[c.Name] = pendingMoveView(c.Name, c.PendingMove)
			}
			for _, s := range c.Streams {
				sources[c.Name+"/"+s.Name] = apitype.StreamSource(s.URL, s.Exec)
			}
		}
		return err
	}); err != nil {
		return nil, toAPIError(err)
	}
	for _, s := range b.d.streams.Streams() {
		out.Streams = append(out.Streams, apitype.StreamStatus{
			Camera: s.Camera, Stream: s.Stream, Path: strings.TrimPrefix(s.Path, "/"), State: s.State,
			Codec: strings.Join(s.Codecs, ","), Width: s.Width, Height: s.Height,
			BitrateKbps: s.BitrateBps / 1000, FPS: s.FPS, PacketsLost: s.PacketsLost,
			Readers: s.Readers, Since: s.Since, LastError: s.LastError, Published: s.Published,
			SourcePID: s.SourcePID,
		})
		if !s.Published {
			out.Streams[len(out.Streams)-1].Source = string(sources[strings.TrimPrefix(s.Path, "/")])
		}
		if !s.Published {
			out.Streams[len(out.Streams)-1].PendingMove = pending[s.Camera]
		}
		for _, t := range s.Tracks {
			out.Streams[len(out.Streams)-1].Tracks = append(out.Streams[len(out.Streams)-1].Tracks, apitype.Track{
				Media: t.Media, Codec: t.Codec, RTPMap: t.RTPMap, ClockRate: t.ClockRate,
				SampleRate: t.SampleRate, Channels: t.Channels, Width: t.Width, Height: t.Height,
				FPS: t.FPS, SPSFPS: t.DeclaredFPS, BitrateKbps: t.BitrateBps / 1000,
				BackChannel: t.BackChannel, Repacketised: t.Repacketised, Dropped: t.Oversized + t.Malformed, Problem: t.Problem,
			})
		}
	}
	return out, nil
}
