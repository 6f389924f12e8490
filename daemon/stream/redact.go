package stream

import (
	"strings"

	"github.com/camwarden/camwarden/daemon/access"
)

// RedactURL returns raw with any password replaced by "***", as
// rtsp://user:***@host/path. It never returns the password: the userinfo is
// taken to run from "://" to the LAST '@' of the string, so passwords holding
// unescaped '@', '/', '#' or ':' are still covered (at the price of
// over-redacting a path that holds an '@'). A string without "://" that holds
// an '@' is redacted entirely up to that '@'.
func RedactURL(raw string) string {
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return raw
	}
	prefix := ""
	info := raw[:at]
	if i := strings.Index(info, "://"); i >= 0 {
		prefix, info = raw[:i+3], info[i+3:]
	}
	user, _, hasPass := strings.Cut(info, ":")
	if !hasPass {
		// No password delimiter: the userinfo is a bare user name, unless it
		// holds characters a user name in a URL cannot hold unescaped.
		if strings.ContainsAny(user, "/?#@[] ") {
			return prefix + "***" + raw[at:]
		}
		return raw
	}
	if strings.ContainsAny(user, "/?#@[] ") {
		user = "***"
	}
	return prefix + user + ":***" + raw[at:]
}

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
	if strings.Contains(s, "@") {
		// Redact each whitespace-separated token that looks like a URL with userinfo.
		fields := strings.Fields(s)
		changed := false
		for i, f := range fields {
			if strings.Contains(f, "://") && strings.Contains(f, "@") {
				fields[i] = RedactURL(f)
				changed = true
			}
		}
		if changed {
			s = strings.Join(fields, " ")
		}
	}
	return s
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
