package apitype

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"rtsp://host:554/a/b", "rtsp://host:554/a/b"},
		{"rtsp://user@host/a", "rtsp://user@host/a"},
		{"rtsp://user:secret@host:554/a?x=1", "rtsp://user:***@host:554/a?x=1"},
		{"rtsp://user:p@ss:w/o#rd@host/a", "rtsp://user:***@host/a"},
		{"rtsp://admin:" + url.PathEscape("p@ss:w/o%rd #1") + "@10.0.0.2/live", "rtsp://admin:***@10.0.0.2/live"},
		{"user:pw@host", "user:***@host"},
		{"rtsp://us/er@host/x", "rtsp://***@host/x"},
		{"", ""},
	} {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzRedactURL(f *testing.F) {
	f.Add("camuser", "p@ss:w/o%rd #1", "10.0.0.2:554", "/live?x=1")
	f.Add("a", "b", "h", "/")
	f.Add("", "pw", "host", "/a@b")
	f.Add("u", "::@@//##", "[::1]:554", "/p")
	f.Fuzz(func(t *testing.T, user, pass, host, rest string) {
		// Raw, unescaped: what an admin might paste.
		raw := "rtsp://" + user + ":" + pass + "@" + host + rest
		out := RedactURL(raw)
		if len(pass) >= 4 && strings.Contains(out, pass) && !strings.Contains(user+host+rest+"rtsp://***", pass) {
			t.Fatalf("RedactURL(%q) = %q leaks %q", raw, out, pass)
		}
		// Escaped, as url.URL builds it.
		u := url.URL{Scheme: "rtsp", User: url.UserPassword(user, pass), Host: "h", Path: "/p"}
		s := u.String()
		out = RedactURL(s)
		esc := strings.TrimPrefix(url.UserPassword("", pass).String(), ":")
		if len(esc) >= 4 && strings.Contains(out, esc) && !strings.Contains(url.User(user).String()+"rtsp://h/p***", esc) {
			t.Fatalf("RedactURL(%q) = %q leaks %q", s, out, esc)
		}
	})
}
