package apitype

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// URL redaction lives here, once, for the daemon, the stream layer and the
// CLI: StripUserinfo for a URL field of a response, RedactURL for a URL in a
// log line or status (the user stays, the password becomes ***),
// RedactURLsInText for free text that may quote URLs, RedactParseError for
// url.Parse errors (which quote their input).

// StripUserinfo returns raw without its user:password@ part. Input that does
// not parse but holds an '@' is replaced whole, so nothing secret can slip
// through.
func StripUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return "(URL hidden: it may hold credentials)"
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

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

// userinfoRe matches the credentials part of a URL inside free text: from
// the scheme's "://" to the last '@' before the next white space, so a
// password holding an unescaped '/', ':' or '@' is covered too.
var userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)\S*@`)

// RedactURLsInText removes user:password@ from every URL inside s (error
// messages quoting a camera URL, SDP dumps). White space is kept as it is.
func RedactURLsInText(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfoRe.ReplaceAllString(s, "$1")
}

// RedactParseError drops the URL text from url.Parse errors: it could carry
// a password the admin pasted by mistake.
func RedactParseError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
}
