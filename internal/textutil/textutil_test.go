package textutil

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrefixKeepsRunesWhole(t *testing.T) {
	s := strings.Repeat("é", 10) // 2 bytes each
	for n := 0; n <= len(s)+1; n++ {
		p := Prefix(s, n)
		if !utf8.ValidString(p) || len(p) > n || !strings.HasPrefix(s, p) || len(p) < n-1 {
			t.Errorf("Prefix(%d) = %q (%d bytes)", n, p, len(p))
		}
	}
	if got := Prefix("a€b", 3); got != "a" { // € is 3 bytes: bytes 1..3
		t.Errorf("Prefix(a€b, 3) = %q, want a", got)
	}
	if got := Prefix("abc", -1); got != "" {
		t.Errorf("Prefix(abc, -1) = %q", got)
	}
}

func TestShorten(t *testing.T) {
	if got := Shorten("short", 5); got != "short" {
		t.Errorf("Shorten(short, 5) = %q", got)
	}
	got := Shorten(strings.Repeat("日", 50), 10) // 3 bytes each
	if got != "日日日"+Ellipsis || !utf8.ValidString(got) {
		t.Errorf("Shorten = %q", got)
	}
}
