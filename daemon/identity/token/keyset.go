package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
)

// Refresh timing of a key source. Variables, not constants, only so that the
// package's own tests can shorten them; nothing else changes them.
var (
	refreshEvery      = 10 * time.Minute // routine re-read of a JWKS
	minRefreshGap     = 30 * time.Second // an unknown kid triggers at most one fetch per gap
	retryAfterFailure = 30 * time.Second // a failed fetch is retried this soon
	fetchTimeout      = 10 * time.Second
)

// maxJWKSBytes bounds a JWKS document; real ones are a few KiB.
const maxJWKSBytes = 1 << 20

// minRSABits refuses toy RSA keys even if a JWKS publishes them.
const minRSABits = 2048

// verificationKey is one public key of an issuer, with the algorithm it may verify.
type verificationKey struct {
	kid string
	alg string // RS256, ES256 or EdDSA: derived from the key type; a JWK "alg" must agree
	pub crypto.PublicKey
}

// keySet is an immutable snapshot of an issuer's keys; a refresh swaps in a new one.
type keySet struct {
	byKID map[string]verificationKey
}

func (s *keySet) lookup(kid string) (verificationKey, bool) {
	if s == nil {
		return verificationKey{}, false
	}
	if k, ok := s.byKID[kid]; ok {
		return k, true
	}
	// A token without a kid is accepted only when the set has exactly one key,
	// so that it is never ambiguous which key verified it.
	if kid == "" && len(s.byKID) == 1 {
		for _, k := range s.byKID {
			return k, true
		}
	}
	return verificationKey{}, false
}

// parseJWKS turns a JWKS document into a key set. Keys this package cannot
// use (HMAC "oct" keys, RSA below 2048 bits, curves other than P-256,
// X25519, encryption-only keys, duplicates) are skipped and counted, never
// fatal: an issuer that publishes one odd key keeps its good ones. A document
// that is not a JWKS at all is an error and the caller keeps the old set.
func parseJWKS(doc []byte) (*keySet, int, error) {
	var raw jwkset.JWKSMarshal
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, 0, errors.New("JWKS is not valid JSON")
	}
	if raw.Keys == nil {
		return nil, 0, errors.New(`JWKS has no "keys" array`)
	}
	set := &keySet{byKID: make(map[string]verificationKey, len(raw.Keys))}
	skipped := 0
	seen := map[string]bool{}
	for _, m := range raw.Keys {
		k, ok := usableKey(m)
		if !ok {
			skipped++
			continue
		}
		if seen[k.kid] {
			skipped++
			delete(set.byKID, k.kid) // two keys under one kid: trust neither
			continue
		}
		seen[k.kid] = true
		set.byKID[k.kid] = k
	}
	return set, skipped, nil
}

func usableKey(m jwkset.JWKMarshal) (verificationKey, bool) {
	if m.USE != "" && m.USE != jwkset.UseSig {
		return verificationKey{}, false
	}
	if m.KTY == jwkset.KtyOct || m.D != "" || m.K != "" {
		return verificationKey{}, false // symmetric or private material has no place in a JWKS
	}
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return verificationKey{}, false
	}
	k := verificationKey{kid: m.KID}
	switch pub := jwk.Key().(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return verificationKey{}, false
		}
		k.alg, k.pub = "RS256", pub
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return verificationKey{}, false
		}
		k.alg, k.pub = "ES256", pub
	case ed25519.PublicKey:
		k.alg, k.pub = "EdDSA", pub
	default:
		return verificationKey{}, false
	}
	if m.ALG != "" && string(m.ALG) != k.alg {
		return verificationKey{}, false
	}
	return k, true
}

// removedKIDs lists the kids of old that new no longer holds with the same key
// material: a key replaced under the same kid counts as removed.
func removedKIDs(old, new *keySet) []string {
	if old == nil {
		return nil
	}
	var gone []string
	for kid, ok := range old.byKID {
		nk, found := new.byKID[kid]
		if !found || !sameKey(ok.pub, nk.pub) {
			gone = append(gone, kid)
		}
	}
	sort.Strings(gone)
	return gone
}

func sameKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// keySource keeps one issuer's key set current. Its goroutine is the only
// writer of current; verifiers read the snapshot without locks.
type keySource struct {
	issuer   string
	url      string // exactly one of url and file is set
	file     string
	client   *http.Client
	current  atomic.Pointer[keySet]
	status   atomic.Pointer[SourceStatus]
	requests chan chan struct{}
	removed  func(issuer, kid string)
	logf     func(format string, args ...any)
	cancel   context.CancelFunc
	done     chan struct{}
}

// SourceStatus reports how current an issuer's keys are (for `issuer list`).
type SourceStatus struct {
	Keys        int
	Skipped     int
	LastRefresh time.Time // last successful read
	LastError   string    // of the last attempt; "" when it succeeded
}

func startKeySource(issuer, url, file string, client *http.Client, removed func(issuer, kid string), logf func(string, ...any)) *keySource {
	ctx, cancel := context.WithCancel(context.Background())
	s := &keySource{
		issuer: issuer, url: url, file: file, client: client,
		requests: make(chan chan struct{}),
		removed:  removed, logf: logf,
		cancel: cancel, done: make(chan struct{}),
	}
	s.status.Store(&SourceStatus{LastError: "not read yet"})
	go s.run(ctx)
	return s
}

func (s *keySource) stop() {
	s.cancel()
	<-s.done
}

func (s *keySource) run(ctx context.Context) {
	defer close(s.done)
	var lastAttempt time.Time
	attempt := func() time.Duration {
		lastAttempt = time.Now()
		if s.refresh(ctx) {
			return refreshEvery
		}
		return retryAfterFailure
	}
	timer := time.NewTimer(attempt())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			timer.Reset(attempt())
		case reply := <-s.requests:
			if time.Since(lastAttempt) >= minRefreshGap {
				timer.Reset(attempt())
			}
			close(reply)
		}
	}
}

// refreshForUnknownKID asks the source to re-read its keys now (subject to the
// 30 s gap) and waits until it has, or ctx ends.
func (s *keySource) refreshForUnknownKID(ctx context.Context) {
	reply := make(chan struct{})
	select {
	case s.requests <- reply:
	case <-ctx.Done():
		return
	case <-s.done:
		return
	}
	select {
	case <-reply:
	case <-ctx.Done():
	case <-s.done:
	}
}

// refresh reads the JWKS once. On failure the old keys stay: an identity
// provider that is down must not cut every live session.
func (s *keySource) refresh(ctx context.Context) bool {
	doc, err := s.read(ctx)
	var set *keySet
	skipped := 0
	if err == nil {
		set, skipped, err = parseJWKS(doc)
	}
	old := s.status.Load()
	if err != nil {
		st := *old
		st.LastError = err.Error()
		s.status.Store(&st)
		s.logf("issuer %q: keys not refreshed, keeping %d old ones: %v", s.issuer, old.Keys, err)
		return false
	}
	prev := s.current.Swap(set)
	s.status.Store(&SourceStatus{Keys: len(set.byKID), Skipped: skipped, LastRefresh: time.Now()})
	if skipped > 0 {
		s.logf("issuer %q: %d JWKS keys skipped (not RS256 >= 2048 bits, ES256 P-256 or Ed25519 signing keys, or duplicate kid)", s.issuer, skipped)
	}
	for _, kid := range removedKIDs(prev, set) {
		s.logf("issuer %q: signing key %q left the JWKS; its sessions end", s.issuer, kid)
		if s.removed != nil {
			s.removed(s.issuer, kid)
		}
	}
	return true
}

func (s *keySource) read(ctx context.Context) ([]byte, error) {
	if s.file != "" {
		f, err := os.Open(s.file)
		if err != nil {
			return nil, fmt.Errorf("cannot read JWKS file: %w", err)
		}
		defer f.Close()
		return readLimited(f)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("bad JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS URL answered HTTP %d", resp.StatusCode)
	}
	return readLimited(resp.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	doc, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read JWKS: %w", err)
	}
	if len(doc) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", maxJWKSBytes)
	}
	return doc, nil
}
