package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

func (b backend) CameraAdopt(ctx context.Context, c api.Caller, req apitype.CameraAdoptRequest) (*apitype.MutationResult, error) {
	d := b.d
	if err := req.Validate(); err != nil {
		return nil, err
	}
	xaddr, urn := req.XAddr, ""
	if req.DeviceURN != "" {
		want, ok := onvif.NormaliseURN(req.DeviceURN)
		if !ok {
			return nil, invalid("invalid device URN %q: use urn:uuid:... as shown by camwarden discover", req.DeviceURN)
		}
		var xa string
		var rerr error
		if err := d.do(ctx, func() { xa, rerr = d.disc.resolveDevice(want) }); err != nil {
			return nil, apitype.Errorf(apitype.CodeUnavailable, "daemon busy or stopping: %v", err)
		}
		if rerr != nil {
			return nil, rerr
		}
		urn, xaddr = want, xa
	}
	// Refuse a duplicate name before talking to the camera.
	if _, err := b.CameraShow(ctx, c, req.Name); err == nil {
		return nil, apitype.Errorf(apitype.CodeConflict, "camera %q already exists", req.Name)
	}
	// Refuse a device already adopted (by URN or address) before sending it
	// credentials; its serial is checked once it has answered.
	if why := d.adoptedAlready(ctx, store.ONVIFIdentity{URN: urn, XAddr: xaddr}, req.Name); why != "" {
		d.auditFailure(ctx, c, "camera.adopt", req.Name, "refused: already adopted")
		return nil, apitype.Errorf(apitype.CodeConflict, "%s", why)
	}
	channels, _ := apitype.ParseChannels(req.Channels) // valid: Validate parsed it
	// A recorder answers a few calls per channel: allow for 128 of them.
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	res, err := onvif.AdoptChannels(qctx, xaddr, onvif.ClientOptions{Username: req.User, Password: req.Password, Logger: d.log.Named("onvif")}, channels)
	cancel()
	if err != nil {
		d.auditFailure(ctx, c, "camera.adopt", req.Name, adoptCode(err))
		return nil, adoptError(err, xaddr)
	}
	if urn == "" {
		// Adopted by address: learn the URN from discovery if it saw the device.
		for _, dev := range d.snap.Load().devices {
			if xa, _ := deviceXAddr(dev); xa == xaddr {
				urn = dev.URN
			}
		}
	}
	identity := store.ONVIFIdentity{
		URN: urn, XAddr: xaddr, Manufacturer: res.Info.Manufacturer, Model: res.Info.Model,
		Firmware: res.Info.FirmwareVersion, Serial: res.Info.SerialNumber, HardwareID: res.Info.HardwareID,
		CertSHA256: res.CertSHA256}
	if why := d.adoptedAlready(ctx, identity, req.Name); why != "" {
		d.auditFailure(ctx, c, "camera.adopt", req.Name, "refused: already adopted")
		return nil, apitype.Errorf(apitype.CodeConflict, "%s", why)
	}
	if res.Recorder() {
		return b.adoptRecorder(ctx, c, req, identity, res)
	}
	cam := store.Camera{Name: req.Name, Username: req.User, ONVIF: &identity}
	for _, s := range res.Streams {
		if access.ValidName(s.Name) {
			cam.Streams = append(cam.Streams, store.Stream{Name: s.Name, URL: s.URI.URI, Transport: "auto"})
		}
	}
	if len(cam.Streams) == 0 {
		return nil, apitype.Errorf(apitype.CodeInvalid, "the camera at %s reported no usable media profiles", xaddr)
	}
	mres, err := d.mutate(ctx, mutation{
		caller: c, action: "camera.adopt", target: req.Name,
		args: map[string]string{"urn": urn, "xaddr": xaddr, "user": req.User, "streams": fmt.Sprint(len(cam.Streams)), "password": setOrEmpty(req.Password), "cert_sha256": res.CertSHA256},
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			if err := refuseAdoptedAgain(tx, identity, req.Name); err != nil {
				return err
			}
			return tx.CreateCamera(cam, req.Password)
		},
	})
	if err != nil {
		return nil, err
	}
	return b.cameraResult(ctx, mres, req.Name)
}

// adoptRecorder stores a recorder once (its credentials) and one camera per
// selected channel, NAME-chNN, each stream on demand: recorders limit
// concurrent streams, so a channel is pulled only while someone reads it.
func (b backend) adoptRecorder(ctx context.Context, c api.Caller, req apitype.CameraAdoptRequest, identity store.ONVIFIdentity, res onvif.AdoptResult) (*apitype.MutationResult, error) {
	d := b.d
	var cams []store.Camera
	for _, ch := range res.Channels {
		name := req.Name + onvif.ChannelSuffix(ch.Number)
		if !access.ValidName(name) {
			return nil, invalid("camera name %q is too long for the recorder's channels (NAME-chNN, at most 64 characters)", name)
		}
		id := identity
		cam := store.Camera{Name: name, Username: req.User, ONVIF: &id, Recorder: req.Name, Channel: ch.Number, ChannelName: ch.Name}
		for _, s := range ch.Streams {
			if access.ValidName(s.Name) {
				cam.Streams = append(cam.Streams, store.Stream{Name: s.Name, URL: s.URI.URI, Transport: "auto", OnDemand: true})
			}
		}
		if len(cam.Streams) == 0 {
			return nil, apitype.Errorf(apitype.CodeInvalid, "channel %d of the recorder at %s reported no usable media profiles", ch.Number, identity.XAddr)
		}
		cams = append(cams, cam)
	}
	numbers := make([]string, len(cams))
	for i, cam := range cams {
		numbers[i] = fmt.Sprint(cam.Channel)
	}
	mres, err := d.mutate(ctx, mutation{
		caller: c, action: "camera.adopt", target: req.Name,
		args: map[string]string{"urn": identity.URN, "xaddr": identity.XAddr, "user": req.User, "recorder_channels": fmt.Sprint(res.Sources),
			"channels": strings.Join(numbers, ","), "password": setOrEmpty(req.Password), "cert_sha256": res.CertSHA256, "media2": fmt.Sprint(res.Media2)},
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			if err := refuseAdoptedAgain(tx, identity, req.Name); err != nil {
				return err
			}
			if err := tx.CreateRecorder(req.Name, req.User, req.Password); err != nil {
				if errors.Is(err, store.ErrExists) {
					return apitype.Errorf(apitype.CodeConflict, "recorder %q already exists", req.Name)
				}
				return err
			}
			for _, cam := range cams {
				if err := tx.CreateCamera(cam, ""); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	mres.Changed = true
	mres.Message = fmt.Sprintf("recorder %s: %d of its %d channels adopted as cameras %s ... %s (streams on demand)",
		req.Name, len(cams), res.Sources, cams[0].Name, cams[len(cams)-1].Name)
	for _, cam := range cams {
		if v, err := b.CameraShow(ctx, api.Caller{}, cam.Name); err == nil {
			mres.Cameras = append(mres.Cameras, *v)
		}
	}
	return &mres, nil
}

func adoptCode(err error) string {
	switch {
	case errors.Is(err, onvif.ErrUnauthorized):
		return "failed: unauthorized"
	case errors.Is(err, onvif.ErrUnreachable):
		return "failed: unreachable"
	case errors.Is(err, onvif.ErrNoProfiles):
		return "failed: no_profiles"
	case errors.Is(err, onvif.ErrNoChannel):
		return "failed: no_channel"
	}
	return "failed: error"
}

func adoptError(err error, xaddr string) error {
	switch {
	case errors.Is(err, onvif.ErrUnauthorized):
		return apitype.Errorf(apitype.CodeUnauthorized, "the camera at %s refused the credentials (check the user and password; a camera clock far off is compensated)", xaddr)
	case errors.Is(err, onvif.ErrUnreachable):
		return apitype.Errorf(apitype.CodeUnavailable, "cannot reach the camera at %s: %v", xaddr, err)
	case errors.Is(err, onvif.ErrNoProfiles):
		return apitype.Errorf(apitype.CodeInvalid, "the camera at %s has no media profiles to stream", xaddr)
	case errors.Is(err, onvif.ErrNoChannel):
		return apitype.Errorf(apitype.CodeInvalid, "--channels: %v", errors.Unwrap(err))
	}
	return apitype.Errorf(apitype.CodeUnavailable, "querying the camera at %s failed: %v", xaddr, err)
}

// adoptedAlready reads the adopted cameras and says why id is one of them
// ("" when it is not).
func (d *Daemon) adoptedAlready(ctx context.Context, id store.ONVIFIdentity, name string) string {
	var cams []store.Camera
	if err := d.store.View(ctx, func(tx *store.Tx) (err error) { cams, err = tx.Cameras(); return }); err != nil {
		return "" // the store's error surfaces in the adoption itself
	}
	return adoptedAlready(cams, id, name)
}

// refuseAdoptedAgain is the same check inside the adoption's transaction,
// so two concurrent adoptions of one device cannot both succeed.
func refuseAdoptedAgain(tx *store.Tx, id store.ONVIFIdentity, name string) error {
	cams, err := tx.Cameras()
	if err != nil {
		return err
	}
	if why := adoptedAlready(cams, id, name); why != "" {
		return apitype.Errorf(apitype.CodeConflict, "%s", why)
	}
	return nil
}
