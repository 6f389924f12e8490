package apitype

import (
	"net/url"
	"regexp"
	"strings"
)

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

// userinfoRe matches the credentials part of URLs inside free text.
var userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s]*@`)

// RedactURLsInText removes user:password@ from every URL inside s (error
// messages quoting a camera URL, SDP dumps).
func RedactURLsInText(s string) string {
	return userinfoRe.ReplaceAllString(s, "$1")
}
