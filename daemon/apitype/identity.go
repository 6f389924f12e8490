package apitype

import (
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// Identity types (#13): token issuers, the directory, group mappings and
// token revocation. The directory's bind password is write-only like every
// other secret: DirectorySetRequest carries it, Directory never does.

// Issuer is one JWT issuer with the state of its keys.
type Issuer struct {
	Name         string    `json:"name"`
	Issuer       string    `json:"iss"`
	Audience     string    `json:"audience"`
	JWKSURL      string    `json:"jwks_url,omitempty"`
	JWKSFile     string    `json:"jwks_file,omitempty"`
	SubjectClaim string    `json:"subject_claim"`
	GroupsClaim  string    `json:"groups_claim"`
	Created      time.Time `json:"created"`
	Keys         int       `json:"keys"`                   // usable keys in the last good JWKS read
	SkippedKeys  int       `json:"skipped_keys,omitempty"` // keys of a kind camwarden does not accept
	LastRefresh  time.Time `json:"last_refresh,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
}

// IssuerList is the answer of GET /v1/issuers.
type IssuerList struct {
	Issuers []Issuer `json:"issuers"`
}

// IssuerAddRequest adds an issuer. Issuer (the iss claim) defaults to Name.
type IssuerAddRequest struct {
	Name         string `json:"name"`
	Issuer       string `json:"iss,omitempty"`
	Audience     string `json:"audience"`
	JWKSURL      string `json:"jwks_url,omitempty"`
	JWKSFile     string `json:"jwks_file,omitempty"`
	SubjectClaim string `json:"subject_claim,omitempty"`
	GroupsClaim  string `json:"groups_claim,omitempty"`
	// InsecureHTTP allows an http:// JWKS URL to a host other than
	// loopback (--insecure-http): anyone on the path could swap the keys.
	InsecureHTTP bool `json:"insecure_http,omitempty"`
}

// GroupMapping makes an issuer's claim value, or a directory group, count as
// membership of a camwarden group. Exactly one of Issuer (with ClaimValue)
// and DirectoryGroup is set.
type GroupMapping struct {
	Group          string `json:"group"`
	Issuer         string `json:"issuer,omitempty"`
	ClaimValue     string `json:"claim_value,omitempty"`
	DirectoryGroup string `json:"directory_group,omitempty"`
}

// GroupMapList is the answer of GET /v1/groupmaps.
type GroupMapList struct {
	Mappings []GroupMapping `json:"mappings"`
}

// Directory is the LDAP/AD configuration (GET /v1/directory).
type Directory struct {
	Configured      bool      `json:"configured"`
	URL             string    `json:"url,omitempty"`
	StartTLS        bool      `json:"start_tls,omitempty"`
	CAFile          string    `json:"ca_file,omitempty"`
	BindDN          string    `json:"bind_dn,omitempty"`
	HasBindPassword bool      `json:"has_bind_password"`
	BaseDN          string    `json:"base_dn,omitempty"`
	UserFilter      string    `json:"user_filter,omitempty"`
	GroupAttribute  string    `json:"group_attribute,omitempty"`
	GroupFilter     string    `json:"group_filter,omitempty"`
	GroupBaseDN     string    `json:"group_base_dn,omitempty"`
	DisabledFilter  string    `json:"disabled_filter,omitempty"`
	TimeoutMS       int64     `json:"timeout_ms,omitempty"`
	SyncIntervalMS  int64     `json:"sync_interval_ms,omitempty"`
	Changed         time.Time `json:"changed,omitzero"`
}

// DirectorySetRequest replaces the directory configuration. An empty
// BindPassword keeps the stored one.
type DirectorySetRequest struct {
	URL            string `json:"url"`
	StartTLS       bool   `json:"start_tls,omitempty"`
	CAFile         string `json:"ca_file,omitempty"`
	BindDN         string `json:"bind_dn"`
	BindPassword   string `json:"bind_password,omitempty"`
	BaseDN         string `json:"base_dn"`
	UserFilter     string `json:"user_filter,omitempty"`
	GroupAttribute string `json:"group_attribute,omitempty"`
	GroupFilter    string `json:"group_filter,omitempty"`
	GroupBaseDN    string `json:"group_base_dn,omitempty"`
	DisabledFilter string `json:"disabled_filter,omitempty"`
	TimeoutMS      int64  `json:"timeout_ms,omitempty"`
	SyncIntervalMS int64  `json:"sync_interval_ms,omitempty"`
	// InsecureLDAP allows ldap:// without StartTLS to a host other than
	// loopback (--insecure-ldap): the bind passwords of the service
	// account and of every directory viewer would cross the network in clear.
	InsecureLDAP bool `json:"insecure_ldap,omitempty"`
}

// TokenRevokeRequest refuses a token id (jti) until Until (the token's exp;
// zero: as long as any accepted token can live).
type TokenRevokeRequest struct {
	JTI   string    `json:"jti"`
	Until time.Time `json:"until,omitzero"`
}

// maxIdentityValue bounds claim names, claim values, DNs and filters.
const maxIdentityValue = 512

func checkText(what, s string, required bool) error {
	if s == "" {
		if required {
			return invalidf("%s is required", what)
		}
		return nil
	}
	if len(s) > maxIdentityValue {
		return invalidf("%s is longer than %d bytes", what, maxIdentityValue)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return invalidf("%s holds a control character", what)
		}
	}
	return nil
}

// Validate checks an issuer's syntax (the daemon checks the rest).
func (r IssuerAddRequest) Validate() error {
	if err := CheckName("issuer", r.Name); err != nil {
		return err
	}
	for _, f := range []struct {
		what, v  string
		required bool
	}{{"iss", r.Issuer, false}, {"--audience", r.Audience, true}, {"--subject-claim", r.SubjectClaim, false},
		{"--groups-claim", r.GroupsClaim, false}, {"--jwks-file", r.JWKSFile, false}} {
		if err := checkText(f.what, f.v, f.required); err != nil {
			return err
		}
	}
	if (r.JWKSURL == "") == (r.JWKSFile == "") {
		return invalidf("give exactly one of --jwks-url and --jwks-file")
	}
	if r.JWKSURL != "" {
		u, err := url.Parse(r.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return invalidf("--jwks-url must be an http:// or https:// URL without credentials")
		}
		if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) && !r.InsecureHTTP {
			return invalidf("--jwks-url is plain http:// to %s: anyone on the path could replace the issuer's keys and sign tokens for any camera; use https://, or add --insecure-http to accept that", u.Hostname())
		}
	}
	if r.JWKSFile != "" && !strings.HasPrefix(r.JWKSFile, "/") {
		return invalidf("--jwks-file must be an absolute path (the daemon reads it)")
	}
	return nil
}

// Validate checks a mapping's syntax.
func (m GroupMapping) Validate() error {
	if err := CheckName("group", m.Group); err != nil {
		return err
	}
	switch {
	case m.Issuer != "" && m.DirectoryGroup != "", m.Issuer == "" && m.DirectoryGroup == "":
		return invalidf("map from exactly one of --issuer (with --claim-value) and --directory-group")
	case m.Issuer != "":
		if err := CheckName("issuer", m.Issuer); err != nil {
			return err
		}
		return checkText("--claim-value", m.ClaimValue, true)
	}
	if m.ClaimValue != "" {
		return invalidf("--claim-value goes with --issuer, not --directory-group")
	}
	return checkText("--directory-group", m.DirectoryGroup, true)
}

// Validate checks a directory configuration's syntax. The password rule is
// the directory's own: any non-empty password is passed on as it is.
func (r DirectorySetRequest) Validate() error {
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" || u.User != nil {
		return invalidf("--url must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], without credentials")
	}
	if u.Scheme == "ldap" && !r.StartTLS && !isLoopbackHost(u.Hostname()) && !r.InsecureLDAP {
		return invalidf("--url is plain ldap:// to %s without --start-tls: the service account's and every directory viewer's password would cross the network in clear; use ldaps:// or --start-tls, or add --insecure-ldap to accept that", u.Hostname())
	}
	for _, f := range []struct {
		what, v  string
		required bool
	}{{"--bind-dn", r.BindDN, true}, {"--base-dn", r.BaseDN, true}, {"--user-filter", r.UserFilter, false},
		{"--group-attribute", r.GroupAttribute, false}, {"--group-filter", r.GroupFilter, false},
		{"--group-base-dn", r.GroupBaseDN, false}, {"--disabled-filter", r.DisabledFilter, false}, {"--ca-file", r.CAFile, false}} {
		if err := checkText(f.what, f.v, f.required); err != nil {
			return err
		}
	}
	if r.BindPassword != "" { // empty keeps the stored one
		if err := CheckDirectoryPassword("the bind password", r.BindPassword); err != nil {
			return err
		}
	}
	if r.TimeoutMS < 0 || r.TimeoutMS > 60_000 {
		return invalidf("--timeout must be between 0 (default 5s) and 60s")
	}
	if r.SyncIntervalMS < 0 || (r.SyncIntervalMS > 0 && r.SyncIntervalMS < 1000) {
		return invalidf("--sync-interval must be at least 1s (0: default 60s)")
	}
	return nil
}

// Validate checks a revocation.
func (r TokenRevokeRequest) Validate() error {
	if len(r.JTI) > 256 {
		return invalidf("the token id (jti) is longer than 256 bytes")
	}
	return checkText("the token id (jti)", r.JTI, true)
}

// DirectoryTestRequest tries a directory login without opening a session
// (POST /v1/directory/test), to check the configuration.
type DirectoryTestRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// DirectoryTestResult is what the directory said about the user.
type DirectoryTestResult struct {
	User         string   `json:"user"`
	DN           string   `json:"dn"`
	Groups       []string `json:"groups"`        // directory group DNs (canonical form)
	MappedGroups []string `json:"mapped_groups"` // the camwarden groups they map to
}

// Validate checks a directory test request.
func (r DirectoryTestRequest) Validate() error {
	if err := checkText("the user name", r.User, true); err != nil {
		return err
	}
	return CheckDirectoryPassword("the password", r.Password)
}

// CheckDirectoryPassword applies the rule for a password sent to the
// directory (a viewer's or the service account's): 1 to MaxPasswordBytes
// bytes without NUL. The directory owns its users' passwords, so no minimum
// length of ours applies; an empty one is refused because LDAP treats a bind
// with an empty password as an unauthenticated bind, which succeeds.
func CheckDirectoryPassword(what, pw string) error {
	if pw == "" || len(pw) > MaxPasswordBytes || strings.IndexByte(pw, 0) >= 0 {
		return invalidf("%s must be 1 to %d bytes without NUL", what, MaxPasswordBytes)
	}
	return nil
}

// TokenCheckRequest verifies a viewer token without opening a session
// (POST /v1/tokens/check). The token is a secret: it is never logged,
// audited or echoed.
type TokenCheckRequest struct {
	Token string `json:"token"`
}

// TokenCheckResult is what a valid token says.
type TokenCheckResult struct {
	Issuer       string    `json:"issuer"` // camwarden's name for it
	Subject      string    `json:"subject"`
	Groups       []string  `json:"groups"`
	JTI          string    `json:"jti,omitempty"`
	KeyID        string    `json:"key_id,omitempty"`
	Expiry       time.Time `json:"expiry"`
	MappedGroups []string  `json:"mapped_groups"` // the camwarden groups its claims map to
}

// Validate checks a token check request (its size only: the daemon says the rest).
func (r TokenCheckRequest) Validate() error {
	if r.Token == "" {
		return invalidf("no token given")
	}
	if len(r.Token) > 8<<10 {
		return invalidf("the token is larger than 8 KiB")
	}
	return nil
}

// isLoopbackHost reports whether host is this machine by name or address
// (plain http/ldap to it crosses no network: tests, a local proxy).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
