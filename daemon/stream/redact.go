package stream

import (
	"strings"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/apitype"
)

// scrub removes every occurrence of the given secrets (and their URL-escaped
// forms) from s and redacts URLs in it, for text that comes from a camera or
// from a library error that may echo a request URL.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, v := range secretForms(sec) {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return apitype.RedactURLsInText(s)
}

// parsePath splits an RTSP path ("/cam/stream", leading slash optional, one
// trailing slash tolerated) into camera and stream names. Anything else
// (more segments, "..", empty names, bytes outside the name set) is refused.
func parsePath(p string) (cam, st string, ok bool) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	cam, st, ok = strings.Cut(p, "/")
	if !ok || !access.ValidName(cam) || !access.ValidName(st) {
		return "", "", false
	}
	return cam, st, true
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "...(truncated)"
}
