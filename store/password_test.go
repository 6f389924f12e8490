package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordHashing(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Error("same salt twice")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct hors": false, "": false, "Correct horse": false} {
		if ok, err := VerifyPassword(h, pw); ok != want || err != nil {
			t.Errorf("VerifyPassword(%q) = %v %v", pw, ok, err)
		}
	}
	// Parameters come from the hash, so other costs still verify.
	p, _ := parsePHC(h)
	cheap := phc{memory: 64, time: 1, threads: 1, salt: p.salt}
	cheap.hash = []byte("0123456789abcdef") // wrong on purpose
	if ok, err := VerifyPassword(cheap.String(), "correct horse"); ok || err != nil {
		t.Errorf("cheap wrong hash: %v %v", ok, err)
	}
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 4 GiB: refused, not attempted
		"$argon2id$v=19$m=19456,t=100000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
	} {
		start := time.Now()
		ok, err := VerifyPassword(bad, "x")
		if ok || !errors.Is(err, errBadHash) {
			t.Errorf("VerifyPassword(%q) = %v %v", bad, ok, err)
		}
		// Refused by parsing, not by attempting a 4 GiB hash (generous
		// bound: the build machine is shared).
		if time.Since(start) > 2*time.Second {
			t.Errorf("malformed hash %q took %s to refuse", bad, time.Since(start))
		}
	}
}

// BenchmarkVerifyPassword measures one password check at the chosen cost
// (budget: under ~50 ms on the 2-core build machine).
func BenchmarkVerifyPassword(b *testing.B) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := VerifyPassword(h, "correct horse battery staple")
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
