package token

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkVerify is the cost of one token login per algorithm (JWKS
// already loaded).
func BenchmarkVerify(b *testing.B) {
	for _, k := range []signingKey{newRSAKey(b, "rsa"), newECKey(b, "ec"), newEdKey(b, "ed")} {
		b.Run(k.method.Alg(), func(b *testing.B) {
			srv := startJWKS(b, k)
			v, _ := newVerifier(b, srv, Options{})
			raw := sign(b, k, claims("bench"))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := v.Verify(bg, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTrackerTrackUntrack is the cost of a token session arriving and
// leaving with 10,000 others tracked.
func BenchmarkTrackerTrackUntrack(b *testing.B) {
	tr := NewTracker(nil)
	defer tr.Close()
	far := time.Now().Add(time.Hour)
	for i := 0; i < 10000; i++ {
		tr.Track(fmt.Sprintf("base-%d", i), Identity{Issuer: "p", KeyID: "k", JTI: fmt.Sprint(i), Expiry: far.Add(time.Duration(i) * time.Millisecond)})
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("s-%d", i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := ids[i%len(ids)]
		tr.Track(id, Identity{Issuer: "p", KeyID: "k", JTI: id, Expiry: far})
		tr.Untrack(id)
	}
}
