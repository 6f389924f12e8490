package directory

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/camwarden/camwarden/internal/testutil"
)

var bg = context.Background()

// logs collects a Directory's log lines and checks them for secrets.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func baseConfig(url string) Config {
	return Config{
		URL: url, BindDN: svcDN, BindPassword: svcPassword, BaseDN: peopleDN,
		UserFilter:     "(&(objectClass=inetOrgPerson)(uid=%s))",
		DisabledFilter: "(employeeType=disabled)",
		Timeout:        2 * time.Second,
	}
}

func newDir(t *testing.T, cfg Config) (*Directory, *logs) {
	t.Helper()
	l := &logs{}
	d, err := New(cfg, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testutil.CheckNoSecrets(t, "directory log", l.String(), testutil.TestSecrets(t))
		fmt.Fprintln(testutil.LogFile(t, "directory"), l.String())
	})
	return d, l
}

// checkErr fails unless err is of class want and says nothing secret.
func checkErr(t *testing.T, what string, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	testutil.CheckNoSecrets(t, what+" error", err.Error(), testutil.TestSecrets(t))
}

func TestLoginBindsAsTheUserAndReadsGroups(t *testing.T) {
	srv := startSlapd(t)
	for _, mode := range []struct {
		name string
		edit func(*Config)
	}{
		{"memberOf attribute", func(*Config) {}},
		{"group search", func(c *Config) {
			c.GroupFilter = "(&(objectClass=groupOfNames)(member=%s))"
			c.GroupBaseDN = "ou=groups," + suffix
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			cfg := baseConfig(srv.url())
			mode.edit(&cfg)
			d, _ := newDir(t, cfg)
			u, err := d.Login(bg, "alice", alicePassword)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(u.Groups)
			want := []string{CanonicalDN(guardsDN), CanonicalDN(nightDN)}
			if u.DN != "uid=alice,"+peopleDN || !slices.Equal(u.Groups, want) {
				t.Fatalf("user %+v, want groups %v", u, want)
			}
			_, err = d.Login(bg, "alice", bobPassword)
			checkErr(t, "wrong password", err, ErrInvalidCredentials)
			_, err = d.Login(bg, "nobody", alicePassword)
			checkErr(t, "unknown user", err, ErrNotFound)
			_, err = d.Login(bg, "alice", "")
			checkErr(t, "empty password (an unauthenticated bind)", err, ErrInvalidCredentials)
			_, err = d.Login(bg, "alice", alicePassword+"\x00")
			checkErr(t, "password with NUL", err, ErrInvalidCredentials)
			_, err = d.Login(bg, "alice", strings.Repeat("p", 1025))
			checkErr(t, "password over 1024 bytes", err, ErrInvalidCredentials)
		})
	}
}

func TestLoginRefusesDisabledAccounts(t *testing.T) {
	srv := startSlapd(t)
	srv.ldapmodify("", "dn: uid=carol,"+peopleDN+"\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n")
	d, _ := newDir(t, baseConfig(srv.url()))
	_, err := d.Login(bg, "carol", bobPassword)
	checkErr(t, "disabled user", err, ErrDisabled)
}

// User names are data, never filter syntax: each attack either finds no
// entry or is refused, and a real user whose uid is full of filter syntax
// logs in.
func TestLoginEscapesUserNames(t *testing.T) {
	srv := startSlapd(t)
	d, _ := newDir(t, baseConfig(srv.url()))
	for _, name := range []string{"al*", "*", "*ice", "alice)(uid=*", "alice)(|(uid=*", `alice\`, `\2a`, "(uid=alice)", "alice*)(objectClass=*"} {
		// with alice's password: an unescaped "al*" would bind as alice
		_, err := d.Login(bg, name, alicePassword)
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("user name %q: %v, want not found", name, err)
		}
		if err == nil {
			t.Fatalf("user name %q logged in", name)
		}
	}
	for _, name := range []string{"alice\x00", "\x00", "ali\x00ce)(uid=*", "", "alice\n", strings.Repeat("a", 300)} {
		_, err := d.Login(bg, name, alicePassword)
		checkErr(t, fmt.Sprintf("user name %q", name), err, ErrBadUserName)
	}
	u, err := d.Login(bg, oddUserID, oddPassword)
	if err != nil {
		t.Fatalf("user %q: %v", oddUserID, err)
	}
	if u.Name != oddUserID || CanonicalDN(u.DN) != CanonicalDN(`uid=o(dd)*\\name,`+peopleDN) {
		t.Fatalf("odd user %+v", u)
	}
}

func TestBindCacheIsBoundedAndKeyed(t *testing.T) {
	srv := startSlapd(t)
	cfg := baseConfig(srv.url())
	cfg.CacheTTL = 300 * time.Millisecond
	d, _ := newDir(t, cfg)
	if _, err := d.Login(bg, "bob", bobPassword); err != nil {
		t.Fatal(err)
	}
	if d.cache.Len() != 1 {
		t.Fatal("a successful bind was not cached")
	}
	// the directory changes bob's password: the cached bind holds until its TTL
	srv.ldapmodify("", "dn: uid=bob,"+peopleDN+"\nchangetype: modify\nreplace: userPassword\nuserPassword: "+alicePassword+"\n")
	if _, err := d.Login(bg, "bob", bobPassword); err != nil {
		t.Fatalf("cached bind not used: %v", err)
	}
	if _, err := d.Login(bg, "bob", bobPassword+"x"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a different password hit the cache: %v", err)
	}
	waitFor(t, 10*time.Second, "the cached bind to lapse", func() bool {
		_, err := d.Login(bg, "bob", bobPassword)
		return errors.Is(err, ErrInvalidCredentials)
	})
	// (that the cache holds only a keyed hash, never the password, is
	// credcache's TestHoldsNoPassword)
	if _, err := d.Login(bg, "bob", alicePassword); err != nil {
		t.Fatal(err)
	}
	d.Forget("bob")
	if d.cache.Len() != 0 {
		t.Fatal("Forget kept a cached bind")
	}
	// at most 5 minutes, whatever the configuration says
	if c := (Config{CacheTTL: time.Hour}).withDefaults(); c.CacheTTL != MaxCacheTTL {
		t.Fatalf("cache TTL %s", c.CacheTTL)
	}
	off, _ := newDir(t, Config{URL: srv.url(), BindDN: svcDN, BindPassword: svcPassword, BaseDN: peopleDN,
		UserFilter: "(uid=%s)", CacheTTL: -1})
	if _, err := off.Login(bg, "bob", alicePassword); err != nil || off.cache.Len() != 0 {
		t.Fatalf("disabled cache: %v, %d entries", err, off.cache.Len())
	}
}

func TestSyncReportsRemovedDisabledDeleted(t *testing.T) {
	srv := startSlapd(t)
	d, l := newDir(t, baseConfig(srv.url()))
	var mu sync.Mutex
	var got []Change
	mapped := []string{"CN=Guards,OU=groups," + suffix} // another spelling of guardsDN
	s := NewSyncer(d, 200*time.Millisecond, func() []string { return mapped }, func(cs []Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, cs...)
	})
	t.Cleanup(s.Close)
	changes := func() []Change {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	for _, name := range []string{"alice", "bob"} {
		pw := map[string]string{"alice": alicePassword, "bob": bobPassword}[name]
		u, err := d.Login(bg, name, pw)
		if err != nil {
			t.Fatal(err)
		}
		s.Watch(u)
	}
	must(t, s.SyncNow(bg))
	if c := changes(); len(c) != 0 {
		t.Fatalf("changes without any change: %v", c)
	}
	// an unmapped group changes: nothing to report
	srv.ldapmodify("", "dn: "+nightDN+"\nchangetype: modify\ndelete: member\nmember: uid=alice,"+peopleDN+"\n")
	must(t, s.SyncNow(bg))
	if c := changes(); len(c) != 0 {
		t.Fatalf("an unmapped group's change was reported: %v", c)
	}
	// alice leaves the mapped group: reported at the next periodic pass
	srv.ldapmodify("", "dn: "+guardsDN+"\nchangetype: modify\ndelete: member\nmember: uid=alice,"+peopleDN+"\n")
	waitFor(t, 10*time.Second, "alice's change", func() bool { return len(changes()) > 0 })
	if c := changes(); len(c) != 1 || c[0].User != "alice" || c[0].Kind != GroupsChanged || len(c[0].Groups) != 0 {
		t.Fatalf("changes %+v, want alice's mapped groups emptied", c)
	}
	if _, err := d.Login(bg, "alice", alicePassword); err != nil {
		t.Fatal(err) // alice may still log in; she only lost the mapped group
	}
	// bob is disabled, then alice deleted
	srv.ldapmodify("", "dn: uid=bob,"+peopleDN+"\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n")
	srv.ldapmodify("", "dn: uid=alice,"+peopleDN+"\nchangetype: delete\n")
	waitFor(t, 10*time.Second, "bob and alice to go", func() bool { return len(changes()) == 3 })
	c := changes()[1:]
	slices.SortFunc(c, func(a, b Change) int { return strings.Compare(a.User, b.User) })
	if c[0].User != "alice" || c[0].Kind != Deleted || c[1].User != "bob" || c[1].Kind != Disabled {
		t.Fatalf("changes %+v", c)
	}
	if w := watched(s); len(w) != 0 {
		t.Fatalf("still watching %v", w)
	}
	if !strings.Contains(l.String(), `directory user "bob" disabled in the directory`) {
		t.Fatalf("log:\n%s", l)
	}
}

// slapd stopped: logins are refused at once with a reason, and a sync pass
// ends no session.
func TestDirectoryDownRefusesFastAndKeepsSessions(t *testing.T) {
	srv := startSlapd(t)
	d, l := newDir(t, baseConfig(srv.url()))
	var changed []Change
	s := NewSyncer(d, time.Hour, func() []string { return []string{guardsDN} }, func(cs []Change) { changed = append(changed, cs...) })
	t.Cleanup(s.Close)
	u, err := d.Login(bg, "alice", alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	s.Watch(u)
	d.Forget("alice")
	srv.stop()
	start := time.Now()
	_, err = d.Login(bg, "alice", alicePassword)
	checkErr(t, "login while slapd is stopped", err, ErrUnavailable)
	if el := time.Since(start); el > time.Second {
		t.Fatalf("refusal took %s", el)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("reason not clear: %v", err)
	}
	if err := s.SyncNow(bg); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("sync while down: %v", err)
	}
	if len(changed) != 0 || len(watched(s)) != 1 {
		t.Fatalf("an unreachable directory ended sessions: %v", changed)
	}
	if !strings.Contains(l.String(), "live sessions kept") {
		t.Fatalf("log:\n%s", l)
	}
}

// A directory that accepts and never answers, or answers garbage, refuses
// logins within the timeout.
func TestHangingOrGarbageDirectoryTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name, scheme string
		serve        func(net.Conn)
		reason       string
	}{
		{"silent ldap", "ldap", func(c net.Conn) {}, "did not answer within"},
		{"silent ldaps handshake", "ldaps", func(c net.Conn) {}, "did not answer within"},
		{"garbage", "ldap", func(c net.Conn) {
			b := make([]byte, 512)
			rand.Read(b)
			b[0] = 0x30
			c.Write(b)
		}, "directory unavailable"},
		{"closes at once", "ldap", func(c net.Conn) { c.Close() }, "directory unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			t.Cleanup(func() { ln.Close() })
			var held []net.Conn
			var mu sync.Mutex
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					held = append(held, c)
					mu.Unlock()
					tc.serve(c)
				}
			}()
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range held {
					c.Close()
				}
			})
			cfg := baseConfig(tc.scheme + "://" + ln.Addr().String())
			cfg.Timeout = 500 * time.Millisecond
			cfg.TLS = &tls.Config{InsecureSkipVerify: true}
			d, _ := newDir(t, cfg)
			start := time.Now()
			_, err = d.Login(bg, "alice", alicePassword)
			el := time.Since(start)
			checkErr(t, "login", err, ErrUnavailable)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("reason %q not in %v", tc.reason, err)
			}
			if el > 2*time.Second {
				t.Fatalf("login took %s with a 500 ms timeout", el)
			}
			// the caller's own deadline is honoured too
			ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
			defer cancel()
			start = time.Now()
			_, err = d.Login(ctx, "alice", alicePassword)
			if !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
				t.Fatalf("caller deadline: %v after %s", err, time.Since(start))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := baseConfig("ldaps://dc1.example.test")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"http URL":           func(c *Config) { c.URL = "http://dc1" },
		"URL with DN":        func(c *Config) { c.URL = "ldap://dc1/dc=x" },
		"URL with user":      func(c *Config) { c.URL = "ldap://u:p@dc1" },
		"no bind password":   func(c *Config) { c.BindPassword = "" },
		"base not a DN":      func(c *Config) { c.BaseDN = "people" },
		"filter without %s":  func(c *Config) { c.UserFilter = "(uid=alice)" },
		"filter with two %s": func(c *Config) { c.UserFilter = "(|(uid=%s)(cn=%s))" },
		"filter broken":      func(c *Config) { c.UserFilter = "(uid=%s" },
		"StartTLS on ldaps":  func(c *Config) { c.StartTLS = true },
		"disabled broken":    func(c *Config) { c.DisabledFilter = "employeeType=disabled)" },
	} {
		c := good
		edit(&c)
		err := c.Validate()
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if strings.Contains(err.Error(), svcPassword) {
			t.Fatalf("%s: error holds the bind password", name)
		}
	}
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !testutil.Poll(within, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}

// An error quoting a long foreign text cuts it on a rune boundary: a cut in
// the middle of "é" would show as \xc3 in a quoted DN and as invalid UTF-8
// in a reason.
func TestErrorsCutForeignTextOnARuneBoundary(t *testing.T) {
	dn := "=" + strings.Repeat("é", 100) // 1 + 59*2 = 119 bytes: byte 120 starts an é
	err := CheckDN(dn)
	if err == nil {
		t.Fatalf("CheckDN(%q) accepted", dn)
	}
	if msg := err.Error(); strings.Contains(msg, `\x`) || !strings.Contains(msg, strings.Repeat("é", 59)+"…") {
		t.Errorf("CheckDN error = %q", msg)
	}

	d := &Directory{}
	err = d.unavailableErr(context.Background(), "bind", errors.New("x"+strings.Repeat("é", 100)))
	if msg := err.Error(); !utf8.ValidString(msg) || !strings.Contains(msg, "…") {
		t.Errorf("unavailable error = %q", msg)
	}
}

// watched lists the users s re-reads at each pass (asked of its goroutine,
// which owns the set).
func watched(s *Syncer) []string {
	out := make(chan []string, 1)
	if !s.do(func(st *syncState) {
		names := make([]string, 0, len(st.watched))
		for n := range st.watched {
			names = append(names, n)
		}
		slices.Sort(names)
		out <- names
	}) {
		return nil
	}
	return <-out
}
