package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	bolt "go.etcd.io/bbolt"
)

// Identity records (schema 4): token issuers, the directory configuration,
// mappings of issuer claims and directory groups onto camwarden groups, and
// revoked token ids. The store checks only their shape; what makes an
// issuer or a directory usable is checked by daemon/identity before they
// are written.

// Issuer is a JWT issuer whose tokens viewers may present.
type Issuer struct {
	Name         string // camwarden's name for it
	Issuer       string // the iss claim its tokens carry
	Audience     string
	JWKSURL      string // exactly one of JWKSURL and JWKSFile
	JWKSFile     string
	SubjectClaim string // "" = sub
	GroupsClaim  string // "" = groups
	Created      time.Time
	Changed      time.Time
}

// Directory is the LDAP/AD configuration. The bind password is sealed and
// only available through Tx.DirectoryBindPassword.
type Directory struct {
	URL             string
	StartTLS        bool
	CAFile          string // PEM bundle to verify the directory's certificate ("" = system roots)
	BindDN          string
	HasBindPassword bool
	BaseDN          string
	UserFilter      string
	GroupAttribute  string
	GroupFilter     string
	GroupBaseDN     string
	DisabledFilter  string
	Timeout         time.Duration
	SyncInterval    time.Duration
	Changed         time.Time
}

// GroupMapping makes holders of an issuer's claim value, or members of a
// directory group, members of a camwarden group. Exactly one of Issuer and
// DirectoryGroup is set; Value is the claim value (issuer mappings only).
type GroupMapping struct {
	Group          string
	Issuer         string
	Value          string
	DirectoryGroup string
}

// RevokedToken is a jti refused until Until (the token's exp, or as long as
// any token can live).
type RevokedToken struct {
	JTI     string
	Until   time.Time
	Created time.Time
}

const (
	kindIssuer        = "issuer"
	kindDirectory     = "directory"
	kindGroupMap      = "group mapping"
	kindRevokedToken  = "revoked token"
	fieldBindPassword = "bind_password"
	directoryKey      = "config" // the one record of bucketDirectory
)

type issuerRec struct {
	Name         string    `json:"name"`
	Issuer       string    `json:"iss"`
	Audience     string    `json:"aud"`
	JWKSURL      string    `json:"jwks_url,omitempty"`
	JWKSFile     string    `json:"jwks_file,omitempty"`
	SubjectClaim string    `json:"subject_claim,omitempty"`
	GroupsClaim  string    `json:"groups_claim,omitempty"`
	Created      time.Time `json:"created"`
	Changed      time.Time `json:"changed"`
}

type directoryRec struct {
	URL            string    `json:"url"`
	StartTLS       bool      `json:"start_tls,omitempty"`
	CAFile         string    `json:"ca_file,omitempty"`
	BindDN         string    `json:"bind_dn"`
	BindPassword   []byte    `json:"bind_password,omitempty"` // sealed (directory, "config", "bind_password")
	BaseDN         string    `json:"base_dn"`
	UserFilter     string    `json:"user_filter,omitempty"`
	GroupAttribute string    `json:"group_attribute,omitempty"`
	GroupFilter    string    `json:"group_filter,omitempty"`
	GroupBaseDN    string    `json:"group_base_dn,omitempty"`
	DisabledFilter string    `json:"disabled_filter,omitempty"`
	TimeoutMS      int64     `json:"timeout_ms,omitempty"`
	SyncIntervalMS int64     `json:"sync_interval_ms,omitempty"`
	Changed        time.Time `json:"changed"`
}

type groupMapRec struct {
	Group          string `json:"group"`
	Issuer         string `json:"issuer,omitempty"`
	Value          string `json:"value,omitempty"`
	DirectoryGroup string `json:"directory_group,omitempty"`
}

type revokedTokenRec struct {
	JTI     string    `json:"jti"`
	Until   time.Time `json:"until"`
	Created time.Time `json:"created"`
}

// groupMapKey is length-prefixed (group, issuer, value, directory group).
func groupMapKey(m GroupMapping) []byte {
	var k []byte
	for _, s := range []string{m.Group, m.Issuer, m.Value, m.DirectoryGroup} {
		k = binary.AppendUvarint(k, uint64(len(s)))
		k = append(k, s...)
	}
	return k
}

func (m GroupMapping) String() string {
	if m.Issuer != "" {
		return fmt.Sprintf("%s <- issuer %s claim value %q", m.Group, m.Issuer, m.Value)
	}
	return fmt.Sprintf("%s <- directory group %q", m.Group, m.DirectoryGroup)
}

func decodeIssuer(key, val []byte) (issuerRec, error) {
	var r issuerRec
	if err := decode(kindIssuer, key, val, &r); err != nil {
		return r, err
	}
	if r.Name != string(key) {
		return r, fmt.Errorf("%w: issuer record under key %q names %q", ErrCorrupt, textutil.Shorten(string(key), 64), textutil.Shorten(r.Name, 64))
	}
	return r, nil
}

func decodeDirectory(key, val []byte) (directoryRec, error) {
	var r directoryRec
	if err := decode(kindDirectory, key, val, &r); err != nil {
		return r, err
	}
	if string(key) != directoryKey {
		return r, fmt.Errorf("%w: directory record under unexpected key %q", ErrCorrupt, textutil.Shorten(string(key), 64))
	}
	return r, nil
}

func decodeGroupMap(key, val []byte) (groupMapRec, error) {
	var r groupMapRec
	if err := decode(kindGroupMap, key, val, &r); err != nil {
		return r, err
	}
	if string(groupMapKey(GroupMapping(r))) != string(key) {
		return r, fmt.Errorf("%w: group mapping record does not match its key", ErrCorrupt)
	}
	return r, nil
}

func decodeRevokedToken(key, val []byte) (revokedTokenRec, error) {
	var r revokedTokenRec
	if err := decode(kindRevokedToken, key, val, &r); err != nil {
		return r, err
	}
	if r.JTI != string(key) {
		return r, fmt.Errorf("%w: revoked token record does not match its key", ErrCorrupt)
	}
	return r, nil
}

// --- issuers ---

// Issuers returns every issuer, sorted by name.
func (tx *Tx) Issuers() ([]Issuer, error) {
	b, err := tx.bucket(bucketIssuers)
	if err != nil {
		return nil, err
	}
	var out []Issuer
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeIssuer(k, v)
		if err == nil {
			out = append(out, Issuer(r))
		}
		return err
	})
	return out, err
}

// CreateIssuer adds an issuer: ErrExists if the name, or the iss value, is
// taken (two issuers with one iss could not be told apart).
func (tx *Tx) CreateIssuer(is Issuer) error {
	if is.Name == "" || is.Issuer == "" || is.Audience == "" || (is.JWKSURL == "") == (is.JWKSFile == "") {
		return fmt.Errorf("issuer %q needs an iss value, an audience and exactly one of a JWKS URL and file", textutil.Shorten(is.Name, 64))
	}
	b, err := tx.bucket(bucketIssuers)
	if err != nil {
		return err
	}
	if b.Get([]byte(is.Name)) != nil {
		return exists(kindIssuer, is.Name)
	}
	all, err := tx.Issuers()
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Issuer == is.Issuer {
			return &wrapped{fmt.Sprintf("issuer %q already uses iss %q", o.Name, textutil.Shorten(is.Issuer, 128)), ErrExists}
		}
	}
	is.Created, is.Changed = tx.now, tx.now
	return tx.put(b, kindIssuer, is.Name, []byte(is.Name), issuerRec(is))
}

// DeleteIssuer removes an issuer and its group mappings.
func (tx *Tx) DeleteIssuer(name string) error {
	b, err := tx.bucket(bucketIssuers)
	if err != nil {
		return err
	}
	if b.Get([]byte(name)) == nil {
		return notFound(kindIssuer, name)
	}
	if err := b.Delete([]byte(name)); err != nil {
		return err
	}
	return tx.dropGroupMappings(func(m GroupMapping) bool { return m.Issuer == name })
}

// --- directory ---

// Directory returns the directory configuration; ok is false when none is set.
func (tx *Tx) Directory() (d Directory, ok bool, err error) {
	r, ok, err := tx.directoryRec()
	if err != nil || !ok {
		return Directory{}, ok, err
	}
	return r.public(), true, nil
}

func (tx *Tx) directoryRec() (directoryRec, bool, error) {
	b, err := tx.bucket(bucketDirectory)
	if err != nil {
		return directoryRec{}, false, err
	}
	val := b.Get([]byte(directoryKey))
	if val == nil {
		return directoryRec{}, false, nil
	}
	r, err := decodeDirectory([]byte(directoryKey), val)
	return r, err == nil, err
}

func (r directoryRec) public() Directory {
	return Directory{
		URL: r.URL, StartTLS: r.StartTLS, CAFile: r.CAFile, BindDN: r.BindDN, HasBindPassword: len(r.BindPassword) > 0,
		BaseDN: r.BaseDN, UserFilter: r.UserFilter, GroupAttribute: r.GroupAttribute, GroupFilter: r.GroupFilter,
		GroupBaseDN: r.GroupBaseDN, DisabledFilter: r.DisabledFilter,
		Timeout: time.Duration(r.TimeoutMS) * time.Millisecond, SyncInterval: time.Duration(r.SyncIntervalMS) * time.Millisecond,
		Changed: r.Changed,
	}
}

// SetDirectory writes the directory configuration. bindPassword is sealed;
// "" keeps the one already stored (and is refused when there is none).
func (tx *Tx) SetDirectory(d Directory, bindPassword string) error {
	if d.URL == "" || d.BindDN == "" || d.BaseDN == "" {
		return fmt.Errorf("directory needs a URL, a bind DN and a base DN")
	}
	b, err := tx.bucket(bucketDirectory)
	if err != nil {
		return err
	}
	old, had, err := tx.directoryRec()
	if err != nil {
		return err
	}
	r := directoryRec{
		URL: d.URL, StartTLS: d.StartTLS, CAFile: d.CAFile, BindDN: d.BindDN, BaseDN: d.BaseDN,
		UserFilter: d.UserFilter, GroupAttribute: d.GroupAttribute, GroupFilter: d.GroupFilter,
		GroupBaseDN: d.GroupBaseDN, DisabledFilter: d.DisabledFilter,
		TimeoutMS: d.Timeout.Milliseconds(), SyncIntervalMS: d.SyncInterval.Milliseconds(), Changed: tx.now,
	}
	switch {
	case bindPassword != "":
		if r.BindPassword, err = tx.sealSecret(kindDirectory, directoryKey, fieldBindPassword, bindPassword); err != nil {
			return err
		}
	case had && len(old.BindPassword) > 0:
		r.BindPassword = old.BindPassword
	default:
		return fmt.Errorf("directory needs the service account's bind password (--password-stdin)")
	}
	return tx.put(b, kindDirectory, directoryKey, []byte(directoryKey), r)
}

// DirectoryBindPassword opens the sealed bind password.
func (tx *Tx) DirectoryBindPassword() (string, error) {
	r, ok, err := tx.directoryRec()
	if err != nil {
		return "", err
	}
	if !ok || len(r.BindPassword) == 0 {
		return "", notFound(kindDirectory, "bind password")
	}
	return tx.openSecret(kindDirectory, directoryKey, fieldBindPassword, r.BindPassword)
}

// ClearDirectory removes the directory configuration and its group mappings.
func (tx *Tx) ClearDirectory() error {
	b, err := tx.bucket(bucketDirectory)
	if err != nil {
		return err
	}
	if b.Get([]byte(directoryKey)) == nil {
		return notFound(kindDirectory, directoryKey)
	}
	if err := b.Delete([]byte(directoryKey)); err != nil {
		return err
	}
	return tx.dropGroupMappings(func(m GroupMapping) bool { return m.DirectoryGroup != "" })
}

// --- group mappings ---

// GroupMappings returns every mapping, sorted by group, then source.
func (tx *Tx) GroupMappings() ([]GroupMapping, error) {
	b, err := tx.bucket(bucketGroupMaps)
	if err != nil {
		return nil, err
	}
	var out []GroupMapping
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeGroupMap(k, v)
		if err == nil {
			out = append(out, GroupMapping(r))
		}
		return err
	})
	slices.SortFunc(out, func(a, b GroupMapping) int {
		return strings.Compare(a.Group+"\x00"+a.String(), b.Group+"\x00"+b.String())
	})
	return out, err
}

// AddGroupMapping adds a mapping onto an existing group, from an existing
// issuer or the configured directory: ErrNotFound or ErrExists otherwise.
func (tx *Tx) AddGroupMapping(m GroupMapping) error {
	if (m.Issuer == "") == (m.DirectoryGroup == "") || (m.Issuer != "" && m.Value == "") || (m.Issuer == "" && m.Value != "") {
		return fmt.Errorf("a group mapping names either an issuer and a claim value, or a directory group")
	}
	if _, _, err := tx.groupRec(m.Group); err != nil {
		return err
	}
	if m.Issuer != "" {
		ib, err := tx.bucket(bucketIssuers)
		if err != nil {
			return err
		}
		if ib.Get([]byte(m.Issuer)) == nil {
			return notFound(kindIssuer, m.Issuer)
		}
	} else if _, ok, err := tx.directoryRec(); err != nil {
		return err
	} else if !ok {
		return &wrapped{"no directory is configured (camwarden directory set)", ErrNotFound}
	}
	b, err := tx.bucket(bucketGroupMaps)
	if err != nil {
		return err
	}
	k := groupMapKey(m)
	if b.Get(k) != nil {
		return &wrapped{"group mapping " + textutil.Shorten(m.String(), 200) + " already exists", ErrExists}
	}
	return tx.put(b, kindGroupMap, m.Group, k, groupMapRec(m))
}

// RemoveGroupMapping removes one mapping (ErrNotFound if absent).
func (tx *Tx) RemoveGroupMapping(m GroupMapping) error {
	b, err := tx.bucket(bucketGroupMaps)
	if err != nil {
		return err
	}
	k := groupMapKey(m)
	if b.Get(k) == nil {
		return &wrapped{"group mapping " + textutil.Shorten(m.String(), 200) + " not found", ErrNotFound}
	}
	return b.Delete(k)
}

func (tx *Tx) dropGroupMappings(match func(GroupMapping) bool) error {
	b, err := tx.bucket(bucketGroupMaps)
	if err != nil {
		return err
	}
	var doomed [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		r, err := decodeGroupMap(k, v)
		if err == nil && match(GroupMapping(r)) {
			doomed = append(doomed, append([]byte{}, k...))
		}
		return err
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// --- revoked tokens ---

// RevokeToken records jti as revoked until until (a later until wins) and
// drops records that have lapsed.
func (tx *Tx) RevokeToken(jti string, until time.Time) error {
	if jti == "" || len(jti) > 256 {
		return fmt.Errorf("a token id (jti) must be 1 to 256 bytes")
	}
	b, err := tx.bucket(bucketRevokedTokens)
	if err != nil {
		return err
	}
	if err := tx.pruneRevoked(b); err != nil {
		return err
	}
	r := revokedTokenRec{JTI: jti, Until: until.UTC(), Created: tx.now}
	if val := b.Get([]byte(jti)); val != nil {
		old, err := decodeRevokedToken([]byte(jti), val)
		if err != nil {
			return err
		}
		r.Created = old.Created
		if old.Until.After(r.Until) {
			r.Until = old.Until
		}
	}
	return tx.put(b, kindRevokedToken, jti, []byte(jti), r)
}

// RevokedTokens returns the revocations still in force, sorted by jti.
func (tx *Tx) RevokedTokens() ([]RevokedToken, error) {
	b, err := tx.bucket(bucketRevokedTokens)
	if err != nil {
		return nil, err
	}
	var out []RevokedToken
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeRevokedToken(k, v)
		if err == nil && tx.now.Before(r.Until) {
			out = append(out, RevokedToken(r))
		}
		return err
	})
	return out, err
}

func (tx *Tx) pruneRevoked(b *bolt.Bucket) error {
	var lapsed [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		r, err := decodeRevokedToken(k, v)
		if err == nil && !tx.now.Before(r.Until) {
			lapsed = append(lapsed, append([]byte{}, k...))
		}
		return err
	}); err != nil {
		return err
	}
	for _, k := range lapsed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
