package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/store"
)

func cameraView(c store.Camera) apitype.Camera {
	out := apitype.Camera{Name: c.Name, User: c.Username, HasPassword: c.HasPassword, AllowBasic: c.AllowBasic,
		Created: c.Created, Changed: c.Changed, Streams: []apitype.Stream{}, PendingMove: pendingMoveView(c.Name, c.PendingMove),
		Recorder: c.Recorder, Channel: c.Channel, ChannelName: c.ChannelName}
	if c.ONVIF != nil {
		out.ONVIF = &apitype.ONVIFIdentity{URN: c.ONVIF.URN, XAddr: c.ONVIF.XAddr, Manufacturer: c.ONVIF.Manufacturer,
			Model: c.ONVIF.Model, Firmware: c.ONVIF.Firmware, Serial: c.ONVIF.Serial, Hardware: c.ONVIF.HardwareID,
			CertSHA256: c.ONVIF.CertSHA256}
	}
	for _, s := range c.Streams {
		out.Streams = append(out.Streams, apitype.Stream{Name: s.Name, Source: apitype.StreamSource(s.URL, s.Exec),
			URL: apitype.StripUserinfo(s.URL), Exec: apitype.RedactURLsInText(s.Exec), Transport: s.Transport, OnDemand: s.OnDemand})
	}
	return out
}

func (b backend) CameraList(ctx context.Context, c api.Caller) (*apitype.CameraList, error) {
	out := &apitype.CameraList{Cameras: []apitype.Camera{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		cams, err := tx.Cameras()
		for _, cam := range cams {
			out.Cameras = append(out.Cameras, cameraView(cam))
		}
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}

func (b backend) CameraShow(ctx context.Context, c api.Caller, name string) (*apitype.Camera, error) {
	var out apitype.Camera
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		cam, err := tx.Camera(name)
		out = cameraView(cam)
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return &out, nil
}

// cameraResult finishes a camera mutation's answer with the camera after it.
func (b backend) cameraResult(ctx context.Context, res apitype.MutationResult, name string) (*apitype.MutationResult, error) {
	res.Changed = true
	if cam, err := b.CameraShow(ctx, api.Caller{}, name); err == nil {
		res.Camera = cam
	}
	return &res, nil
}

func (b backend) CameraAdd(ctx context.Context, c api.Caller, req apitype.CameraAddRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.Stream == "" {
		req.Stream = apitype.DefaultStream
	}
	if err := checkExecRunnable(req.Exec); err != nil {
		return nil, err
	}
	t, _ := apitype.ParseTransport(req.Transport) // valid: Validate parsed it
	transport := string(t)
	args := map[string]string{"url": req.URL, "stream": req.Stream, "transport": transport, "user": req.User, "on_demand": fmt.Sprint(req.OnDemand), "password": setOrEmpty(req.Password), "allow_basic": fmt.Sprint(req.AllowBasic)}
	if req.Exec != "" {
		delete(args, "url")
		args["exec"] = apitype.RedactURLsInText(req.Exec) // Validate refused credentials; never audit them anyway
	}
	res, err := b.d.mutate(ctx, mutation{
		caller: c, action: "camera.add", target: req.Name, args: args,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			return tx.CreateCamera(store.Camera{Name: req.Name, Username: req.User, AllowBasic: req.AllowBasic,
				Streams: []store.Stream{{Name: req.Stream, URL: req.URL, Exec: req.Exec, Transport: transport, OnDemand: req.OnDemand}}}, req.Password)
		},
	})
	if err != nil {
		return nil, err
	}
	return b.cameraResult(ctx, res, req.Name)
}

func (b backend) CameraSet(ctx context.Context, c api.Caller, req apitype.CameraSetRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	args := map[string]string{"password": secretEdit(req.Password)}
	if req.URL != nil {
		args["url"] = *req.URL
	}
	if req.Exec != nil {
		if err := checkExecRunnable(*req.Exec); err != nil {
			return nil, err
		}
		args["exec"] = apitype.RedactURLsInText(*req.Exec)
	}
	var transport string
	if req.Transport != nil {
		t, _ := apitype.ParseTransport(*req.Transport) // valid: Validate parsed it
		transport = string(t)
		args["transport"] = transport
	}
	if req.OnDemand != nil {
		args["on_demand"] = fmt.Sprint(*req.OnDemand)
	}
	if req.User != nil {
		args["user"] = *req.User
	}
	if req.AllowBasic != nil {
		args["allow_basic"] = fmt.Sprint(*req.AllowBasic)
	}
	if req.Stream != "" {
		args["stream"] = req.Stream
	}
	streamFields := req.URL != nil || req.Exec != nil || req.Transport != nil || req.OnDemand != nil
	res, err := b.d.mutate(ctx, mutation{
		caller: c, action: "camera.set", target: req.Name, args: args,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			if err := tx.UpdateCamera(req.Name, func(cam *store.Camera) error {
				if req.User != nil {
					cam.Username = *req.User
				}
				if req.AllowBasic != nil {
					cam.AllowBasic = *req.AllowBasic
				}
				if !streamFields {
					return nil
				}
				idx := -1
				switch {
				case req.Stream != "":
					for i := range cam.Streams {
						if cam.Streams[i].Name == req.Stream {
							idx = i
						}
					}
					if idx < 0 {
						if req.URL == nil && req.Exec == nil {
							return apitype.Errorf(apitype.CodeNotFound, "camera %q has no stream %q (give --url or --exec to add it)", req.Name, req.Stream)
						}
						cam.Streams = append(cam.Streams, store.Stream{Name: req.Stream, Transport: "auto"})
						idx = len(cam.Streams) - 1
					}
				case len(cam.Streams) == 1:
					idx = 0
				default:
					return invalid("camera %q has several streams: say which with --stream", req.Name)
				}
				s := &cam.Streams[idx]
				if req.URL != nil {
					s.URL, s.Exec = *req.URL, ""
				}
				if req.Exec != nil {
					s.URL, s.Exec = "", *req.Exec
				}
				if req.Transport != nil {
					s.Transport = transport
				}
				if req.OnDemand != nil {
					s.OnDemand = *req.OnDemand
				}
				return nil
			}); err != nil {
				return err
			}
			if req.User != nil {
				// A recorder channel's user is the recorder's, for every channel.
				if cam, err := tx.Camera(req.Name); err != nil {
					return err
				} else if cam.Recorder != "" {
					if err := tx.SetRecorderUser(cam.Recorder, *req.User); err != nil {
						return err
					}
				}
			}
			if req.Password != nil {
				return tx.SetCameraPassword(req.Name, *req.Password)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return b.cameraResult(ctx, res, req.Name)
}

func (b backend) CameraRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	res, err := b.d.mutate(ctx, mutation{
		caller: c, action: "camera.remove", target: name,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			err := tx.DeleteCamera(name)
			if !errors.Is(err, store.ErrNotFound) {
				ch.removedCameras = append(ch.removedCameras, name)
				return err
			}
			// A recorder's name removes all its channel cameras; the
			// recorder record and its secret go with the last one.
			if _, rerr := tx.Recorder(name); rerr != nil {
				return err
			}
			cams, cerr := tx.Cameras()
			if cerr != nil {
				return cerr
			}
			for _, cam := range cams {
				if cam.Recorder == name {
					ch.removedCameras = append(ch.removedCameras, cam.Name)
					if err := tx.DeleteCamera(cam.Name); err != nil {
						return err
					}
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

// checkExecRunnable refuses an exec command whose program the daemon could
// not start (the admin hears it now, not as a stream error later).
func checkExecRunnable(cmd string) error {
	if cmd == "" {
		return nil
	}
	args, err := apitype.SplitCommand(cmd)
	if err != nil || len(args) == 0 {
		return apitype.Errorf(apitype.CodeInvalid, "invalid --exec: %v", err)
	}
	if _, err := stream.ResolveCommand(args[0]); err != nil {
		return apitype.Errorf(apitype.CodeInvalid, "--exec: %v", err)
	}
	return nil
}
