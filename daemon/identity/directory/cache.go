package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// maxCacheEntries bounds the bind cache; past it the oldest entries go.
const maxCacheEntries = 4096

// bindCache remembers successful logins for at most ttl, keyed by an HMAC of
// user name and password under a key that lives only in this process: the
// password is never kept, and the keys are worthless to anyone who reads
// the memory of another process or a core file of an older one.
type bindCache struct {
	mu      sync.Mutex
	key     [32]byte
	ttl     time.Duration
	entries map[[32]byte]cached
}

type cached struct {
	user    User
	expires time.Time
}

func newBindCache(ttl time.Duration) *bindCache {
	c := &bindCache{ttl: ttl, entries: map[[32]byte]cached{}}
	if _, err := rand.Read(c.key[:]); err != nil {
		panic("directory: no randomness for the bind cache key: " + err.Error())
	}
	return c
}

func (c *bindCache) hash(user, password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user))) // length prefix: ("ab","c") != ("a","bc")
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (c *bindCache) get(user, password string) (User, bool) {
	if c.ttl < 0 {
		return User{}, false
	}
	k := c.hash(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || !time.Now().Before(e.expires) {
		delete(c.entries, k)
		return User{}, false
	}
	return e.user, true
}

func (c *bindCache) put(user, password string, u User) {
	if c.ttl < 0 {
		return
	}
	k := c.hash(user, password)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		var oldestK [32]byte
		var oldest time.Time
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
				continue
			}
			if oldest.IsZero() || e.expires.Before(oldest) {
				oldestK, oldest = k, e.expires
			}
		}
		if len(c.entries) >= maxCacheEntries {
			delete(c.entries, oldestK)
		}
	}
	c.entries[k] = cached{user: u, expires: now.Add(c.ttl)}
}

func (c *bindCache) forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.user.Name == user {
			delete(c.entries, k)
		}
	}
}

func (c *bindCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
