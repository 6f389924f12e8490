package api

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/client"
)

// The route table is one sorted slice; every Backend method has exactly one
// route and one client method; the package doc lists every route.
func TestRouteTableSortedAndComplete(t *testing.T) {
	less := func(a, b route) bool {
		if a.path != b.path {
			return a.path < b.path
		}
		return a.method < b.method
	}
	if !sort.SliceIsSorted(routes, func(i, j int) bool { return less(routes[i], routes[j]) }) {
		t.Errorf("route table is not sorted by path, then method")
	}
	byOp := map[string]int{}
	for i, r := range routes {
		if i > 0 && routes[i-1].path == r.path && routes[i-1].method == r.method {
			t.Errorf("duplicate route %s %s", r.method, r.path)
		}
		byOp[r.op]++
	}
	bt := reflect.TypeFor[Backend]()
	ct := reflect.TypeFor[*client.Client]()
	var ops []string
	for i := 0; i < bt.NumMethod(); i++ {
		name := bt.Method(i).Name
		if name == "AuditRefusal" {
			continue
		}
		ops = append(ops, name)
		if byOp[name] != 1 {
			t.Errorf("Backend.%s has %d routes, want 1", name, byOp[name])
		}
		if _, ok := ct.MethodByName(name); !ok {
			t.Errorf("client.Client has no method %s", name)
		}
	}
	for op := range byOp {
		if !slices.Contains(ops, op) {
			t.Errorf("route op %q is not a Backend method", op)
		}
	}

	src, err := os.ReadFile("api.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		re := regexp.MustCompile(`(?m)^//\t` + r.method + `\s+` + regexp.QuoteMeta(r.path) + `\s+` + r.op + `\b`)
		if !re.Match(src) {
			t.Errorf("package doc does not list %s %s %s", r.method, r.path, r.op)
		}
	}
}

func TestParseProcGroups(t *testing.T) {
	status := "Name:\tbash\nUmask:\t0022\nGid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNStgid:\t1\n"
	got, err := parseProcGroups([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{4, 24, 27, 1000}) {
		t.Errorf("groups = %v", got)
	}
	got, err = parseProcGroups([]byte("Name:\tx\nGroups:\t\n"))
	if err != nil || len(got) != 0 {
		t.Errorf("empty Groups: got %v, %v", got, err)
	}
	if _, err := parseProcGroups([]byte("Name:\tx\n")); err == nil {
		t.Error("missing Groups: line accepted")
	}
	if _, err := parseProcGroups([]byte("Groups:\t1 x 3\n")); err == nil {
		t.Error("bad group accepted")
	}
	// Our own status parses and holds our groups.
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseProcGroups(b); err != nil {
		t.Errorf("/proc/self/status: %v", err)
	}
}

func FuzzParseProcGroups(f *testing.F) {
	f.Add([]byte("Groups:\t4 24 27\n"))
	f.Add([]byte("Groups:\n"))
	f.Add([]byte("Name:\tx\nGroups:\t99999999999999999999\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		groups, err := parseProcGroups(b)
		if err == nil {
			for _, g := range groups {
				if g < 0 || g > 1<<32-1 {
					t.Fatalf("group %d out of range", g)
				}
			}
		}
	})
}

func TestAllowed(t *testing.T) {
	const admin = 4242
	cases := []struct {
		c    Caller
		want bool
	}{
		{Caller{UID: 0, GID: 5}, true},
		{Caller{UID: 999, GID: 999}, true}, // the daemon's uid
		{Caller{UID: 1000, GID: admin}, true},
		{Caller{UID: 1000, GID: 1000, Groups: []int{27, admin}}, true},
		{Caller{UID: 1000, GID: 1000, Groups: []int{27}}, false},
		{Caller{UID: 65534, GID: 65534}, false},
	}
	for _, tc := range cases {
		if got, _ := allowed(tc.c, 999, admin); got != tc.want {
			t.Errorf("allowed(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
	// No admin group: only root and the daemon's uid.
	if ok, _ := allowed(Caller{UID: 1000, GID: 0, Groups: []int{0}}, 999, -1); ok {
		t.Error("gid 0 allowed when there is no admin group")
	}
}

func TestDecodeJSON(t *testing.T) {
	var req apitype.UserAddRequest
	if err := decodeJSON([]byte(`{"name":"a","password":"p"}`), &req); err != nil || req.Name != "a" {
		t.Fatalf("valid body: %v %+v", err, req)
	}
	for _, bad := range []string{
		`{"name":"a","pasword":"p"}`, // unknown field
		`{"name":"a"} {"name":"b"}`,  // two values
		`{"name":"a"} x`,             // trailing garbage
		`{"name":`,                   // truncated
		`[1,2]`,                      // wrong type
	} {
		var req apitype.UserAddRequest
		err := decodeJSON([]byte(bad), &req)
		var ae *apitype.Error
		if err == nil || !errorAs(err, &ae) || ae.Code != apitype.CodeInvalid {
			t.Errorf("%s: err = %v, want invalid", bad, err)
		}
	}
	if err := decodeJSON([]byte("  \n"), &req); err != nil {
		t.Errorf("empty body: %v", err)
	}
}

func errorAs(err error, ae **apitype.Error) bool {
	e, ok := err.(*apitype.Error)
	*ae = e
	return ok
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"name":"cam1","url":"rtsp://h/","on_demand":true}`))
	f.Add([]byte(`{"name":"x","url":null,"password":"\u0000"}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`{"stream":"main","transport":"tcp","user":"u","password":"p"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a apitype.CameraAddRequest
		if err := decodeJSON(b, &a); err != nil {
			if _, ok := err.(*apitype.Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
		}
		var s apitype.CameraSetRequest
		_ = decodeJSON(b, &s)
	})
}

// TestUserDBGroups covers the fallback used when /proc hides the caller:
// root's groups from the user database include gid 0.
func TestUserDBGroups(t *testing.T) {
	groups := userDBGroups(0)
	found := false
	for _, g := range groups {
		found = found || g == 0
	}
	if !found {
		t.Fatalf("userDBGroups(0) = %v, want it to include gid 0", groups)
	}
	if g := userDBGroups(1 << 30); g != nil {
		t.Fatalf("unknown uid has groups %v", g)
	}
}
