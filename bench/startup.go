package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/camwarden/camwarden/bench/load"
	"github.com/camwarden/camwarden/store"
)

// StartupResult is the start-up scenario.
type StartupResult struct {
	Cameras int `json:"cameras"`
	Users   int `json:"users"`
	Groups  int `json:"groups"`
	Grants  int `json:"grants"`
	// UsersVia says how users were created: "ImportUser" (one argon2id hash
	// reused) or "CreateUser" (one hash each, so fewer users).
	UsersVia string  `json:"users_via"`
	BuildS   float64 `json:"db_build_s"`
	DBSizeKB int64   `json:"db_size_kb"`
	Ready    Dist    `json:"ready"` // exec -> READY=1 on NOTIFY_SOCKET, every start
	FirstMs  float64 `json:"first_start_ms"`
	// EmptyReady is the same for a daemon with an empty database: the fixed
	// cost of starting, whatever the data.
	EmptyReady Dist   `json:"empty_ready"`
	ReadyRSSKB int64  `json:"ready_rss_kb"`
	Error      string `json:"error,omitempty"`
}

// importer is the store method the lead is adding; asserted at run time so
// the suite builds with and without it.
type importer interface {
	ImportUser(name, encodedHash, password string) error
}

// buildStartupDB writes a database with cameras on-demand cameras (URLs to
// a closed port, so start-up connects to none) and users users.
func buildStartupDB(ctx context.Context, stateDir, keyFile string, cameras, users int, res *StartupResult) error {
	key, err := store.WriteNewKeyFile(keyFile)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(stateDir, "camwarden.db"), key, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	closed, err := freePort()
	if err != nil {
		return err
	}
	camPW := secret()
	err = st.Update(ctx, nil, func(tx *store.Tx) error {
		for i := range cameras {
			c := store.Camera{Name: fmt.Sprintf("cam%04d", i), Username: "admin", Streams: []store.Stream{{
				Name: "main", URL: fmt.Sprintf("rtsp://127.0.0.1:%d/cam%04d/main", closed, i), Transport: "tcp", OnDemand: true}}}
			if err := tx.CreateCamera(c, camPW); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create cameras: %w", err)
	}
	res.Cameras = cameras

	userPW := secret()
	hash, err := store.HashPassword(userPW)
	if err != nil {
		return err
	}
	// Probe for ImportUser on a throwaway transaction.
	_ = st.View(ctx, func(tx *store.Tx) error {
		if _, ok := any(tx).(importer); ok {
			res.UsersVia = "ImportUser"
		}
		return nil
	})
	if res.UsersVia == "" {
		res.UsersVia = "CreateUser"
		users = min(users, 200)
	}
	const batch = 1000
	for lo := 0; lo < users; lo += batch {
		hi := min(lo+batch, users)
		err := st.Update(ctx, nil, func(tx *store.Tx) error {
			for i := lo; i < hi; i++ {
				name := fmt.Sprintf("user%05d", i)
				var err error
				if imp, ok := any(tx).(importer); ok {
					err = imp.ImportUser(name, hash, userPW)
				} else {
					err = tx.CreateUser(name, userPW)
				}
				if err != nil {
					return err
				}
				// Each user may read one camera; a tenth are also in a group.
				if err := tx.AddGrant(store.Grant{Subject: name, Action: "read", Pattern: fmt.Sprintf("cam%04d/*", i%cameras)}); err != nil {
					return err
				}
				res.Grants++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("create users %d..%d: %w", lo, hi, err)
		}
	}
	res.Users = users
	groups := 100
	err = st.Update(ctx, nil, func(tx *store.Tx) error {
		for g := range groups {
			name := fmt.Sprintf("group%03d", g)
			if err := tx.CreateGroup(name); err != nil {
				return err
			}
			for i := g; i < users; i += groups * 10 {
				if err := tx.AddMember(name, fmt.Sprintf("user%05d", i)); err != nil {
					return err
				}
			}
			if err := tx.AddGrant(store.Grant{Subject: "@" + name, Action: "read", Pattern: fmt.Sprintf("cam%04d/main", g)}); err != nil {
				return err
			}
			res.Grants++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create groups: %w", err)
	}
	res.Groups = groups
	return nil
}

// runStartup measures exec -> READY=1 over several starts of one database.
func runStartup(ctx context.Context, o *Options) (res StartupResult) {
	fail := func(err error) StartupResult {
		res.Error = err.Error()
		return res
	}
	dir, err := os.MkdirTemp(o.WorkDir, "startup-")
	if err != nil {
		return fail(err)
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fail(err)
	}
	keyFile := filepath.Join(dir, "master.key")
	t0 := time.Now()
	if err := buildStartupDB(ctx, stateDir, keyFile, o.StartupCameras, o.StartupUsers, &res); err != nil {
		return fail(err)
	}
	res.BuildS = time.Since(t0).Seconds()
	if fi, err := os.Stat(filepath.Join(stateDir, "camwarden.db")); err == nil {
		res.DBSizeKB = fi.Size() / 1024
	}
	var ready []time.Duration
	for i := range o.StartupRuns {
		d, err := startDaemon(ctx, o.BinDir, dir, "--key-file", keyFile)
		if err != nil {
			return fail(fmt.Errorf("start %d: %w", i+1, err))
		}
		ready = append(ready, d.readyIn)
		if s, err := load.SampleProc(d.pid()); err == nil {
			res.ReadyRSSKB = s.RSSKB
		}
		if err := d.stop(); err != nil {
			return fail(fmt.Errorf("stop %d: %w\n%s", i+1, err, tail(d.logs.String(), 1500)))
		}
	}
	res.Ready = distOf(ready)
	res.FirstMs = load.Ms(ready[0])
	var empty []time.Duration
	for i := range o.StartupRuns {
		edir, err := os.MkdirTemp(o.WorkDir, "startup-empty-")
		if err != nil {
			return fail(err)
		}
		keyFile, err := prepareState(ctx, edir, nil)
		if err != nil {
			return fail(err)
		}
		d, err := startDaemon(ctx, o.BinDir, edir, "--key-file", keyFile)
		if err != nil {
			return fail(fmt.Errorf("empty start %d: %w", i+1, err))
		}
		empty = append(empty, d.readyIn)
		if err := d.stop(); err != nil {
			return fail(fmt.Errorf("empty stop %d: %w", i+1, err))
		}
	}
	res.EmptyReady = distOf(empty)
	return res
}
