// Package textutil cuts strings for messages without splitting a UTF-8
// sequence, so a cut error text or log field stays valid UTF-8.
package textutil

import "unicode/utf8"

// Ellipsis marks where Shorten cut a string.
const Ellipsis = "…"

// Prefix returns the longest prefix of s that is at most n bytes long and
// ends on a rune boundary.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Shorten returns s unchanged if it is at most n bytes, otherwise its
// rune-boundary prefix of at most n bytes followed by Ellipsis.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Prefix(s, n) + Ellipsis
}
