package token

import (
	"net/url"
	"strings"
)

// QueryParam is the URL query parameter that carries a token for clients
// whose password field is too short for one.
const QueryParam = "token"

// LooksLikeJWT tells a compact JWS (three base64url parts, the first a JSON
// object) from an ordinary password, so that an RTSP password field can carry
// either. It decides only which check to try, never whether to accept.
func LooksLikeJWT(s string) bool {
	if len(s) > MaxTokenBytes || !strings.HasPrefix(s, "eyJ") || strings.Count(s, ".") != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// SplitQuery removes every token= parameter from a raw query string and
// returns the first token and the query without any of them, other
// parameters kept byte for byte. A '/' inside a token value starts what
// FFmpeg appends to the URL after the query ("/trackID=0"): it is kept in
// rest, since no JWT holds a '/'.
func SplitQuery(rawQuery string) (tok, rest string) {
	if rawQuery == "" {
		return "", ""
	}
	kept := make([]string, 0, 4)
	suffix := ""
	for _, part := range strings.Split(rawQuery, "&") {
		key, value, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err != nil || k != QueryParam {
			kept = append(kept, part)
			continue
		}
		if i := strings.IndexByte(value, '/'); i >= 0 {
			value, suffix = value[:i], value[i:]
		}
		if v, err := url.QueryUnescape(value); err == nil && tok == "" {
			tok = v
		}
	}
	return tok, strings.Join(kept, "&") + suffix
}
