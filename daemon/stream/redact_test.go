package stream

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

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		in      string
		cam, st string
		ok      bool
	}{
		{"/cam1/main", "cam1", "main", true},
		{"cam1/main", "cam1", "main", true},
		{"/cam1/main/", "cam1", "main", true},
		{"/cam1", "", "", false},
		{"/cam1/main/x", "", "", false},
		{"/../main", "", "", false},
		{"/cam1/..", "", "", false},
		{"/Cam1/main", "", "", false},
		{"/cam1/ma in", "", "", false},
		{"//cam1/main", "", "", false},
		{"/cam1/main\x00", "", "", false},
	} {
		cam, st, ok := parsePath(c.in)
		if cam != c.cam || st != c.st || ok != c.ok {
			t.Errorf("parsePath(%q) = %q %q %v", c.in, cam, st, ok)
		}
	}
}

func TestScrub(t *testing.T) {
	pw := "p@ss:w/o%rd #1 ?x"
	in := "dial rtsp://camuser:" + url.PathEscape(pw) + "@1.2.3.4/x failed; pw=" + pw + " q=" + url.QueryEscape(pw)
	out := scrub(in, pw)
	for _, f := range secretForms(pw) {
		if strings.Contains(out, f) {
			t.Errorf("scrub left %q in %q", f, out)
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

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/cam1/main", "/../x", "/a/b/c", "", "/", "//", "/a/b/", "/\xff/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		cam, st, ok := parsePath(p)
		if !ok {
			return
		}
		for _, n := range []string{cam, st} {
			if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\\x00 ") || n != strings.ToLower(n) {
				t.Fatalf("parsePath(%q) accepted %q/%q", p, cam, st)
			}
		}
	})
}

func FuzzH264Scan(f *testing.F) {
	f.Add([]byte{0x67, 1, 2, 3})
	f.Add([]byte{24, 0, 2, 0x67, 1, 0, 1, 0x68})
	f.Add([]byte{28, 0x85, 1})
	f.Add([]byte{0x40, 1, 0x42})
	f.Add([]byte{96, 1, 0, 3, 0x40, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		h264Scan(b)
		h265Scan(b)
	})
}
