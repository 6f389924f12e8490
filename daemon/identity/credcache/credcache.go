// Package credcache remembers verified logins so that a repeated correct
// one skips the expensive check (an argon2 run, a directory bind).
//
// An entry is keyed by an HMAC of user name and password under a random key
// that lives only in this process: the password is never kept, and a key
// read from the memory of another process or a core file of an older one is
// worthless.
package credcache

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Cache maps verified (user, password) pairs to a V. It is safe for
// concurrent use.
type Cache[V any] struct {
	key [32]byte
	max int
	ttl time.Duration

	mu      sync.Mutex
	entries map[[32]byte]entry[V]
}

type entry[V any] struct {
	user    string // for Forget; not a secret
	value   V
	added   time.Time
	expires time.Time // zero: never
}

// New returns a cache of at most maxEntries entries (past it the oldest
// goes) that each live for ttl: 0 keeps them until Reset or Forget, < 0
// disables the cache (Get always misses).
func New[V any](maxEntries int, ttl time.Duration) *Cache[V] {
	c := &Cache[V]{max: max(maxEntries, 1), ttl: ttl, entries: map[[32]byte]entry[V]{}}
	if _, err := rand.Read(c.key[:]); err != nil {
		panic("credcache: no randomness for the cache key: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return c
}

func (c *Cache[V]) mac(user, password string) (out [32]byte) {
	m := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user))) // length prefix: ("ab","c") != ("a","bc")
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write([]byte(password))
	copy(out[:], m.Sum(nil))
	return out
}

func (e entry[V]) live(now time.Time) bool { return e.expires.IsZero() || now.Before(e.expires) }

// Get returns what Put stored for this user and password, if it has not
// expired.
func (c *Cache[V]) Get(user, password string) (V, bool) {
	var zero V
	if c.ttl < 0 {
		return zero, false
	}
	k := c.mac(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return zero, false
	}
	if !e.live(time.Now()) {
		delete(c.entries, k)
		return zero, false
	}
	return e.value, true
}

// Put remembers that this user and password were verified, with v.
func (c *Cache[V]) Put(user, password string, v V) {
	if c.ttl < 0 {
		return
	}
	k := c.mac(user, password)
	now := time.Now()
	e := entry[V]{user: user, value: v, added: now}
	if c.ttl > 0 {
		e.expires = now.Add(c.ttl)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, replace := c.entries[k]; !replace && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = e
}

// evictLocked drops the expired entries, and the oldest if none was.
func (c *Cache[V]) evictLocked(now time.Time) {
	var oldestK [32]byte
	var oldest time.Time
	for k, e := range c.entries {
		if !e.live(now) {
			delete(c.entries, k)
			continue
		}
		if oldest.IsZero() || e.added.Before(oldest) {
			oldestK, oldest = k, e.added
		}
	}
	if len(c.entries) >= c.max {
		delete(c.entries, oldestK)
	}
}

// Forget drops every entry of user.
func (c *Cache[V]) Forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.user == user {
			delete(c.entries, k)
		}
	}
}

// Reset drops every entry.
func (c *Cache[V]) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

// Len is the number of entries, expired ones included until they are seen.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
