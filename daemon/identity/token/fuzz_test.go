package token

import (
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, never
// accept anything but a token the test key signed, and never quote its input
// in an error.
func FuzzVerify(f *testing.F) {
	key := newEdKey(f, "ed")
	srv := startJWKS(f, key)
	v, _ := newVerifier(f, srv, Options{})
	good := sign(f, key, claims("fuzz"))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.AAAA")
	f.Add(`eyJhbGciOiJFZERTQSIsImtpZCI6WzFdfQ.e30.`)
	f.Add(strings.Repeat("A", MaxTokenBytes+1))
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(bg, raw)
		if err == nil {
			// only the test key's token (or a re-encoding of it) verifies
			if id.Subject != "fuzz" || id.JTI != "jti-fuzz" || id.KeyID != "ed" {
				t.Fatalf("accepted %q as %+v", raw, id)
			}
			return
		}
		if len(raw) >= 12 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error quotes the input: %v", err)
		}
	})
}
