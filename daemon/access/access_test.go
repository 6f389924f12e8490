package access

import (
	"fmt"
	"testing"
)

func mustPolicy(t testing.TB, users []User, groups map[string][]string, grants []Grant) *Policy {
	t.Helper()
	p, err := New(users, groups, grants)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseAction(t *testing.T) {
	for s, want := range map[string]Action{"read": ActionRead, "publish": ActionPublish} {
		got, err := ParseAction(s)
		if err != nil || got != want {
			t.Errorf("ParseAction(%q) = %v, %v", s, got, err)
		}
		if got.String() != s {
			t.Errorf("String() = %q, want %q", got.String(), s)
		}
	}
	for _, bad := range []string{"", "READ", "write", "read ", "*"} {
		if _, err := ParseAction(bad); err == nil {
			t.Errorf("ParseAction(%q) accepted", bad)
		}
	}
}

func TestValidatePattern(t *testing.T) {
	good := []string{"*", "cam/*", "cam/main", "lobby-1/sub_2"}
	bad := []string{"", "cam", "cam/", "/main", "*/main", "cam/ma*", "Cam/main", "cam/main/x", "../x", "cam/..", "c am/main", "**"}
	for _, p := range good {
		if err := ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := ValidatePattern(p); err == nil {
			t.Errorf("ValidatePattern(%q) accepted", p)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"a", "cam1", "front-door", "x_y", "0abc"} {
		if !ValidName(n) {
			t.Errorf("ValidName(%q) = false", n)
		}
	}
	long := fmt.Sprintf("%065d", 0)
	for _, n := range []string{"", "-a", "_a", "A", "a b", "a/b", "a.b", "..", "é", long} {
		if ValidName(n) {
			t.Errorf("ValidName(%q) = true", n)
		}
	}
}

func TestAllows(t *testing.T) {
	users := []User{{Name: "alice"}, {Name: "bob"}, {Name: "carol"}, {Name: "dave", Disabled: true}, {Name: "erin"}, {Name: "frank"}}
	groups := map[string][]string{"guards": {"bob", "dave", "ghost"}, "empty": nil}
	grants := []Grant{
		{Subject: "alice", Action: ActionRead, Pattern: "lobby/main"},
		{Subject: "@guards", Action: ActionRead, Pattern: "garage/*"},
		{Subject: "carol", Action: ActionRead, Pattern: "*"},
		{Subject: "dave", Action: ActionRead, Pattern: "*"},
		{Subject: "erin", Action: ActionPublish, Pattern: "drone/*"},
		{Subject: "ghost", Action: ActionRead, Pattern: "*"},
		{Subject: "@nogroup", Action: ActionRead, Pattern: "*"},
	}
	p := mustPolicy(t, users, groups, grants)
	cases := []struct {
		user   string
		action Action
		path   string
		want   bool
		why    string
	}{
		{"alice", ActionRead, "lobby/main", true, "exact grant"},
		{"alice", ActionRead, "lobby/sub", false, "exact grant does not cover sibling stream"},
		{"alice", ActionPublish, "lobby/main", false, "read does not imply publish"},
		{"bob", ActionRead, "garage/main", true, "group camera wildcard"},
		{"bob", ActionRead, "garage/sub", true, "group camera wildcard, other stream"},
		{"bob", ActionRead, "garagex/main", false, "camera wildcard is not a prefix match"},
		{"bob", ActionRead, "lobby/main", false, "no grant"},
		{"carol", ActionRead, "anything/at-all", true, "star"},
		{"carol", ActionPublish, "anything/at-all", false, "star for read only"},
		{"dave", ActionRead, "lobby/main", false, "disabled user denied despite own grant"},
		{"dave", ActionRead, "garage/main", false, "disabled user denied despite group grant"},
		{"erin", ActionPublish, "drone/live", true, "publish grant"},
		{"erin", ActionRead, "drone/live", false, "publish does not imply read"},
		{"frank", ActionRead, "lobby/main", false, "user without grants"},
		{"ghost", ActionRead, "lobby/main", false, "unknown user even with a grant and a group"},
		{"", ActionRead, "lobby/main", false, "empty user"},
		{"carol", Action(0), "lobby/main", false, "zero action"},
		{"carol", Action(9), "lobby/main", false, "unknown action"},
		{"carol", ActionRead, "lobby", false, "path without stream"},
		{"carol", ActionRead, "/lobby/main", false, "leading slash is malformed"},
		{"carol", ActionRead, "lobby/", false, "empty stream"},
		{"carol", ActionRead, "", false, "empty path"},
	}
	for _, c := range cases {
		if got := p.Allows(c.user, c.action, c.path); got != c.want {
			t.Errorf("Allows(%q, %v, %q) = %v, want %v (%s)", c.user, c.action, c.path, got, c.want, c.why)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.Allows("carol", ActionRead, "a/b") {
		t.Error("nil policy allowed")
	}
}

// Principals that are no local user (token holders, directory users) are
// allowed only through the grants of the groups they map to.
func TestAllowsGroups(t *testing.T) {
	users := []User{{Name: "alice"}}
	groups := map[string][]string{"guards": {"alice"}, "night": nil, "empty": nil}
	grants := []Grant{
		{Subject: "@guards", Action: ActionRead, Pattern: "garage/*"},
		{Subject: "@night", Action: ActionRead, Pattern: "lobby/main"},
		{Subject: "@night", Action: ActionPublish, Pattern: "drone/*"},
		{Subject: "alice", Action: ActionRead, Pattern: "*"},
	}
	p := mustPolicy(t, users, groups, grants)
	cases := []struct {
		groups []string
		action Action
		path   string
		want   bool
		why    string
	}{
		{[]string{"guards"}, ActionRead, "garage/main", true, "group camera wildcard"},
		{[]string{"guards"}, ActionRead, "lobby/main", false, "not granted to the group"},
		{[]string{"empty", "night"}, ActionRead, "lobby/main", true, "any of the groups"},
		{[]string{"night"}, ActionRead, "lobby/sub", false, "exact grant only"},
		{[]string{"night"}, ActionPublish, "drone/x", true, "publish grant"},
		{[]string{"night"}, ActionRead, "drone/x", false, "publish does not imply read"},
		{[]string{"alice"}, ActionRead, "lobby/main", false, "a user's own grants are not a group's"},
		{[]string{"nosuch"}, ActionRead, "garage/main", false, "unknown group"},
		{nil, ActionRead, "garage/main", false, "no groups"},
		{[]string{"guards"}, Action(0), "garage/main", false, "zero action"},
		{[]string{"guards"}, ActionRead, "garage", false, "path without stream"},
		{[]string{"guards"}, ActionRead, "/garage/main", false, "leading slash"},
	}
	for _, c := range cases {
		if got := p.AllowsGroups(c.groups, c.action, c.path); got != c.want {
			t.Errorf("AllowsGroups(%q, %v, %q) = %v, want %v (%s)", c.groups, c.action, c.path, got, c.want, c.why)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.AllowsGroups([]string{"guards"}, ActionRead, "garage/main") {
		t.Error("nil policy allowed")
	}
	g := []string{"empty", "night", "guards"}
	if n := testing.AllocsPerRun(100, func() { p.AllowsGroups(g, ActionRead, "garage/main") }); n != 0 {
		t.Errorf("AllowsGroups allocates %.0f times", n)
	}
}

func TestNewRejectsBadGrants(t *testing.T) {
	if _, err := New(nil, nil, []Grant{{Subject: "a", Action: 7, Pattern: "*"}}); err == nil {
		t.Error("invalid action accepted")
	}
	if _, err := New(nil, nil, []Grant{{Subject: "a", Action: ActionRead, Pattern: "x"}}); err == nil {
		t.Error("invalid pattern accepted")
	}
}

func TestActive(t *testing.T) {
	p := mustPolicy(t, []User{{Name: "a", CredentialVersion: 2}, {Name: "d", Disabled: true, CredentialVersion: 1}}, nil, nil)
	if !p.Active("a", 2) {
		t.Error("current credentials not active")
	}
	if p.Active("a", 1) {
		t.Error("old credential version still active")
	}
	if p.Active("d", 1) || p.Active("zz", 0) {
		t.Error("disabled or unknown user active")
	}
}

// bigPolicy builds 10,000 users, 1,000 groups of 20 members, and 50,000 grants.
func bigPolicy(tb testing.TB) *Policy {
	users := make([]User, 10000)
	for i := range users {
		users[i] = User{Name: fmt.Sprintf("user%05d", i)}
	}
	groups := make(map[string][]string, 1000)
	for g := 0; g < 1000; g++ {
		members := make([]string, 20)
		for m := range members {
			members[m] = users[(g*37+m*101)%len(users)].Name
		}
		groups[fmt.Sprintf("group%04d", g)] = members
	}
	grants := make([]Grant, 0, 50000)
	for i := 0; i < 40000; i++ {
		grants = append(grants, Grant{Subject: users[i%len(users)].Name, Action: ActionRead, Pattern: fmt.Sprintf("cam%04d/main", i%1000)})
	}
	for i := 0; i < 10000; i++ {
		grants = append(grants, Grant{Subject: fmt.Sprintf("@group%04d", i%1000), Action: ActionRead, Pattern: fmt.Sprintf("cam%04d/*", (i*7)%1000)})
	}
	return mustPolicy(tb, users, groups, grants)
}

func TestBigPolicyDecisionsDoNotAllocate(t *testing.T) {
	p := bigPolicy(t)
	allocs := testing.AllocsPerRun(1000, func() {
		p.Allows("user01234", ActionRead, "cam0999/sub")
		p.Allows("user01234", ActionRead, "cam0234/main")
	})
	if allocs != 0 {
		t.Fatalf("Allows allocates %.1f times per call", allocs)
	}
	if !p.Allows("user01234", ActionRead, "cam0234/main") {
		t.Fatal("expected grant missing")
	}
}

// BenchmarkAllows measures one decision at 10k users / 1k groups / 50k grants,
// mixing hits and misses (a miss walks every group of the user).
func BenchmarkAllows(b *testing.B) {
	p := bigPolicy(b)
	paths := []string{"cam0234/main", "cam0999/sub", "cam0500/main", "nocam/main"}
	users := []string{"user01234", "user09999", "user00042", "nobody"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p.Allows(users[i&3], ActionRead, paths[(i>>2)&3])
	}
}
