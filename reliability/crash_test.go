package reliability

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
)

// The crash workload: crashClients goroutines share crashOps mutations;
// each client owns the names with its prefix ("c3-..."), so the expected
// final state of every name follows from that one client's acknowledged
// operations alone.
const (
	crashClients  = 8
	crashOps      = 1000
	crashKills    = 3 // SIGKILLs in the middle of the workload (one more after it)
	usersPerCli   = 4
	groupsPerCli  = 3
	camerasPerCli = 3
)

type camModel struct {
	URL       string
	Transport string
	OnDemand  bool
	User      string
	HasPW     bool
}

type grantKey struct{ Subject, Action, Pattern string }

// model is one client's slice of the daemon's state.
type model struct {
	Users   map[string]bool            // name -> disabled
	Groups  map[string]map[string]bool // name -> members
	Grants  map[grantKey]bool
	Cameras map[string]camModel
}

func newModel() model {
	return model{Users: map[string]bool{}, Groups: map[string]map[string]bool{}, Grants: map[grantKey]bool{}, Cameras: map[string]camModel{}}
}

func (m model) clone() model {
	c := newModel()
	maps.Copy(c.Users, m.Users)
	for g, mem := range m.Groups {
		c.Groups[g] = maps.Clone(mem)
	}
	maps.Copy(c.Grants, m.Grants)
	maps.Copy(c.Cameras, m.Cameras)
	return c
}

func (m model) equal(o model) bool {
	if !maps.Equal(m.Users, o.Users) || !maps.Equal(m.Grants, o.Grants) || !maps.Equal(m.Cameras, o.Cameras) || len(m.Groups) != len(o.Groups) {
		return false
	}
	for g, mem := range m.Groups {
		om, ok := o.Groups[g]
		if !ok || !maps.Equal(mem, om) {
			return false
		}
	}
	return true
}

func (m model) String() string {
	var b strings.Builder
	for _, u := range slices.Sorted(maps.Keys(m.Users)) {
		fmt.Fprintf(&b, "user %s disabled=%v\n", u, m.Users[u])
	}
	for _, g := range slices.Sorted(maps.Keys(m.Groups)) {
		fmt.Fprintf(&b, "group %s %v\n", g, slices.Sorted(maps.Keys(m.Groups[g])))
	}
	for _, k := range slices.SortedFunc(maps.Keys(m.Grants), func(a, b grantKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }) {
		fmt.Fprintf(&b, "grant %s %s %s\n", k.Subject, k.Action, k.Pattern)
	}
	for _, c := range slices.Sorted(maps.Keys(m.Cameras)) {
		fmt.Fprintf(&b, "camera %s %+v\n", c, m.Cameras[c])
	}
	return b.String()
}

// op is one mutation: what it sends and what it does to the model,
// including the daemon's cascades (a removed user leaves no membership or
// grant; a removed group leaves no grant).
type op struct {
	desc  string
	audit string // "action target" of its audit entry
	send  func(ctx context.Context, cl *client.Client) error
	apply func(m *model)
}

// nextOp picks a random mutation that is valid in m for client c.
func nextOp(r *rand.Rand, c int, m model) op {
	user := func(i int) string { return fmt.Sprintf("c%d-u%d", c, i) }
	group := func(i int) string { return fmt.Sprintf("c%d-g%d", c, i) }
	cam := func(i int) string { return fmt.Sprintf("c%d-cam%d", c, i) }
	existingUsers := slices.Sorted(maps.Keys(m.Users))
	existingGroups := slices.Sorted(maps.Keys(m.Groups))
	existingCams := slices.Sorted(maps.Keys(m.Cameras))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for {
		switch r.IntN(14) {
		case 0, 1: // user add
			name := user(r.IntN(usersPerCli))
			if _, ok := m.Users[name]; ok {
				continue
			}
			return op{"user add " + name, "user.add " + name,
				func(ctx context.Context, cl *client.Client) error {
					_, err := cl.UserAdd(ctx, apitype.UserAddRequest{Name: name, Password: userPassword})
					return err
				},
				func(m *model) { m.Users[name] = false }}
		case 2: // user disable / enable
			if len(existingUsers) == 0 {
				continue
			}
			name := pick(existingUsers)
			if m.Users[name] {
				return op{"user enable " + name, "user.enable " + name,
					func(ctx context.Context, cl *client.Client) error { _, err := cl.UserEnable(ctx, name); return err },
					func(m *model) { m.Users[name] = false }}
			}
			return op{"user disable " + name, "user.disable " + name,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.UserDisable(ctx, name); return err },
				func(m *model) { m.Users[name] = true }}
		case 3: // user remove
			if len(existingUsers) == 0 {
				continue
			}
			name := pick(existingUsers)
			return op{"user remove " + name, "user.remove " + name,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.UserRemove(ctx, name); return err },
				func(m *model) {
					delete(m.Users, name)
					for _, mem := range m.Groups {
						delete(mem, name)
					}
					for k := range m.Grants {
						if k.Subject == name {
							delete(m.Grants, k)
						}
					}
				}}
		case 4: // group add
			name := group(r.IntN(groupsPerCli))
			if _, ok := m.Groups[name]; ok {
				continue
			}
			return op{"group add " + name, "group.add " + name,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.GroupAdd(ctx, name); return err },
				func(m *model) { m.Groups[name] = map[string]bool{} }}
		case 5: // group remove
			if len(existingGroups) == 0 {
				continue
			}
			name := pick(existingGroups)
			return op{"group remove " + name, "group.remove " + name,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.GroupRemove(ctx, name); return err },
				func(m *model) {
					delete(m.Groups, name)
					for k := range m.Grants {
						if k.Subject == "@"+name {
							delete(m.Grants, k)
						}
					}
				}}
		case 6, 7: // member add / remove
			if len(existingGroups) == 0 || len(existingUsers) == 0 {
				continue
			}
			g, u := pick(existingGroups), pick(existingUsers)
			req := apitype.GroupMemberRequest{Group: g, User: u}
			if m.Groups[g][u] {
				return op{"member remove " + g + " " + u, "group.member.remove " + g,
					func(ctx context.Context, cl *client.Client) error {
						_, err := cl.GroupMemberRemove(ctx, req)
						return err
					},
					func(m *model) { delete(m.Groups[g], u) }}
			}
			return op{"member add " + g + " " + u, "group.member.add " + g,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.GroupMemberAdd(ctx, req); return err },
				func(m *model) { m.Groups[g][u] = true }}
		case 8, 9: // grant / revoke
			var subjects []string
			subjects = append(subjects, existingUsers...)
			for _, g := range existingGroups {
				subjects = append(subjects, "@"+g)
			}
			if len(subjects) == 0 {
				continue
			}
			pattern := cam(r.IntN(camerasPerCli)) + "/*"
			if r.IntN(2) == 0 {
				pattern = cam(r.IntN(camerasPerCli)) + "/main"
			}
			g := apitype.Grant{Subject: pick(subjects), Action: []string{"read", "publish"}[r.IntN(2)], Pattern: pattern}
			k := grantKey(g)
			if m.Grants[k] {
				return op{"revoke " + fmt.Sprint(g), "grant.revoke " + g.Subject,
					func(ctx context.Context, cl *client.Client) error { _, err := cl.Revoke(ctx, g); return err },
					func(m *model) { delete(m.Grants, k) }}
			}
			return op{"grant " + fmt.Sprint(g), "grant.add " + g.Subject,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.Grant(ctx, g); return err },
				func(m *model) { m.Grants[k] = true }}
		case 10, 11: // camera add
			name := cam(r.IntN(camerasPerCli))
			if _, ok := m.Cameras[name]; ok {
				continue
			}
			// On-demand, pointing at a closed port: the stream layer is
			// configured but nothing is pulled until a reader asks.
			req := apitype.CameraAddRequest{Name: name, URL: fmt.Sprintf("rtsp://127.0.0.1:9/%s", name), Transport: "tcp", OnDemand: true}
			cm := camModel{URL: req.URL, Transport: "tcp", OnDemand: true}
			if r.IntN(2) == 0 {
				req.User, req.Password = "admin", cameraPassword
				cm.User, cm.HasPW = "admin", true
			}
			return op{"camera add " + name, "camera.add " + name,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.CameraAdd(ctx, req); return err },
				func(m *model) { m.Cameras[name] = cm }}
		case 12: // camera set
			if len(existingCams) == 0 {
				continue
			}
			name := pick(existingCams)
			url := fmt.Sprintf("rtsp://127.0.0.1:9/%s/v%d", name, r.IntN(1000))
			tr := []string{"auto", "tcp", "udp"}[r.IntN(3)]
			return op{"camera set " + name, "camera.set " + name,
				func(ctx context.Context, cl *client.Client) error {
					_, err := cl.CameraSet(ctx, apitype.CameraSetRequest{Name: name, URL: &url, Transport: &tr})
					return err
				},
				func(m *model) { c := m.Cameras[name]; c.URL, c.Transport = url, tr; m.Cameras[name] = c }}
		case 13: // camera remove
			if len(existingCams) == 0 {
				continue
			}
			name := pick(existingCams)
			return op{"camera remove " + name, "camera.remove " + name,
				func(ctx context.Context, cl *client.Client) error { _, err := cl.CameraRemove(ctx, name); return err },
				func(m *model) { delete(m.Cameras, name) }}
		}
	}
}

// observe reads the daemon's whole state and splits it by client prefix.
// It also checks referential integrity across clients: no membership or
// grant names a user or group that does not exist.
func observe(t *testing.T, cl *client.Client) []model {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	users, err := cl.UserList(ctx)
	if err != nil {
		t.Fatalf("user list: %v", err)
	}
	groups, err := cl.GroupList(ctx)
	if err != nil {
		t.Fatalf("group list: %v", err)
	}
	grants, err := cl.Grants(ctx, "")
	if err != nil {
		t.Fatalf("grants: %v", err)
	}
	cams, err := cl.CameraList(ctx)
	if err != nil {
		t.Fatalf("camera list: %v", err)
	}
	out := make([]model, crashClients)
	for i := range out {
		out[i] = newModel()
	}
	owner := func(name string) int {
		var c int
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, "@"), "c%d-", &c); err != nil || c < 0 || c >= crashClients {
			t.Fatalf("unexpected record %q", name)
		}
		return c
	}
	userExists := map[string]bool{}
	for _, u := range users.Users {
		out[owner(u.Name)].Users[u.Name] = u.Disabled
		userExists[u.Name] = true
	}
	groupExists := map[string]bool{}
	for _, g := range groups.Groups {
		mem := map[string]bool{}
		for _, u := range g.Members {
			if !userExists[u] {
				t.Errorf("half-applied: group %s lists removed user %s", g.Name, u)
			}
			mem[u] = true
		}
		out[owner(g.Name)].Groups[g.Name] = mem
		groupExists[g.Name] = true
	}
	for _, g := range grants.Grants {
		if name, isGroup := strings.CutPrefix(g.Subject, "@"); isGroup && !groupExists[name] || !isGroup && !userExists[g.Subject] {
			t.Errorf("half-applied: grant %+v names a subject that does not exist", g)
		}
		out[owner(g.Subject)].Grants[grantKey(g)] = true
	}
	for _, c := range cams.Cameras {
		if len(c.Streams) != 1 {
			t.Errorf("camera %s has %d streams", c.Name, len(c.Streams))
			continue
		}
		s := c.Streams[0]
		out[owner(c.Name)].Cameras[c.Name] = camModel{URL: s.URL, Transport: s.Transport, OnDemand: s.OnDemand, User: c.User, HasPW: c.HasPassword}
	}
	return out
}

// clientRun is one client's bookkeeping across daemon restarts.
type clientRun struct {
	id         int
	rng        *rand.Rand
	m          model  // state after every acknowledged op
	doubt      *model // state if the op in flight at the kill was applied
	doubtOp    string
	doubtAudit string
	acked      int
	applied    map[string]int // "action target" -> ops known to be applied
	maybe      map[string]int // ops in doubt whose effect cannot be told from the state
	doubtsSeen int            // ops in flight at a kill
	doubtsDone int            // of which the restarted daemon had applied
}

// TestCrashConsistency SIGKILLs the daemon while 8 clients run 1,000 mixed
// mutations, several times, and checks after every restart that every
// acknowledged mutation is there, that the one in flight per client is
// either wholly applied or not at all, that no removed user or group left
// memberships or grants behind, and that the audit chain verifies.
func TestCrashConsistency(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clients := make([]*clientRun, crashClients)
	for i := range clients {
		clients[i] = &clientRun{id: i, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i))), m: newModel(),
			applied: map[string]int{}, maybe: map[string]int{}}
	}
	var issued atomic.Int64 // ops started, across all phases
	var totalAcked int
	killEvery := crashOps / (crashKills + 1)

	for phase := 0; phase <= crashKills+1; phase++ {
		d := startDaemon(t, dir)
		if phase > 0 {
			// The previous run was SIGKILLed: the state must hold every
			// acknowledged op, and the op in flight wholly or not at all.
			got := observe(t, d.cl)
			for _, c := range clients {
				switch {
				case c.doubt != nil && c.doubt.equal(c.m) && got[c.id].equal(c.m):
					c.maybe[c.doubtAudit]++ // a no-op change: applied or not, the state is the same
				case got[c.id].equal(c.m):
				case c.doubt != nil && got[c.id].equal(*c.doubt):
					c.m = *c.doubt // the in-flight op was applied
					c.applied[c.doubtAudit]++
					c.doubtsDone++
				default:
					want := c.m.String()
					if c.doubt != nil {
						want += "-- or, with " + c.doubtOp + " applied --\n" + c.doubt.String()
					}
					t.Fatalf("phase %d: client %d's state after the crash is neither what was acknowledged nor that plus the op in flight\ngot:\n%swant:\n%s",
						phase, c.id, got[c.id], want)
				}
				if c.doubt != nil {
					c.doubtsSeen++
				}
				c.doubt, c.doubtOp, c.doubtAudit = nil, "", ""
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			v, err := d.cl.AuditVerify(ctx, apitype.AuditVerifyRequest{})
			cancel()
			if err != nil || !v.OK {
				t.Fatalf("phase %d: audit verify after the crash: %+v %v", phase, v, err)
			}
		}
		if phase == crashKills+1 {
			// Final run: the CLI verifies the audit chain, and every
			// acknowledged mutation has an audit entry.
			out := d.must("", "--json", "audit", "verify")
			if !strings.Contains(out, `"ok": true`) {
				t.Fatalf("camwarden audit verify: %s", out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			al, err := d.cl.AuditList(ctx, apitype.AuditListRequest{Limit: 10000})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			// Each change commits with its audit entry: exactly one "ok"
			// entry per applied op, none for ops that were not applied.
			okEntries := map[string]int{}
			for _, e := range al.Entries {
				if e.Detail == "ok" || strings.HasPrefix(e.Detail, "ok ") {
					okEntries[e.Action+" "+e.Target]++
				}
			}
			want, maybe := map[string]int{}, map[string]int{}
			seen, done := 0, 0
			for _, c := range clients {
				for k, n := range c.applied {
					want[k] += n
				}
				for k, n := range c.maybe {
					maybe[k] += n
				}
				seen, done = seen+c.doubtsSeen, done+c.doubtsDone
			}
			for k, n := range want {
				if got := okEntries[k]; got < n || got > n+maybe[k] {
					t.Errorf("audit: %d ok entries for %q, want %d (+%d undecidable)", got, k, n, maybe[k])
				}
			}
			for k, n := range okEntries {
				if _, ok := want[k]; !ok && strings.HasPrefix(strings.SplitN(k, " ", 2)[1], "c") && n > maybe[k] {
					t.Errorf("audit: %d ok entries for %q, an op never applied", n, k)
				}
			}
			t.Logf("%d mutations acknowledged; %d were in flight at %d kills, %d of them applied; %d audit entries",
				totalAcked, seen, crashKills+1, done, len(al.Entries))
			d.stop()
			return
		}

		// Run the workload; the main goroutine kills the daemon after
		// killEvery acks in this phase (or after all ops in the last one).
		var phaseAcked atomic.Int64
		var killed atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, crashClients)
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !killed.Load() && issued.Add(1) <= crashOps {
					o := nextOp(c.rng, c.id, c.m)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					err := o.send(ctx, d.cl)
					cancel()
					if err == nil {
						o.apply(&c.m)
						c.acked++
						c.applied[o.audit]++
						phaseAcked.Add(1)
						continue
					}
					var ae *apitype.Error
					if answered := errors.As(err, &ae); answered && ae.Code != apitype.CodeUnavailable || !answered && !isConnErr(err) {
						// A valid op refused, or a failure that is not
						// the daemon going away.
						errs <- fmt.Errorf("client %d: %s: %v", c.id, o.desc, err)
						return
					}
					// The daemon died under this op: it may or may not
					// have been applied.
					after := c.m.clone()
					o.apply(&after)
					c.doubt, c.doubtOp, c.doubtAudit = &after, o.desc, o.audit
					return
				}
				issued.Add(-1) // not started
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		if phase < crashKills {
			target := int64(killEvery)
			for phaseAcked.Load() < target {
				select {
				case <-done:
					target = 0
				case err := <-errs:
					t.Fatal(err)
				case <-time.After(time.Millisecond):
				}
			}
		} else {
			<-done
		}
		// Kill first, so that ops are in flight when it happens.
		d.kill()
		killed.Store(true)
		<-done
		select {
		case err := <-errs:
			t.Fatalf("%v\ndaemon log:\n%s", err, tail(d.logs.String(), 3000))
		default:
		}
		totalAcked = 0
		for _, c := range clients {
			totalAcked += c.acked
		}
		t.Logf("phase %d: %d acked in this phase, SIGKILL", phase, phaseAcked.Load())
	}
}

// isConnErr reports whether err is a transport failure (the daemon went
// away mid-request), not an answer.
func isConnErr(err error) bool {
	var ce *client.ConnError
	if errors.As(err, &ce) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "talking to camwardend") || strings.Contains(s, "reading camwardend's answer") ||
		strings.Contains(s, "EOF") || strings.Contains(s, "connection reset")
}
