package token

import (
	"strings"
	"testing"
)

const sampleJWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"

func TestSplitQuery(t *testing.T) {
	cases := []struct{ in, tok, rest string }{
		{"", "", ""},
		{"token=" + sampleJWT, sampleJWT, ""},
		{"a=1&token=" + sampleJWT + "&b=%20x", sampleJWT, "a=1&b=%20x"},
		// FFmpeg's SETUP URL: control path appended after the query
		{"token=" + sampleJWT + "/trackID=0", sampleJWT, "/trackID=0"},
		{"a=1&token=" + sampleJWT + "/trackID=1", sampleJWT, "a=1/trackID=1"},
		// an escaped key still counts; a repeated one is removed too
		{"%74oken=" + sampleJWT + "&token=second", sampleJWT, ""},
		{"tokens=x&mytoken=y", "", "tokens=x&mytoken=y"},
	}
	for _, c := range cases {
		tok, rest := SplitQuery(c.in)
		if tok != c.tok || rest != c.rest {
			t.Errorf("SplitQuery(%q) = %q, %q; want %q, %q", c.in, tok, rest, c.tok, c.rest)
		}
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for _, s := range []string{sampleJWT} {
		if !LooksLikeJWT(s) {
			t.Errorf("%q not taken for a JWT", s)
		}
	}
	for _, s := range []string{"", "hunter2-password", "eyJ.a", "eyJa.b.c.d", "eyJ a.b.c", "abc.def.ghi", "eyJ" + strings.Repeat("a", MaxTokenBytes) + ".b.c"} {
		if LooksLikeJWT(s) {
			t.Errorf("%q taken for a JWT", s)
		}
	}
}
