package stream

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// FuzzParseBasic: any Authorization header value parses without a panic;
// what parses round-trips, with a non-empty user name holding no ':'.
func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{
		"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:p:w")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":nouser")),
		"Basic !!!", "Basic ", "Digest username=\"a\"", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hv string) {
		user, pass, ok := parseBasic(base.HeaderValue{hv})
		if !ok {
			return
		}
		if user == "" || strings.Contains(user, ":") {
			t.Fatalf("parsed user %q from %q", user, hv)
		}
		enc, _ := strings.CutPrefix(hv, "Basic ")
		dec, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if string(dec) != user+":"+pass {
			t.Fatalf("%q parsed as %q:%q", dec, user, pass)
		}
	})
}
