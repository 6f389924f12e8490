package stream

import (
	"net/url"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/daemon/apitype"
)

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

// RedactURL moved to apitype (its tests with it); this package's tests keep
// the short name.
var RedactURL = apitype.RedactURL
