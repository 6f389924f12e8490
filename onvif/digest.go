package onvif

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"

	"github.com/camwarden/camwarden/internal/textutil"
)

// digestChallenge is a parsed `WWW-Authenticate: Digest ...` header.
type digestChallenge struct {
	Realm, Nonce, Opaque, Algorithm string
	QOP                             []string
}

// findDigestChallenge returns the first Digest challenge among the
// response's WWW-Authenticate headers.
func findDigestChallenge(h http.Header) (digestChallenge, bool) {
	for _, v := range h.Values("Www-Authenticate") {
		if c, err := parseDigestChallenge(v); err == nil {
			return c, true
		}
	}
	return digestChallenge{}, false
}

// parseDigestChallenge parses one `Digest k=v, k="v"` challenge (RFC 7616).
func parseDigestChallenge(s string) (digestChallenge, error) {
	s = strings.TrimSpace(s)
	if len(s) < 7 || !strings.EqualFold(s[:6], "Digest") || (s[6] != ' ' && s[6] != '\t') {
		return digestChallenge{}, errors.New("not a Digest challenge")
	}
	params, err := parseAuthParams(s[7:])
	if err != nil {
		return digestChallenge{}, err
	}
	c := digestChallenge{
		Realm:     params["realm"],
		Nonce:     params["nonce"],
		Opaque:    params["opaque"],
		Algorithm: params["algorithm"],
	}
	for _, q := range strings.Split(params["qop"], ",") {
		if q = strings.TrimSpace(q); q != "" {
			c.QOP = append(c.QOP, strings.ToLower(q))
		}
	}
	if c.Nonce == "" {
		return digestChallenge{}, errors.New("digest challenge without nonce")
	}
	switch strings.ToUpper(c.Algorithm) {
	case "", "MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS":
	default:
		return digestChallenge{}, fmt.Errorf("unsupported digest algorithm %q", textutil.Prefix(c.Algorithm, 32))
	}
	if len(c.QOP) > 0 && !contains(c.QOP, "auth") {
		return digestChallenge{}, errors.New("digest challenge offers no qop=auth")
	}
	return c, nil
}

// parseAuthParams parses a comma-separated list of token=token or
// token="quoted \"string\"" pairs. Keys are lower-cased.
func parseAuthParams(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	for i < len(s) && len(out) < 32 {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		k := i
		for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != ' ' {
			i++
		}
		key := strings.ToLower(s[k:i])
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("auth parameter %q without value", textutil.Prefix(key, 32))
		}
		i++
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quoted string in auth header")
			}
		} else {
			v := i
			for i < len(s) && s[i] != ',' && s[i] != ' ' {
				i++
			}
			val.WriteString(s[v:i])
		}
		out[key] = val.String()
	}
	return out, nil
}

// authorization computes the Authorization header answering c for one
// request. nc is the nonce count (1 for a fresh challenge).
func (c digestChallenge) authorization(method, uri, user, pass string, nc int) string {
	var cb [12]byte
	_, _ = rand.Read(cb[:])
	return c.authorizationWith(method, uri, user, pass, nc, hex.EncodeToString(cb[:]))
}

func (c digestChallenge) authorizationWith(method, uri, user, pass string, nc int, cnonce string) string {
	alg := strings.ToUpper(c.Algorithm)
	var newHash func() hash.Hash = md5.New
	if strings.HasPrefix(alg, "SHA-256") {
		newHash = sha256.New
	}
	h := func(s string) string {
		x := newHash()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ha1 := h(user + ":" + c.Realm + ":" + pass)
	if strings.HasSuffix(alg, "-SESS") {
		ha1 = h(ha1 + ":" + c.Nonce + ":" + cnonce)
	}
	ha2 := h(method + ":" + uri)
	ncs := fmt.Sprintf("%08x", nc)
	var resp string
	qop := len(c.QOP) > 0
	if qop {
		resp = h(ha1 + ":" + c.Nonce + ":" + ncs + ":" + cnonce + ":auth:" + ha2)
	} else {
		resp = h(ha1 + ":" + c.Nonce + ":" + ha2)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%s, realm=%s, nonce=%s, uri=%s, response="%s"`,
		quote(user), quote(c.Realm), quote(c.Nonce), quote(uri), resp)
	if c.Algorithm != "" {
		fmt.Fprintf(&b, ", algorithm=%s", c.Algorithm)
	}
	if c.Opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quote(c.Opaque))
	}
	if qop {
		fmt.Fprintf(&b, `, qop=auth, nc=%s, cnonce="%s"`, ncs, cnonce)
	}
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
