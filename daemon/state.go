package daemon

import (
	"context"
	"fmt"
	"maps"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// snapshot is the immutable view of everything that goroutines other than
// the loop read: API handlers, RTSP sessions, the authenticator. Only the
// loop builds a new one (publish) and swaps it in; nobody edits one in place.
type snapshot struct {
	cfg Config // the running configuration (after the last reload)
	policyView
	devices map[string]onvif.Device // discovered ONVIF devices by URN
}

// policyView is the part of a snapshot derived from the store's users,
// groups and grants.
type policyView struct {
	policy *access.Policy
	hashes map[string]string // user -> argon2id hash, the credential verifiers for Basic auth
}

// publish swaps in a copy of the current snapshot changed by edit. Loop
// goroutine only (and start-up, before the loop and the API run).
func (d *Daemon) publish(edit func(s *snapshot)) *snapshot {
	next := *d.snap.Load()
	edit(&next)
	d.snap.Store(&next)
	return &next
}

// publishDevices publishes a copy of the loop's device map.
func (d *Daemon) publishDevices(devices map[string]onvif.Device) {
	cp := maps.Clone(devices)
	d.publish(func(s *snapshot) { s.devices = cp })
}

// loadState publishes the stored policy and returns the stored cameras
// (at start, before the loop runs).
func (d *Daemon) loadState(ctx context.Context) ([]store.Camera, error) {
	var pv policyView
	var cams []store.Camera
	err := d.store.View(ctx, func(tx *store.Tx) error {
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		if pv, err = buildPolicy(pd); err != nil {
			return err
		}
		cams, err = tx.Cameras()
		return err
	})
	if err == nil {
		d.publish(func(s *snapshot) { s.policyView = pv })
	}
	return cams, err
}

// buildPolicy converts the store's view into an immutable policy.
func buildPolicy(pd store.PolicyData) (policyView, error) {
	users := make([]access.User, 0, len(pd.Users))
	hashes := make(map[string]string, len(pd.Users))
	for _, u := range pd.Users {
		users = append(users, access.User{Name: u.Name, Disabled: u.Disabled, CredentialVersion: u.CredentialVersion})
		hashes[u.Name] = u.PasswordHash
	}
	groups := make(map[string][]string, len(pd.Groups))
	for _, g := range pd.Groups {
		groups[g.Name] = g.Members
	}
	grants := make([]access.Grant, 0, len(pd.Grants))
	for _, g := range pd.Grants {
		a, err := access.ParseAction(g.Action)
		if err != nil {
			return policyView{}, fmt.Errorf("stored grant %s %s %s: %w", g.Subject, g.Action, g.Pattern, err)
		}
		grants = append(grants, access.Grant{Subject: g.Subject, Action: a, Pattern: g.Pattern})
	}
	p, err := access.New(users, groups, grants)
	if err != nil {
		return policyView{}, err
	}
	return policyView{policy: p, hashes: hashes}, nil
}

// cameraSpecs turns stored cameras into what the stream layer runs. The
// password callback unseals the secret only when a puller connects.
func (d *Daemon) cameraSpecs(cams []store.Camera) []stream.CameraSpec {
	specs := make([]stream.CameraSpec, 0, len(cams))
	for _, c := range cams {
		spec := stream.CameraSpec{Name: c.Name}
		name := c.Name
		var password func(context.Context) (string, error)
		if c.HasPassword {
			password = func(ctx context.Context) (string, error) {
				var pw string
				err := d.store.View(ctx, func(tx *store.Tx) error {
					var err error
					pw, err = tx.CameraPassword(name)
					return err
				})
				return pw, err
			}
		}
		for _, s := range c.Streams {
			sp := stream.StreamSpec{
				Name:       s.Name,
				URL:        s.URL,
				Username:   c.Username,
				Transport:  apitype.Transport(s.Transport),
				OnDemand:   s.OnDemand,
				AllowBasic: c.AllowBasic,
				Revision:   fmt.Sprintf("%d|%s|%s|%t|%t|%q", c.Revision, s.URL, s.Transport, s.OnDemand, c.AllowBasic, s.Exec),
				Password:   password,
			}
			if s.Exec != "" {
				argv, err := apitype.SplitCommand(s.Exec)
				if err != nil { // validated when set; a bug if reached
					d.log.Error("camera stream's exec command does not split; not started", "camera", c.Name, "stream", s.Name, "error", err)
					continue
				}
				sp.Exec = argv
			}
			spec.Streams = append(spec.Streams, sp)
		}
		specs = append(specs, spec)
	}
	return specs
}
