package camsim

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	digestRealm    = "camsim"
	digestNonceTTL = 5 * time.Minute
	maxDigestNonce = 4096 // issued nonces kept at most; oldest are dropped
)

// digestCache holds the nonces a camera issued and the highest nonce count
// seen for each, so a replayed Authorization header is refused.
type digestCache struct {
	mu     sync.Mutex
	issued map[string]*digestNonce
}

type digestNonce struct {
	expires time.Time
	nc      uint64
}

func newDigestCache() *digestCache { return &digestCache{issued: map[string]*digestNonce{}} }

func (d *digestCache) issue(now time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	n := hex.EncodeToString(b[:])
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(now)
	if len(d.issued) >= maxDigestNonce {
		var oldest string
		var t time.Time
		for k, v := range d.issued {
			if oldest == "" || v.expires.Before(t) {
				oldest, t = k, v.expires
			}
		}
		delete(d.issued, oldest)
	}
	d.issued[n] = &digestNonce{expires: now.Add(digestNonceTTL)}
	return n
}

func (d *digestCache) pruneLocked(now time.Time) {
	for k, v := range d.issued {
		if now.After(v.expires) {
			delete(d.issued, k)
		}
	}
}

// use checks that nonce was issued and nc grows; it reports stale nonces.
func (d *digestCache) use(nonce string, nc uint64, now time.Time) (ok, stale bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, found := d.issued[nonce]
	if !found {
		return false, true
	}
	if now.After(n.expires) {
		delete(d.issued, nonce)
		return false, true
	}
	if nc <= n.nc {
		return false, false
	}
	n.nc = nc
	return true, false
}

// parseDigestAuth parses the parameters of an "Authorization: Digest ..." header.
func parseDigestAuth(h string) (map[string]string, bool) {
	const prefix = "digest "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return nil, false
	}
	s := h[len(prefix):]
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, false
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, false
			}
			val, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := out[key]; dup {
			return nil, false
		}
		out[key] = val
	}
	return out, true
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// checkHTTPDigest verifies RFC 2617 Digest (MD5, qop=auth). On failure it
// writes the 401 challenge itself and returns false.
func (c *Camera) checkHTTPDigest(w http.ResponseWriter, r *http.Request) bool {
	now := time.Now()
	stale := false
	if p, ok := parseDigestAuth(r.Header.Get("Authorization")); ok {
		nc, err := strconv.ParseUint(p["nc"], 16, 64)
		valid := err == nil && p["qop"] == "auth" && p["realm"] == digestRealm &&
			p["uri"] == r.RequestURI && p["cnonce"] != "" &&
			(p["algorithm"] == "" || strings.EqualFold(p["algorithm"], "MD5"))
		if valid {
			ha1 := md5hex(c.sim.opts.Username + ":" + digestRealm + ":" + c.sim.opts.Password)
			ha2 := md5hex(r.Method + ":" + p["uri"])
			want := md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
			userOK := subtle.ConstantTimeCompare([]byte(p["username"]), []byte(c.sim.opts.Username)) == 1
			respOK := subtle.ConstantTimeCompare([]byte(strings.ToLower(p["response"])), []byte(want)) == 1
			if userOK && respOK {
				var ok bool
				if ok, stale = c.digests.use(p["nonce"], nc, now); ok {
					return true
				}
			}
		}
	}
	nonce := c.digests.issue(now)
	ch := `Digest realm="` + digestRealm + `", qop="auth", algorithm=MD5, nonce="` + nonce + `"`
	if stale {
		ch += `, stale=true`
	}
	w.Header().Set("WWW-Authenticate", ch)
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
	return false
}
