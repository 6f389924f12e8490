package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// backend implements api.Backend on top of the daemon. Reads go to the
// store or the stream layer directly; mutations go through mutate.
type backend struct{ d *Daemon }

var _ api.Backend = backend{}

func whoFrom(c api.Caller) who { return who{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe} }

func (d *Daemon) startAPI(ctx context.Context, activated net.Listener) (<-chan struct{}, error) {
	ln := activated
	if ln == nil {
		if err := os.MkdirAll(dirOf(d.cfg.Socket), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the admin socket directory: %w", err)
		}
		var err error
		if ln, err = api.Listen(d.cfg.Socket, d.cfg.AdminGroup); err != nil {
			return nil, err
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := api.Serve(ctx, ln, api.Options{
			Backend:    backend{d},
			Logger:     d.log.Named("api"),
			AdminGroup: d.cfg.AdminGroup,
			AllowUID:   os.Getuid(),
		})
		if err != nil && ctx.Err() == nil {
			d.log.Error("admin API stopped", "error", err)
		}
	}()
	return done, nil
}

func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "."
	}
	return p[:i]
}

func (b backend) Status(ctx context.Context, c api.Caller) (*apitype.Status, error) {
	d := b.d
	st := &apitype.Status{
		Version: d.opts.Version, PID: os.Getpid(), StartedAt: d.started,
		RTSPAddr: d.streams.Addr().String(), StateDir: d.cfg.StateDir,
		DiscoveryInterfaces: d.cfg.DiscoveryInterfaces, KeyID: d.store.KeyID(),
	}
	err := d.store.View(ctx, func(tx *store.Tx) error {
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		st.Users, st.Groups = len(pd.Users), len(pd.Groups)
		cams, err := tx.Cameras()
		st.Cameras = len(cams)
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
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

// maxDiscoverWindow bounds an admin-requested probe.
const maxDiscoverWindow = 30 * time.Second

func (b backend) Discover(ctx context.Context, c api.Caller, req apitype.DiscoverRequest) (*apitype.DiscoverResult, error) {
	d := b.d
	window := time.Duration(req.TimeoutMS) * time.Millisecond
	if req.TimeoutMS < 0 || window > maxDiscoverWindow {
		return nil, invalid("timeout must be between 0 and %s", maxDiscoverWindow)
	}
	for _, t := range req.Targets {
		if err := checkTarget(t); err != nil {
			return nil, err
		}
	}
	opts := onvif.ProbeOptions{Interfaces: d.cfg.DiscoveryInterfaces, Targets: req.Targets, Window: window, Logger: d.log.Named("discovery")}
	if discoveryOff(d.cfg) {
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
			}
		}
		return err
	})
	var all []onvif.Device
	if err := d.do(ctx, func() {
		d.disc.merge(devs)
		all = d.disc.list()
	}); err != nil {
		return nil, toAPIError(err)
	}
	res := &apitype.DiscoverResult{Devices: []apitype.Device{}}
	for _, dev := range all {
		res.Devices = append(res.Devices, apitype.Device{
			URN: dev.URN, Name: dev.Name, Hardware: dev.Hardware, XAddrs: dev.XAddrs,
			Addresses: nonEmpty(dev.Addr), Interfaces: dev.Interfaces, AdoptedAs: adopted[dev.URN],
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

func checkTarget(t string) error {
	host := t
	if h, _, err := net.SplitHostPort(t); err == nil {
		host = h
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return invalid("invalid target %q: use HOST or HOST:PORT", t)
	}
	return nil
}

func cameraView(c store.Camera) apitype.Camera {
	out := apitype.Camera{Name: c.Name, User: c.Username, HasPassword: c.HasPassword, Created: c.Created, Changed: c.Changed, Streams: []apitype.Stream{}}
	if c.ONVIF != nil {
		out.ONVIF = &apitype.ONVIFIdentity{URN: c.ONVIF.URN, XAddr: c.ONVIF.XAddr, Manufacturer: c.ONVIF.Manufacturer,
			Model: c.ONVIF.Model, Firmware: c.ONVIF.Firmware, Serial: c.ONVIF.Serial, Hardware: c.ONVIF.HardwareID}
	}
	for _, s := range c.Streams {
		out.Streams = append(out.Streams, apitype.Stream{Name: s.Name, URL: stripUserinfo(s.URL), Transport: s.Transport, OnDemand: s.OnDemand})
	}
	return out
}

// stripUserinfo is a last guard: stored URLs never hold credentials, but a
// response must not carry one even if a bug put it there.
func stripUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	return u.String()
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
	if err := access.CheckName("camera", req.Name); err != nil {
		return nil, invalid("%v", err)
	}
	if req.Stream == "" {
		req.Stream = "main"
	}
	if err := access.CheckName("stream", req.Stream); err != nil {
		return nil, invalid("%v", err)
	}
	if err := checkStreamURL(req.URL); err != nil {
		return nil, err
	}
	transport, err := checkTransport(req.Transport)
	if err != nil {
		return nil, err
	}
	if req.Password != "" && req.User == "" {
		return nil, invalid("a camera password needs --user")
	}
	res, err := b.d.mutate(ctx, mutation{
		caller: whoFrom(c), action: "camera.add", target: req.Name,
		args: map[string]string{"url": req.URL, "stream": req.Stream, "transport": transport, "user": req.User, "on_demand": fmt.Sprint(req.OnDemand), "password": setOrEmpty(req.Password)},
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			return tx.CreateCamera(store.Camera{Name: req.Name, Username: req.User,
				Streams: []store.Stream{{Name: req.Stream, URL: req.URL, Transport: transport, OnDemand: req.OnDemand}}}, req.Password)
		},
	})
	if err != nil {
		return nil, err
	}
	return b.cameraResult(ctx, res, req.Name)
}

// setOrEmpty records in the audit log whether a secret was given, never it.
func setOrEmpty(secret string) string {
	if secret == "" {
		return ""
	}
	return "(set)"
}

func (b backend) CameraAdopt(ctx context.Context, c api.Caller, req apitype.CameraAdoptRequest) (*apitype.MutationResult, error) {
	d := b.d
	if err := access.CheckName("camera", req.Name); err != nil {
		return nil, invalid("%v", err)
	}
	if (req.DeviceURN == "") == (req.XAddr == "") {
		return nil, invalid("give exactly one of --device URN or --xaddr URL")
	}
	if req.User == "" {
		return nil, invalid("adoption needs --user and --password-stdin: the camera's ONVIF credentials")
	}
	xaddr, urn := req.XAddr, ""
	if req.DeviceURN != "" {
		want, ok := onvif.NormaliseURN(req.DeviceURN)
		if !ok {
			return nil, invalid("invalid device URN %q: use urn:uuid:... as shown by camwarden discover", req.DeviceURN)
		}
		var dev onvif.Device
		var found bool
		if err := d.do(ctx, func() { dev, found = d.disc.devices[want] }); err != nil {
			return nil, toAPIError(err)
		}
		if !found {
			return nil, apitype.Errorf(apitype.CodeNotFound, "device %s has not been discovered: run camwarden discover (with --target HOST for another subnet) first, or use --xaddr", want)
		}
		urn, xaddr = want, reachableXAddr(dev)
		if xaddr == "" {
			return nil, apitype.Errorf(apitype.CodeInvalid, "device %s announced no usable device service address; use --xaddr", want)
		}
	} else if u, err := url.Parse(req.XAddr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, invalid("invalid --xaddr: use http://HOST[:PORT]/onvif/device_service without credentials")
	}
	// Refuse a duplicate name before talking to the camera.
	if _, err := b.CameraShow(ctx, c, req.Name); err == nil {
		return nil, apitype.Errorf(apitype.CodeConflict, "camera %q already exists", req.Name)
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	res, err := onvif.Adopt(qctx, xaddr, onvif.ClientOptions{Username: req.User, Password: req.Password, Logger: d.log.Named("onvif")})
	cancel()
	if err != nil {
		d.auditFailure(ctx, c, "camera.adopt", req.Name, adoptCode(err))
		return nil, adoptError(err, xaddr)
	}
	if urn == "" {
		// Adopted by address: learn the URN from discovery if it saw the device.
		_ = d.do(ctx, func() {
			for _, dev := range d.disc.devices {
				if reachableXAddr(dev) == xaddr {
					urn = dev.URN
				}
			}
		})
	}
	cam := store.Camera{Name: req.Name, Username: req.User, ONVIF: &store.ONVIFIdentity{
		URN: urn, XAddr: xaddr, Manufacturer: res.Info.Manufacturer, Model: res.Info.Model,
		Firmware: res.Info.FirmwareVersion, Serial: res.Info.SerialNumber, HardwareID: res.Info.HardwareID}}
	for _, s := range res.Streams {
		if access.ValidName(s.Name) {
			cam.Streams = append(cam.Streams, store.Stream{Name: s.Name, URL: s.URI.URI, Transport: "auto"})
		}
	}
	if len(cam.Streams) == 0 {
		return nil, apitype.Errorf(apitype.CodeInvalid, "the camera at %s reported no usable media profiles", xaddr)
	}
	mres, err := d.mutate(ctx, mutation{
		caller: whoFrom(c), action: "camera.adopt", target: req.Name,
		args: map[string]string{"urn": urn, "xaddr": xaddr, "user": req.User, "streams": fmt.Sprint(len(cam.Streams)), "password": setOrEmpty(req.Password)},
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			return tx.CreateCamera(cam, req.Password)
		},
	})
	if err != nil {
		return nil, err
	}
	return b.cameraResult(ctx, mres, req.Name)
}

func adoptCode(err error) string {
	switch {
	case errors.Is(err, onvif.ErrUnauthorized):
		return "failed: unauthorized"
	case errors.Is(err, onvif.ErrUnreachable):
		return "failed: unreachable"
	case errors.Is(err, onvif.ErrNoProfiles):
		return "failed: no_profiles"
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
	}
	return apitype.Errorf(apitype.CodeUnavailable, "querying the camera at %s failed: %v", xaddr, err)
}

func (d *Daemon) auditFailure(ctx context.Context, c api.Caller, action, target, outcome string) {
	if _, err := d.store.AppendAudit(ctx, store.AuditEntry{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe, Action: action, Target: target, Outcome: outcome}); err != nil {
		d.log.Error("cannot audit a failed request", "action", action, "error", err)
	}
}

func (b backend) CameraSet(ctx context.Context, c api.Caller, req apitype.CameraSetRequest) (*apitype.MutationResult, error) {
	args := map[string]string{}
	if req.URL != nil {
		if err := checkStreamURL(*req.URL); err != nil {
			return nil, err
		}
		args["url"] = *req.URL
	}
	var transport string
	if req.Transport != nil {
		t, err := checkTransport(*req.Transport)
		if err != nil {
			return nil, err
		}
		transport = t
		args["transport"] = t
	}
	if req.OnDemand != nil {
		args["on_demand"] = fmt.Sprint(*req.OnDemand)
	}
	if req.User != nil {
		args["user"] = *req.User
	}
	if req.Password != nil {
		args["password"] = "(changed)"
	}
	if req.Stream != "" {
		args["stream"] = req.Stream
	}
	if len(args) == 0 || (len(args) == 1 && req.Stream != "") {
		return nil, invalid("nothing to change: give --url, --transport, --on-demand, --user or --password-stdin")
	}
	streamFields := req.URL != nil || req.Transport != nil || req.OnDemand != nil
	res, err := b.d.mutate(ctx, mutation{
		caller: whoFrom(c), action: "camera.set", target: req.Name, args: args,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			if err := tx.UpdateCamera(req.Name, func(cam *store.Camera) error {
				if req.User != nil {
					cam.Username = *req.User
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
						if req.URL == nil {
							return apitype.Errorf(apitype.CodeNotFound, "camera %q has no stream %q (give --url to add it)", req.Name, req.Stream)
						}
						if err := access.CheckName("stream", req.Stream); err != nil {
							return invalid("%v", err)
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
					s.URL = *req.URL
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
		caller: whoFrom(c), action: "camera.remove", target: name,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.cameras = true
			ch.removedCameras = append(ch.removedCameras, name)
			return tx.DeleteCamera(name)
		},
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

func (b backend) StreamList(ctx context.Context, c api.Caller) (*apitype.StreamList, error) {
	out := &apitype.StreamList{Streams: []apitype.StreamStatus{}}
	for _, s := range b.d.streams.Streams() {
		out.Streams = append(out.Streams, apitype.StreamStatus{
			Camera: s.Camera, Stream: s.Stream, Path: strings.TrimPrefix(s.Path, "/"), State: s.State,
			Codec: strings.Join(s.Codecs, ","), Width: s.Width, Height: s.Height,
			BitrateKbps: s.BitrateBps / 1000, FPS: s.FPS, PacketsLost: s.PacketsLost,
			Readers: s.Readers, Since: s.Since, LastError: s.LastError, Published: s.Published,
		})
	}
	return out, nil
}

func (b backend) UserList(ctx context.Context, c api.Caller) (*apitype.UserList, error) {
	out := &apitype.UserList{Users: []apitype.User{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		groupsOf := map[string][]string{}
		for _, g := range pd.Groups {
			for _, m := range g.Members {
				groupsOf[m] = append(groupsOf[m], g.Name)
			}
		}
		for _, u := range pd.Users {
			gs := groupsOf[u.Name]
			if gs == nil {
				gs = []string{}
			}
			sort.Strings(gs)
			out.Users = append(out.Users, apitype.User{Name: u.Name, Disabled: u.Disabled, Created: u.Created, Changed: u.Changed, Groups: gs})
		}
		return nil
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}

// minPasswordLen is the shortest user password accepted.
const minPasswordLen = 8

func checkPassword(pw string) error {
	if len(pw) < minPasswordLen {
		return invalid("password too short: use at least %d characters", minPasswordLen)
	}
	if len(pw) > 1024 {
		return invalid("password too long: at most 1024 bytes")
	}
	if strings.ContainsAny(pw, "\r\n\x00") {
		return invalid("password must not contain line breaks or NUL")
	}
	return nil
}

func (b backend) userMutation(ctx context.Context, c api.Caller, action, name string, args map[string]string, apply func(tx *store.Tx) error) (*apitype.MutationResult, error) {
	res, err := b.d.mutate(ctx, mutation{
		caller: whoFrom(c), action: action, target: name, args: args,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.users = true
			return apply(tx)
		},
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

func (b backend) UserAdd(ctx context.Context, c api.Caller, req apitype.UserAddRequest) (*apitype.MutationResult, error) {
	if err := access.CheckName("user", req.Name); err != nil {
		return nil, invalid("%v", err)
	}
	if err := checkPassword(req.Password); err != nil {
		return nil, err
	}
	return b.userMutation(ctx, c, "user.add", req.Name, nil, func(tx *store.Tx) error { return tx.CreateUser(req.Name, req.Password) })
}

func (b backend) UserPasswd(ctx context.Context, c api.Caller, req apitype.UserPasswdRequest) (*apitype.MutationResult, error) {
	if err := checkPassword(req.Password); err != nil {
		return nil, err
	}
	return b.userMutation(ctx, c, "user.passwd", req.Name, nil, func(tx *store.Tx) error { return tx.SetUserPassword(req.Name, req.Password) })
}

func (b backend) UserDisable(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "user.disable", name, nil, func(tx *store.Tx) error { return tx.SetUserDisabled(name, true) })
}

func (b backend) UserEnable(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "user.enable", name, nil, func(tx *store.Tx) error { return tx.SetUserDisabled(name, false) })
}

func (b backend) UserRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "user.remove", name, nil, func(tx *store.Tx) error { return tx.DeleteUser(name) })
}

func (b backend) GroupList(ctx context.Context, c api.Caller) (*apitype.GroupList, error) {
	out := &apitype.GroupList{Groups: []apitype.Group{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		gs, err := tx.Groups()
		for _, g := range gs {
			m := g.Members
			if m == nil {
				m = []string{}
			}
			out.Groups = append(out.Groups, apitype.Group{Name: g.Name, Members: m})
		}
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}

func (b backend) GroupAdd(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	if err := access.CheckName("group", name); err != nil {
		return nil, invalid("%v", err)
	}
	return b.userMutation(ctx, c, "group.add", name, nil, func(tx *store.Tx) error { return tx.CreateGroup(name) })
}

func (b backend) GroupRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "group.remove", name, nil, func(tx *store.Tx) error { return tx.DeleteGroup(name) })
}

func (b backend) GroupMemberAdd(ctx context.Context, c api.Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "group.member.add", req.Group, map[string]string{"user": req.User}, func(tx *store.Tx) error { return tx.AddMember(req.Group, req.User) })
}

func (b backend) GroupMemberRemove(ctx context.Context, c api.Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "group.member.remove", req.Group, map[string]string{"user": req.User}, func(tx *store.Tx) error { return tx.RemoveMember(req.Group, req.User) })
}

// checkGrant validates a grant and that its subject exists.
func checkGrant(tx *store.Tx, g apitype.Grant) error {
	if _, err := access.ParseAction(g.Action); err != nil {
		return invalid("%v", err)
	}
	if err := access.ValidatePattern(g.Pattern); err != nil {
		return invalid("%v", err)
	}
	if name, isGroup := strings.CutPrefix(g.Subject, "@"); isGroup {
		gs, err := tx.Groups()
		if err != nil {
			return err
		}
		for _, grp := range gs {
			if grp.Name == name {
				return nil
			}
		}
		return apitype.Errorf(apitype.CodeNotFound, "group %q not found (create it with: camwarden group add %s)", name, name)
	}
	if err := access.CheckName("user", g.Subject); err != nil {
		return invalid("%v (a group is written @name)", err)
	}
	_, err := tx.User(g.Subject)
	return err
}

func (b backend) Grant(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	return b.grantMutation(ctx, c, "grant.add", g, func(tx *store.Tx) error {
		if err := checkGrant(tx, g); err != nil {
			return err
		}
		return tx.AddGrant(store.Grant{Subject: g.Subject, Action: g.Action, Pattern: g.Pattern})
	})
}

func (b backend) Revoke(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	return b.grantMutation(ctx, c, "grant.revoke", g, func(tx *store.Tx) error {
		return tx.RevokeGrant(store.Grant{Subject: g.Subject, Action: g.Action, Pattern: g.Pattern})
	})
}

func (b backend) grantMutation(ctx context.Context, c api.Caller, action string, g apitype.Grant, apply func(tx *store.Tx) error) (*apitype.MutationResult, error) {
	res, err := b.d.mutate(ctx, mutation{
		caller: whoFrom(c), action: action, target: g.Subject,
		args:  map[string]string{"action": g.Action, "pattern": g.Pattern},
		apply: func(tx *store.Tx, ch *changeSet) error { return apply(tx) },
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

func (b backend) Grants(ctx context.Context, c api.Caller, subject string) (*apitype.GrantList, error) {
	out := &apitype.GrantList{Grants: []apitype.Grant{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		gs, err := tx.Grants()
		for _, g := range gs {
			if subject == "" || g.Subject == subject {
				out.Grants = append(out.Grants, apitype.Grant{Subject: g.Subject, Action: g.Action, Pattern: g.Pattern})
			}
		}
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}

func (b backend) SessionList(ctx context.Context, c api.Caller) (*apitype.SessionList, error) {
	out := &apitype.SessionList{Sessions: []apitype.Session{}}
	for _, s := range b.d.streams.Sessions() {
		out.Sessions = append(out.Sessions, apitype.Session{ID: s.ID, User: s.User, Action: s.Action,
			Path: strings.TrimPrefix(s.Path, "/"), Remote: s.RemoteAddr, Transport: s.Transport, Started: s.Since, BytesSent: s.BytesSent})
	}
	return out, nil
}

func (b backend) SessionKick(ctx context.Context, c api.Caller, id string) (*apitype.MutationResult, error) {
	d := b.d
	var kicked bool
	if err := d.do(ctx, func() { kicked = d.streams.Kick(id) }); err != nil {
		return nil, toAPIError(err)
	}
	outcome := "ok"
	if !kicked {
		outcome = "failed: not_found"
	}
	if _, err := d.store.AppendAudit(ctx, store.AuditEntry{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe, Action: "session.kick", Target: id, Outcome: outcome}); err != nil {
		d.log.Error("cannot audit a session kick", "error", err)
	}
	if !kicked {
		return nil, apitype.Errorf(apitype.CodeNotFound, "no live session %q (see camwarden session list)", id)
	}
	return &apitype.MutationResult{Changed: true, ClosedSessions: 1}, nil
}

// defaultAuditLimit keeps an unfiltered listing readable.
const defaultAuditLimit = 100

func (b backend) AuditList(ctx context.Context, c api.Caller, req apitype.AuditListRequest) (*apitype.AuditList, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	if limit > 10000 {
		return nil, invalid("limit must be at most 10000")
	}
	entries, err := b.d.store.AuditList(ctx, req.Since, limit)
	if err != nil {
		return nil, toAPIError(err)
	}
	out := &apitype.AuditList{Entries: []apitype.AuditEntry{}}
	for _, e := range entries {
		out.Entries = append(out.Entries, apitype.AuditEntry{Seq: e.Seq, Time: e.Time,
			Actor:  fmt.Sprintf("uid=%d gid=%d pid=%d exe=%s", e.UID, e.GID, e.PID, e.Exe),
			Action: e.Action, Target: e.Target, Detail: auditDetail(e), Hash: e.Hash})
	}
	return out, nil
}

func auditDetail(e store.AuditEntry) string {
	keys := make([]string, 0, len(e.Args))
	for k := range e.Args {
		if e.Args[k] != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := []string{e.Outcome}
	for _, k := range keys {
		parts = append(parts, k+"="+e.Args[k])
	}
	return strings.Join(parts, " ")
}

func (b backend) AuditVerify(ctx context.Context, c api.Caller) (*apitype.AuditVerify, error) {
	v, err := b.d.store.VerifyAudit(ctx)
	if err != nil {
		return nil, toAPIError(err)
	}
	return &apitype.AuditVerify{OK: v.OK, Entries: int(v.Entries), FirstBad: v.FirstBad, Message: v.Reason}, nil
}

func (b backend) KeyRotate(ctx context.Context, c api.Caller) (*apitype.KeyRotate, error) {
	d := b.d
	var id string
	var n int
	var rerr error
	if err := d.do(ctx, func() {
		id, n, rerr = d.store.RotateKey(ctx, &store.AuditEntry{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe, Action: "key.rotate", Outcome: "ok"})
	}); err != nil {
		return nil, toAPIError(err)
	}
	if rerr != nil {
		d.auditFailure(ctx, c, "key.rotate", "", "failed: error")
		return nil, toAPIError(rerr)
	}
	d.log.Info("data key rotated", "key_id", id, "resealed", n)
	return &apitype.KeyRotate{KeyID: id, Resealed: n}, nil
}

func (b backend) AuditRefusal(ctx context.Context, c api.Caller, method, path, reason string) {
	d := b.d
	if _, err := d.store.AppendAudit(ctx, store.AuditEntry{UID: c.UID, GID: c.GID, PID: c.PID, Exe: c.Exe,
		Action: "api.refused", Target: method + " " + path, Outcome: "refused: " + reason}); err != nil {
		d.log.Error("cannot audit a refused request", "error", err)
	}
	d.log.Warn("admin request refused", "caller", c.String(), "method", method, "path", path, "reason", reason)
}
