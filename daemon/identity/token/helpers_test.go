package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIss = "https://portal.example.test/"
	testAud = "camwarden-box-7"
)

// signingKey is a key pair a test generates, with its kid.
type signingKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newRSAKey(t testing.TB, kid string) signingKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jwt.SigningMethodRS256, k}
}

func newECKey(t testing.TB, kid string) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jwt.SigningMethodES256, k}
}

func newEdKey(t testing.TB, kid string) signingKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jwt.SigningMethodEdDSA, k}
}

// jwksJSON publishes the public halves of keys as a JWKS document.
func jwksJSON(t testing.TB, keys ...signingKey) []byte {
	t.Helper()
	doc := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		doc.Keys = append(doc.Keys, j.Marshal())
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWKS on 127.0.0.1 that a test can change and break,
// counting the fetches.
type jwksServer struct {
	*httptest.Server
	doc     atomic.Pointer[[]byte]
	status  atomic.Int32
	fetches atomic.Int32
}

func startJWKS(t testing.TB, keys ...signingKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if code := int(s.status.Load()); code != http.StatusOK {
			http.Error(w, "down for the test", code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.doc.Load())
	}))
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("test JWKS server is not on 127.0.0.1: %s", s.URL)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t testing.TB, keys ...signingKey) {
	b := jwksJSON(t, keys...)
	s.doc.Store(&b)
}

// claims returns a valid claim set for the test issuer; edit before signing.
func claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":    testIss,
		"aud":    testAud,
		"sub":    sub,
		"groups": []string{"guards", "night-shift"},
		"jti":    "jti-" + sub,
		"iat":    now.Unix(),
		"nbf":    now.Unix(),
		"exp":    now.Add(10 * time.Minute).Unix(),
	}
}

func sign(t testing.TB, k signingKey, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, c)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logBuffer collects a Verifier's log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// withTimings shortens the refresh schedule for one test.
func withTimings(t testing.TB, every, gap, retry time.Duration) {
	oldEvery, oldGap, oldRetry := refreshEvery, minRefreshGap, retryAfterFailure
	refreshEvery, minRefreshGap, retryAfterFailure = every, gap, retry
	t.Cleanup(func() { refreshEvery, minRefreshGap, retryAfterFailure = oldEvery, oldGap, oldRetry })
}

// newVerifier configures one issuer reading srv's JWKS and waits until its
// first read is done.
func newVerifier(t testing.TB, srv *jwksServer, opts Options) (*Verifier, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if opts.Logf == nil {
		opts.Logf = logs.logf
	}
	v := New(opts)
	t.Cleanup(v.Close)
	if err := v.SetIssuers([]Issuer{{Name: "portal", Issuer: testIss, Audience: testAud, JWKSURL: srv.URL + "/jwks.json"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "first JWKS read", func() bool { return v.Status()["portal"].LastError == "" })
	return v, logs
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endLog records what a Tracker ended.
type endLog struct {
	mu    sync.Mutex
	ended map[string]EndReason
	at    map[string]time.Time
}

func newEndLog() *endLog {
	return &endLog{ended: map[string]EndReason{}, at: map[string]time.Time{}}
}

func (e *endLog) onEnd(id string, r EndReason) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.ended[id]; dup {
		e.ended[id] = -1 // ended twice: a bug the tests look for
		return
	}
	e.ended[id] = r
	e.at[id] = now
}

func (e *endLog) reason(id string) EndReason {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ended[id]
}

func (e *endLog) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ended)
}

var bg = context.Background()
