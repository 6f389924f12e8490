// Package token verifies signed viewer tokens (JWTs) from configured issuers
// and keeps the sessions they opened honest: a session ends when its token
// expires, its signing key leaves the issuer's JWKS, its issuer is removed or
// its jti is revoked (see Tracker).
//
// Only RS256, ES256 and EdDSA are accepted. "none" and every HMAC algorithm
// are refused before any key is looked up, so a token "signed" with an
// issuer's public key as an HMAC secret never reaches a verifier.
//
// Errors never contain the token or any part of it.
package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/camwarden/camwarden/internal/textutil"
	"github.com/golang-jwt/jwt/v5"
)

// Limits and allowances of verification.
const (
	// ClockSkew is how far the box's clock and an issuer's may disagree on
	// nbf and iat. exp is checked strictly: the session is cut at exp, so
	// accepting a token whose exp has passed would open a session only to
	// close it at once.
	ClockSkew = 60 * time.Second
	// MaxTokenBytes refuses oversized tokens before any parsing.
	MaxTokenBytes = 8 << 10
	// DefaultMaxLifetime bounds exp - now. It is also how long a revocation of
	// a jti whose exp we do not know is kept: no token accepted after the
	// revocation can outlive it.
	DefaultMaxLifetime = 24 * time.Hour
	maxClaimBytes      = 256
	maxGroups          = 256
)

// acceptedAlgs is the complete list: no HMAC, no "none", no PS*/RS384/ES512.
var acceptedAlgs = []string{"RS256", "ES256", "EdDSA"}

// Refusal reasons. Verify wraps one of these; callers log errors.Is classes
// and the message, which names the claim or header at fault but never
// carries the token.
var (
	ErrMalformed     = errors.New("token is malformed")
	ErrTooLarge      = fmt.Errorf("token is larger than %d bytes", MaxTokenBytes)
	ErrAlgorithm     = errors.New("token algorithm is not accepted (RS256, ES256 or EdDSA only)")
	ErrUnknownIssuer = errors.New("token issuer is not configured")
	ErrUnknownKey    = errors.New("token signing key is not in the issuer's JWKS")
	ErrSignature     = errors.New("token signature is invalid")
	ErrExpired       = errors.New("token has expired")
	ErrNotYetValid   = errors.New("token is not valid yet")
	ErrAudience      = errors.New("token audience does not match the issuer's")
	ErrClaims        = errors.New("token claims are unusable")
	ErrLifetime      = errors.New("token lifetime is longer than allowed")
	ErrRevoked       = errors.New("token has been revoked")
)

// Issuer is the configuration of one token issuer.
type Issuer struct {
	Name     string // camwarden's name for it (issuer add NAME); group mappings refer to it
	Issuer   string // the exact "iss" claim its tokens carry
	Audience string // the "aud" value its tokens must contain for this box
	JWKSURL  string // http(s) URL of its JWKS; or
	JWKSFile string // a file holding its JWKS (re-read on the same schedule)

	SubjectClaim string // default "sub"; a dotted path reaches into objects
	GroupsClaim  string // default "groups"; an array of strings or one string
}

func (c Issuer) withDefaults() Issuer {
	if c.SubjectClaim == "" {
		c.SubjectClaim = "sub"
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	return c
}

// Validate says what is wrong with an issuer's configuration.
func (c Issuer) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Name == "":
		return errors.New("issuer needs a name")
	case c.Issuer == "":
		return fmt.Errorf("issuer %q needs the iss value its tokens carry", c.Name)
	case c.Audience == "":
		return fmt.Errorf("issuer %q needs an audience", c.Name)
	case (c.JWKSURL == "") == (c.JWKSFile == ""):
		return fmt.Errorf("issuer %q needs exactly one of a JWKS URL and a JWKS file", c.Name)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("issuer %q: JWKS URL must be an http:// or https:// URL", c.Name)
		}
		if u.User != nil {
			return fmt.Errorf("issuer %q: JWKS URL must not carry credentials", c.Name)
		}
	}
	return nil
}

// Identity is what a verified token says about its holder.
type Identity struct {
	Issuer  string // Issuer.Name, not the iss claim
	Subject string
	Groups  []string
	JTI     string // "" when the token has none (it then cannot be revoked alone)
	KeyID   string // kid of the key that verified it ("" for a kid-less single-key JWKS)
	Expiry  time.Time
}

// Invalidations receives the events that end sessions; Tracker implements it.
type Invalidations interface {
	KeyRemoved(issuer, kid string)
	IssuerRemoved(issuer string)
	Revoked(jti string)
}

// Options of a Verifier. All fields are optional.
type Options struct {
	Events      Invalidations
	HTTPClient  *http.Client // for JWKS URLs; default has a 10 s timeout and no redirects
	Logf        func(format string, args ...any)
	MaxLifetime time.Duration    // default DefaultMaxLifetime
	Now         func() time.Time // for tests of time claims
}

type issuerEntry struct {
	cfg    Issuer
	source *keySource
	parser *jwt.Parser
}

// issuerTable is immutable; SetIssuers swaps in a new one.
type issuerTable struct {
	byIss map[string]*issuerEntry
}

// Verifier checks tokens against the configured issuers. It is safe for
// concurrent use; Close stops its JWKS refreshers.
type Verifier struct {
	opts    Options
	mu      sync.Mutex // serialises SetIssuers and Close
	issuers atomic.Pointer[issuerTable]
	revoked revokedSet
}

// New returns a Verifier with no issuers.
func New(opts Options) *Verifier {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Timeout: fetchTimeout,
			// a redirect could send us anywhere; a JWKS URL must be the real one
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts}
	v.issuers.Store(&issuerTable{byIss: map[string]*issuerEntry{}})
	return v
}

// SetIssuers replaces the configured issuers as one change: if any entry is
// invalid nothing changes. Unchanged issuers keep their keys; a removed or
// changed issuer's sessions end (Events.IssuerRemoved) and a changed one
// starts afresh.
func (v *Verifier) SetIssuers(issuers []Issuer) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	names := map[string]bool{}
	isses := map[string]bool{}
	for _, c := range issuers {
		if err := c.Validate(); err != nil {
			return err
		}
		if names[c.Name] {
			return fmt.Errorf("issuer %q is configured twice", c.Name)
		}
		if isses[c.Issuer] {
			return fmt.Errorf("two issuers share the iss value %q", c.Issuer)
		}
		names[c.Name], isses[c.Issuer] = true, true
	}
	old := v.issuers.Load()
	oldByName := map[string]*issuerEntry{}
	for _, e := range old.byIss {
		oldByName[e.cfg.Name] = e
	}
	next := &issuerTable{byIss: map[string]*issuerEntry{}}
	for _, c := range issuers {
		c = c.withDefaults()
		if e, ok := oldByName[c.Name]; ok && e.cfg == c {
			next.byIss[c.Issuer] = e
			delete(oldByName, c.Name)
			continue
		}
		next.byIss[c.Issuer] = v.newEntry(c)
	}
	v.issuers.Store(next)
	for _, e := range oldByName {
		e.source.stop()
		v.opts.Logf("issuer %q removed or changed; its sessions end", e.cfg.Name)
		if v.opts.Events != nil {
			v.opts.Events.IssuerRemoved(e.cfg.Name)
		}
	}
	return nil
}

func (v *Verifier) newEntry(c Issuer) *issuerEntry {
	var removed func(string, string)
	if v.opts.Events != nil {
		removed = v.opts.Events.KeyRemoved
	}
	return &issuerEntry{
		cfg:    c,
		source: startKeySource(c.Name, c.JWKSURL, c.JWKSFile, v.opts.HTTPClient, removed, v.opts.Logf),
		parser: jwt.NewParser(
			jwt.WithValidMethods(acceptedAlgs),
			jwt.WithIssuer(c.Issuer),
			jwt.WithAudience(c.Audience),
			jwt.WithLeeway(ClockSkew),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(v.opts.Now),
			jwt.WithJSONNumber(),
		),
	}
}

// Status reports each issuer's key state, by issuer name.
func (v *Verifier) Status() map[string]SourceStatus {
	out := map[string]SourceStatus{}
	for _, e := range v.issuers.Load().byIss {
		out[e.cfg.Name] = *e.source.status.Load()
	}
	return out
}

// Close stops every JWKS refresher. The Verifier refuses every token after.
func (v *Verifier) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.issuers.Swap(&issuerTable{byIss: map[string]*issuerEntry{}})
	for _, e := range old.byIss {
		e.source.stop()
	}
}

// Verify checks raw and returns the identity it carries. ctx bounds the JWKS
// re-read an unknown kid may trigger.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if len(raw) > MaxTokenBytes {
		return Identity{}, ErrTooLarge
	}
	if raw == "" || strings.Count(raw, ".") != 2 {
		return Identity{}, fmt.Errorf("%w: not three dot-separated parts", ErrMalformed)
	}
	// Read the header and iss without trusting them, only to pick the issuer
	// and to refuse a forbidden algorithm with a clear reason.
	unverified, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: header or claims are not base64url JSON", ErrMalformed)
	}
	alg, _ := unverified.Header["alg"].(string)
	if !accepted(alg) {
		return Identity{}, fmt.Errorf("%w: got %q", ErrAlgorithm, printable(alg))
	}
	iss, err := unverified.Claims.GetIssuer()
	if err != nil || iss == "" {
		return Identity{}, fmt.Errorf("%w: no iss claim", ErrUnknownIssuer)
	}
	entry, ok := v.issuers.Load().byIss[iss]
	if !ok {
		return Identity{}, fmt.Errorf("%w: iss %q", ErrUnknownIssuer, printable(iss))
	}

	var used verificationKey
	var keyErr error // our own refusal from inside the keyfunc, detail kept
	keyfunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := entry.source.current.Load().lookup(kid)
		if !ok {
			entry.source.refreshForUnknownKID(ctx)
			k, ok = entry.source.current.Load().lookup(kid)
		}
		if !ok {
			keyErr = fmt.Errorf("%w: kid %q of issuer %q", ErrUnknownKey, printable(kid), entry.cfg.Name)
			return nil, keyErr
		}
		if k.alg != t.Method.Alg() {
			keyErr = fmt.Errorf("%w: %s token for a %s key", ErrAlgorithm, t.Method.Alg(), k.alg)
			return nil, keyErr
		}
		used = k
		return k.pub, nil
	}
	claims := jwt.MapClaims{}
	if _, err := entry.parser.ParseWithClaims(raw, claims, keyfunc); err != nil {
		if keyErr != nil {
			return Identity{}, keyErr
		}
		return Identity{}, classify(err)
	}

	now := v.opts.Now()
	exp, _ := claims.GetExpirationTime() // required and parsed by the parser
	if !exp.After(now) {
		return Identity{}, fmt.Errorf("%w: exp was %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if exp.Sub(now) > v.opts.MaxLifetime {
		return Identity{}, fmt.Errorf("%w: exp is more than %s away", ErrLifetime, v.opts.MaxLifetime)
	}
	id := Identity{Issuer: entry.cfg.Name, KeyID: used.kid, Expiry: exp.Time}
	if id.Subject, err = stringClaim(claims, entry.cfg.SubjectClaim); err != nil || id.Subject == "" {
		return Identity{}, fmt.Errorf("%w: subject claim %q must be a non-empty string", ErrClaims, entry.cfg.SubjectClaim)
	}
	if id.Groups, err = groupsClaim(claims, entry.cfg.GroupsClaim); err != nil {
		return Identity{}, fmt.Errorf("%w: groups claim %q: %v", ErrClaims, entry.cfg.GroupsClaim, err)
	}
	if _, present := claims["jti"]; present {
		if id.JTI, err = stringClaim(claims, "jti"); err != nil {
			return Identity{}, fmt.Errorf("%w: jti must be a string", ErrClaims)
		}
	}
	if id.JTI != "" && v.revoked.has(id.JTI, now) {
		return Identity{}, ErrRevoked
	}
	return id, nil
}

func accepted(alg string) bool {
	for _, a := range acceptedAlgs {
		if alg == a {
			return true
		}
	}
	return false
}

// classify maps the library's errors onto ours, dropping its wording (which
// can quote decoded fragments).
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future (beyond %s of clock skew)", ErrNotYetValid, ClockSkew)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: iat is in the future (beyond %s of clock skew)", ErrNotYetValid, ClockSkew)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrUnknownIssuer
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: a required claim (exp, aud or iss) is missing", ErrClaims)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return fmt.Errorf("%w: a time or audience claim has the wrong type", ErrClaims)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrSignature
	}
	return ErrMalformed
}

// lookupClaim follows a dotted path ("realm_access.roles") into nested objects.
func lookupClaim(claims jwt.MapClaims, path string) (any, bool) {
	var cur any = map[string]any(claims)
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func stringClaim(claims jwt.MapClaims, path string) (string, error) {
	v, ok := lookupClaim(claims, path)
	if !ok {
		return "", errors.New("missing")
	}
	s, ok := v.(string)
	if !ok {
		return "", errors.New("not a string")
	}
	return s, checkValue(s)
}

func groupsClaim(claims jwt.MapClaims, path string) ([]string, error) {
	v, ok := lookupClaim(claims, path)
	if !ok || v == nil {
		return nil, nil // no groups: the subject's own grants still apply
	}
	var out []string
	switch g := v.(type) {
	case string:
		out = []string{g}
	case []any:
		if len(g) > maxGroups {
			return nil, fmt.Errorf("more than %d groups", maxGroups)
		}
		for _, e := range g {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("an element is not a string")
			}
			out = append(out, s)
		}
	default:
		return nil, errors.New("neither a string nor an array of strings")
	}
	for _, s := range out {
		if err := checkValue(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkValue keeps claim values that end up in logs, audit lines and
// mappings short and printable.
func checkValue(s string) error {
	if len(s) > maxClaimBytes {
		return fmt.Errorf("a value is longer than %d bytes", maxClaimBytes)
	}
	if !utf8.ValidString(s) {
		return errors.New("a value is not UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errors.New("a value has control characters")
		}
	}
	return nil
}

// printable quotes attacker-chosen header values safely and briefly.
func printable(s string) string {
	return strings.ToValidUTF8(textutil.Shorten(s, 64), "?")
}
