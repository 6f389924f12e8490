package credcache

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

func TestGetPutForgetReset(t *testing.T) {
	c := New[int](10, 0)
	c.Put("alice", "alice-secret-pw", 1)
	if v, ok := c.Get("alice", "alice-secret-pw"); !ok || v != 1 {
		t.Fatalf("Get = %d, %v", v, ok)
	}
	for _, miss := range [][2]string{{"alice", "alice-secret-pwx"}, {"alic", "ealice-secret-pw"}, {"bob", "alice-secret-pw"}} {
		if _, ok := c.Get(miss[0], miss[1]); ok {
			t.Errorf("Get(%q, %q) hit another pair's entry", miss[0], miss[1])
		}
	}
	c.Put("bob", "bob-pw", 2)
	c.Forget("alice")
	if _, ok := c.Get("alice", "alice-secret-pw"); ok || c.Len() != 1 {
		t.Fatalf("Forget(alice): %d entries left", c.Len())
	}
	c.Reset()
	if c.Len() != 0 {
		t.Fatal("Reset kept entries")
	}
}

// The cache never holds a password: keys are HMACs, entries hold the user
// name and the value.
func TestHoldsNoPassword(t *testing.T) {
	const secret = "credcache-Secret-Pw-5512"
	c := New[string](10, time.Minute)
	c.Put("alice", secret, "v")
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if strings.Contains(string(k[:]), secret) || strings.Contains(fmt.Sprintf("%+v", e), secret) {
			t.Fatal("the cache holds the password")
		}
	}
}

func TestBoundedOldestGoesFirst(t *testing.T) {
	c := New[int](3, 0)
	for i := range 3 {
		c.Put(fmt.Sprint("u", i), "pw", i)
	}
	c.Put("u3", "pw", 3)
	if c.Len() != 3 {
		t.Fatalf("%d entries, want at most 3", c.Len())
	}
	if _, ok := c.Get("u0", "pw"); ok {
		t.Error("the oldest entry was kept past the bound")
	}
	if _, ok := c.Get("u3", "pw"); !ok {
		t.Error("the newest entry was dropped")
	}
}

func TestTTL(t *testing.T) {
	c := New[int](10, 20*time.Millisecond)
	c.Put("alice", "pw", 1)
	testutil.WaitFor(t, 10*time.Second, "the entry to expire", func() bool {
		_, ok := c.Get("alice", "pw")
		return !ok
	})
	off := New[int](10, -1)
	off.Put("alice", "pw", 1)
	if _, ok := off.Get("alice", "pw"); ok || off.Len() != 0 {
		t.Fatal("a disabled cache kept an entry")
	}
}
