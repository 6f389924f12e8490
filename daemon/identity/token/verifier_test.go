package token

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyAcceptsRS256ES256EdDSA(t *testing.T) {
	rsaKey, ecKey, edKey := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1"), newEdKey(t, "ed-1")
	srv := startJWKS(t, rsaKey, ecKey, edKey)
	v, logs := newVerifier(t, srv, Options{})
	for _, k := range []signingKey{rsaKey, ecKey, edKey} {
		c := claims("guard-" + k.kid)
		raw := sign(t, k, c)
		id, err := v.Verify(bg, raw)
		if err != nil {
			t.Fatalf("%s token refused: %v", k.method.Alg(), err)
		}
		want := Identity{Issuer: "portal", Subject: "guard-" + k.kid, JTI: "jti-guard-" + k.kid, KeyID: k.kid,
			Expiry: time.Unix(c["exp"].(int64), 0)}
		if id.Issuer != want.Issuer || id.Subject != want.Subject || id.JTI != want.JTI || id.KeyID != want.KeyID || !id.Expiry.Equal(want.Expiry) {
			t.Fatalf("%s: identity %+v, want %+v", k.method.Alg(), id, want)
		}
		if strings.Join(id.Groups, ",") != "guards,night-shift" {
			t.Fatalf("%s: groups %q", k.method.Alg(), id.Groups)
		}
		if strings.Contains(logs.String(), raw) {
			t.Fatal("a token reached the log")
		}
	}
}

func TestVerifyConfigurableClaims(t *testing.T) {
	key := newECKey(t, "ec-1")
	srv := startJWKS(t, key)
	v := New(Options{})
	t.Cleanup(v.Close)
	if err := v.SetIssuers([]Issuer{{Name: "kc", Issuer: testIss, Audience: testAud, JWKSURL: srv.URL,
		SubjectClaim: "preferred_username", GroupsClaim: "realm_access.roles"}}); err != nil {
		t.Fatal(err)
	}
	c := claims("uuid-1")
	c["preferred_username"] = "alice"
	c["realm_access"] = map[string]any{"roles": []string{"viewer"}}
	id, err := v.Verify(bg, sign(t, key, c))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || len(id.Groups) != 1 || id.Groups[0] != "viewer" {
		t.Fatalf("identity %+v", id)
	}
	delete(c, "preferred_username")
	if _, err := v.Verify(bg, sign(t, key, c)); !errors.Is(err, ErrClaims) {
		t.Fatalf("missing subject claim: %v, want ErrClaims", err)
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	rsaKey, edKey := newRSAKey(t, "rsa-1"), newEdKey(t, "ed-1")
	srv := startJWKS(t, rsaKey, edKey)
	v, logs := newVerifier(t, srv, Options{})
	good := sign(t, rsaKey, claims("alice"))
	if _, err := v.Verify(bg, good); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	edPubRaw := []byte(edKey.priv.Public().(ed25519.PublicKey))

	edit := func(f func(c jwt.MapClaims)) jwt.MapClaims { c := claims("alice"); f(c); return c }
	hmacWith := func(secret []byte, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("alice"))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noneTok := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims("alice"))
		tok.Header["kid"] = "rsa-1"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherRSA := newRSAKey(t, "rsa-1") // same kid, key nobody published
	parts := strings.Split(good, ".")

	cases := []struct {
		name string
		raw  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"garbage", "not a token at all", ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"truncated signature", good[:len(good)-10], ErrSignature},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"oversized", "eyJ" + strings.Repeat("A", MaxTokenBytes) + ".a.b", ErrTooLarge},
		{"alg none", noneTok(), ErrAlgorithm},
		{"HS256 with the public key PEM", hmacWith(pubPEM, "rsa-1"), ErrAlgorithm},
		{"HS256 with the public key DER", hmacWith(pubDER, "rsa-1"), ErrAlgorithm},
		{"HS256 with the Ed25519 public key", hmacWith(edPubRaw, "ed-1"), ErrAlgorithm},
		{"RS384", sign(t, signingKey{"rsa-1", jwt.SigningMethodRS384, rsaKey.priv}, claims("alice")), ErrAlgorithm},
		{"PS256", sign(t, signingKey{"rsa-1", jwt.SigningMethodPS256, rsaKey.priv}, claims("alice")), ErrAlgorithm},
		{"EdDSA token naming the RSA kid", sign(t, signingKey{"rsa-1", jwt.SigningMethodEdDSA, edKey.priv}, claims("alice")), ErrAlgorithm},
		{"signed by an unpublished key under a known kid", sign(t, otherRSA, claims("alice")), ErrSignature},
		{"unknown kid", sign(t, newEdKey(t, "ed-unknown"), claims("alice")), ErrUnknownKey},
		{"expired", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Second).Unix() })), ErrExpired},
		{"expired beyond skew", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), ErrExpired},
		{"no exp", sign(t, rsaKey, edit(func(c jwt.MapClaims) { delete(c, "exp") })), ErrClaims},
		{"nbf beyond skew", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(2 * time.Minute).Unix() })), ErrNotYetValid},
		{"iat beyond skew", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(2 * time.Minute).Unix() })), ErrNotYetValid},
		{"wrong aud", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["aud"] = "another-box" })), ErrAudience},
		{"no aud", sign(t, rsaKey, edit(func(c jwt.MapClaims) { delete(c, "aud") })), ErrClaims},
		{"wrong iss", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.test/" })), ErrUnknownIssuer},
		{"no iss", sign(t, rsaKey, edit(func(c jwt.MapClaims) { delete(c, "iss") })), ErrUnknownIssuer},
		{"lifetime too long", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(48 * time.Hour).Unix() })), ErrLifetime},
		{"no sub", sign(t, rsaKey, edit(func(c jwt.MapClaims) { delete(c, "sub") })), ErrClaims},
		{"sub not a string", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["sub"] = 42 })), ErrClaims},
		{"sub with control characters", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["sub"] = "al\nice" })), ErrClaims},
		{"groups not strings", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["groups"] = []any{"a", 7} })), ErrClaims},
		{"exp as a string", sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), ErrClaims},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(bg, tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if len(tc.raw) > 20 && strings.Contains(err.Error(), tc.raw[len(tc.raw)-20:]) {
				t.Fatalf("error quotes the token: %v", err)
			}
		})
	}
	// nbf and iat within the 60 s skew are accepted
	skewed := sign(t, rsaKey, edit(func(c jwt.MapClaims) {
		c["nbf"] = time.Now().Add(45 * time.Second).Unix()
		c["iat"] = time.Now().Add(45 * time.Second).Unix()
	}))
	if _, err := v.Verify(bg, skewed); err != nil {
		t.Fatalf("token 45 s ahead refused: %v", err)
	}
	// aud as an array containing ours is fine
	if _, err := v.Verify(bg, sign(t, rsaKey, edit(func(c jwt.MapClaims) { c["aud"] = []string{"x", testAud} }))); err != nil {
		t.Fatalf("aud array refused: %v", err)
	}
	for _, tc := range cases {
		if len(tc.raw) > 20 && strings.Contains(logs.String(), tc.raw) {
			t.Fatalf("token %q reached the log", tc.name)
		}
	}
}

func TestUnknownKIDRefreshesAtOnceButAtMostOncePerGap(t *testing.T) {
	withTimings(t, time.Hour, 1500*time.Millisecond, time.Hour)
	oldKey, newKey := newECKey(t, "2026-a"), newEdKey(t, "2026-b")
	srv := startJWKS(t, oldKey)
	v, _ := newVerifier(t, srv, Options{})
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	fresh := sign(t, newKey, claims("bob"))
	srv.set(t, oldKey, newKey) // the issuer rotates a new key in
	// Within the gap of the start-up read, unknown kids never cause a fetch,
	// however many arrive.
	for i := 0; i < 50; i++ {
		if _, err := v.Verify(bg, fresh); !errors.Is(err, ErrUnknownKey) {
			// the gap may already have passed on a slow machine: then one fetch
			if err == nil && srv.fetches.Load() == 2 {
				break
			}
			t.Fatalf("verify %d: %v, want ErrUnknownKey", i, err)
		}
	}
	if n := srv.fetches.Load(); n > 2 {
		t.Fatalf("%d fetches for 50 unknown-kid tokens within the gap", n)
	}
	// Once the gap has passed, the next unknown kid fetches at once (the
	// routine refresh is an hour away in this test).
	waitFor(t, 10*time.Second, "the new key to verify", func() bool {
		_, err := v.Verify(bg, fresh)
		return err == nil
	})
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want exactly 2 (start-up, then one for the unknown kid)", n)
	}
}

func TestKeyRotatedOutEndsItsSessionsOnly(t *testing.T) {
	withTimings(t, 100*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond)
	keep, drop := newRSAKey(t, "keep"), newECKey(t, "drop")
	srv := startJWKS(t, keep, drop)
	ended := newEndLog()
	tr := NewTracker(ended.onEnd)
	t.Cleanup(tr.Close)
	v, logs := newVerifier(t, srv, Options{Events: tr})
	for _, s := range []struct {
		id  string
		key signingKey
	}{{"s-keep", keep}, {"s-drop-1", drop}, {"s-drop-2", drop}} {
		c := claims(s.id)
		c["jti"] = "jti-" + s.id
		id, err := v.Verify(bg, sign(t, s.key, c))
		if err != nil {
			t.Fatal(err)
		}
		tr.Track(s.id, id)
	}
	srv.set(t, keep) // "drop" leaves the JWKS
	waitFor(t, 10*time.Second, "sessions of the removed key to end", func() bool { return ended.count() == 2 })
	for _, id := range []string{"s-drop-1", "s-drop-2"} {
		if r := ended.reason(id); r != EndKeyRemoved {
			t.Fatalf("%s ended with %v, want %v", id, r, EndKeyRemoved)
		}
	}
	if r := ended.reason("s-keep"); r != 0 {
		t.Fatalf("session of the kept key ended: %v", r)
	}
	if n := tr.Len(); n != 1 {
		t.Fatalf("%d sessions tracked, want 1", n)
	}
	if _, err := v.Verify(bg, sign(t, drop, claims("late"))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of the removed key: %v, want ErrUnknownKey", err)
	}
	if !strings.Contains(logs.String(), `signing key "drop" left the JWKS`) {
		t.Fatalf("no log line for the removed key:\n%s", logs)
	}
}

func TestJWKSOutageKeepsKeysAndSessions(t *testing.T) {
	withTimings(t, 100*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond)
	key := newEdKey(t, "ed")
	srv := startJWKS(t, key)
	ended := newEndLog()
	tr := NewTracker(ended.onEnd)
	t.Cleanup(tr.Close)
	v, _ := newVerifier(t, srv, Options{Events: tr})
	id, err := v.Verify(bg, sign(t, key, claims("carol")))
	if err != nil {
		t.Fatal(err)
	}
	tr.Track("s1", id)
	before := srv.fetches.Load()
	srv.status.Store(500)
	waitFor(t, 10*time.Second, "two failed refreshes", func() bool { return srv.fetches.Load() >= before+2 })
	if st := v.Status()["portal"]; st.Keys != 1 || !strings.Contains(st.LastError, "HTTP 500") {
		t.Fatalf("status during the outage: %+v", st)
	}
	srv.doc.Store(ptr([]byte(`{"keys": 7}`)))
	srv.status.Store(200)
	waitFor(t, 10*time.Second, "a refresh of a broken document", func() bool {
		return strings.Contains(v.Status()["portal"].LastError, "not valid JSON")
	})
	if _, err := v.Verify(bg, sign(t, key, claims("carol"))); err != nil {
		t.Fatalf("key lost during an outage: %v", err)
	}
	if ended.count() != 0 {
		t.Fatal("an outage ended a session")
	}
}

func ptr[T any](v T) *T { return &v }

func TestJWKSFileSkipsUnusableKeys(t *testing.T) {
	withTimings(t, 100*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond)
	good := newECKey(t, "good")
	doc := string(jwksJSON(t, good))
	// an HMAC key and a P-384 key are in the set too: they must be skipped
	doc = strings.Replace(doc, `"keys":[`, `"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},`, 1)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	v := New(Options{})
	t.Cleanup(v.Close)
	if err := v.SetIssuers([]Issuer{{Name: "file", Issuer: testIss, Audience: testAud, JWKSFile: path}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "JWKS file read", func() bool { return v.Status()["file"].Keys == 1 })
	if st := v.Status()["file"]; st.Skipped != 1 {
		t.Fatalf("status %+v, want 1 skipped", st)
	}
	if _, err := v.Verify(bg, sign(t, good, claims("dave"))); err != nil {
		t.Fatal(err)
	}
	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("dave"))
	hmac.Header["kid"] = "hmac"
	s, _ := hmac.SignedString([]byte("secret"))
	if _, err := v.Verify(bg, s); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("HS256 token for a published oct key: %v, want ErrAlgorithm", err)
	}
}

func TestIssuerRemovedAndRevokedEndSessions(t *testing.T) {
	key := newRSAKey(t, "k")
	srv := startJWKS(t, key)
	ended := newEndLog()
	tr := NewTracker(ended.onEnd)
	t.Cleanup(tr.Close)
	v, _ := newVerifier(t, srv, Options{Events: tr})
	track := func(sid string) string {
		raw := sign(t, key, claims(sid))
		id, err := v.Verify(bg, raw)
		if err != nil {
			t.Fatal(err)
		}
		tr.Track(sid, id)
		return raw
	}
	revokedRaw := track("erin")
	track("frank")
	until := v.Revoke("jti-erin", time.Time{})
	if d := time.Until(until); d < DefaultMaxLifetime-time.Minute || d > DefaultMaxLifetime {
		t.Fatalf("revocation without a known exp lapses in %s, want %s", d, DefaultMaxLifetime)
	}
	waitFor(t, 5*time.Second, "revoked session to end", func() bool { return ended.reason("erin") == EndRevoked })
	if _, err := v.Verify(bg, revokedRaw); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked token: %v, want ErrRevoked", err)
	}
	if ended.reason("frank") != 0 {
		t.Fatal("revoking one jti ended another session")
	}
	if got := v.Revocations(); len(got) != 1 || !got["jti-erin"].Equal(until) {
		t.Fatalf("revocations %v", got)
	}
	// a restored, lapsed revocation is dropped
	v.LoadRevoked(map[string]time.Time{"old": time.Now().Add(-time.Second), "jti-frank": time.Now().Add(time.Hour)})
	if got := v.Revocations(); len(got) != 2 {
		t.Fatalf("revocations after load %v", got)
	}

	if err := v.SetIssuers(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "issuer's sessions to end", func() bool { return ended.reason("frank") == EndIssuerRemoved })
	if _, err := v.Verify(bg, sign(t, key, claims("gina"))); !errors.Is(err, ErrUnknownIssuer) {
		t.Fatalf("token of a removed issuer: %v", err)
	}
}

func TestSetIssuersIsAllOrNothing(t *testing.T) {
	srv := startJWKS(t, newEdKey(t, "k"))
	v, _ := newVerifier(t, srv, Options{})
	bad := [][]Issuer{
		{{Name: "a", Issuer: "x", Audience: "y"}},                                                                          // no JWKS
		{{Name: "a", Issuer: "x", Audience: "y", JWKSURL: "http://h/", JWKSFile: "/f"}},                                    // both
		{{Name: "a", Issuer: "x", JWKSURL: "http://h/"}},                                                                   // no audience
		{{Name: "a", Audience: "y", JWKSURL: "http://h/"}},                                                                 // no iss
		{{Name: "a", Issuer: "x", Audience: "y", JWKSURL: "ftp://h/"}},                                                     // scheme
		{{Name: "a", Issuer: "x", Audience: "y", JWKSURL: "https://u:p@h/"}},                                               // credentials
		{{Name: "a", Issuer: "x", Audience: "y", JWKSFile: "/f"}, {Name: "a", Issuer: "z", Audience: "y", JWKSFile: "/f"}}, // dup name
		{{Name: "a", Issuer: "x", Audience: "y", JWKSFile: "/f"}, {Name: "b", Issuer: "x", Audience: "y", JWKSFile: "/f"}}, // dup iss
	}
	for i, cfg := range bad {
		if err := v.SetIssuers(cfg); err == nil {
			t.Fatalf("config %d accepted", i)
		}
	}
	if _, ok := v.Status()["portal"]; !ok || len(v.Status()) != 1 {
		t.Fatalf("a refused change altered the issuers: %v", v.Status())
	}
}
