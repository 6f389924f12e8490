// Package directory logs users in against an LDAP directory (OpenLDAP or
// Active Directory) and re-reads their group membership.
//
// Login is bind-as-user: the service account searches the user's entry (the
// user name escaped into the filter), reads its groups, then the user's own
// DN is bound with the password the user gave. Every network call is bounded
// by Config.Timeout: a directory that is down, hangs or answers garbage
// refuses directory logins with ErrUnavailable and a reason, and blocks no
// one for longer than that.
//
// Neither the bind password nor a user's password ever appears in an error
// or a log line.
package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/identity/credcache"
	"github.com/camwarden/camwarden/internal/textutil"
)

// Defaults and limits.
const (
	DefaultTimeout    = 5 * time.Second
	MaxCacheTTL       = 5 * time.Minute
	DefaultUserFilter = "(sAMAccountName=%s)"
	DefaultGroupAttr  = "memberOf"
	// ADDisabledFilter matches Active Directory accounts with ACCOUNTDISABLE set.
	ADDisabledFilter = "(userAccountControl:1.2.840.113556.1.4.803:=2)"
	maxUserNameBytes = 256
	maxGroups        = 1024
	maxCacheEntries  = 4096 // bounds the bind cache; past it the oldest entries go
	maxReasonBytes   = 120  // how much of a foreign text an error quotes
)

// Refusal classes; the errors Login and Lookup return wrap one of them with
// the reason.
var (
	ErrInvalidCredentials = errors.New("directory login refused: wrong user name or password")
	ErrBadUserName        = errors.New("directory login refused: user name not acceptable")
	ErrDisabled           = errors.New("directory account is disabled")
	ErrNotFound           = errors.New("directory has no such user")
	ErrUnavailable        = errors.New("directory unavailable")
	ErrAmbiguous          = errors.New("directory user name matches several entries")
)

// Config is one directory. The bind password is a secret: the store seals it.
type Config struct {
	URL          string // ldap://HOST[:PORT] or ldaps://HOST[:PORT]
	StartTLS     bool   // upgrade an ldap:// connection before any bind
	TLS          *tls.Config
	BindDN       string // the service account that searches
	BindPassword string
	BaseDN       string // where users are searched (subtree)

	// UserFilter has one %s, replaced by the escaped user name.
	UserFilter string
	// GroupAttribute on the user's entry lists its group DNs (memberOf),
	// unless GroupFilter is set: then groups are searched under GroupBaseDN
	// (default BaseDN) with GroupFilter, whose one %s is the escaped user DN,
	// e.g. "(&(objectClass=groupOfNames)(member=%s))".
	GroupAttribute string
	GroupFilter    string
	GroupBaseDN    string
	// DisabledFilter, if set, marks disabled accounts: a user entry it
	// matches cannot log in and loses its sessions at the next sync.
	DisabledFilter string

	Timeout  time.Duration // bounds each login, lookup or sync of one user; default 5 s
	CacheTTL time.Duration // successful binds are reused this long; at most 5 min; < 0 disables
}

func (c Config) withDefaults() Config {
	if c.UserFilter == "" {
		c.UserFilter = DefaultUserFilter
	}
	if c.GroupAttribute == "" {
		c.GroupAttribute = DefaultGroupAttr
	}
	if c.GroupBaseDN == "" {
		c.GroupBaseDN = c.BaseDN
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CacheTTL == 0 || c.CacheTTL > MaxCacheTTL {
		c.CacheTTL = MaxCacheTTL
	}
	return c
}

// Validate says what is wrong with a configuration, without quoting the
// bind password.
func (c Config) Validate() error {
	c = c.withDefaults()
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" {
		return errors.New("directory URL must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New("directory URL must be only ldap[s]://HOST[:PORT]: put DNs and filters in their own settings")
	}
	if c.StartTLS && u.Scheme == "ldaps" {
		return errors.New("StartTLS is for ldap:// URLs; ldaps:// is TLS already")
	}
	if c.BindDN == "" || c.BindPassword == "" {
		return errors.New("directory needs a service bind DN and its password")
	}
	for name, dn := range map[string]string{"bind DN": c.BindDN, "base DN": c.BaseDN, "group base DN": c.GroupBaseDN} {
		if _, err := ldap.ParseDN(dn); err != nil || dn == "" {
			return fmt.Errorf("directory %s is not a DN", name)
		}
	}
	if err := checkFilter("user filter", c.UserFilter); err != nil {
		return err
	}
	if c.GroupFilter != "" {
		if err := checkFilter("group filter", c.GroupFilter); err != nil {
			return err
		}
	}
	if c.DisabledFilter != "" {
		if _, err := ldap.CompileFilter(c.DisabledFilter); err != nil {
			return fmt.Errorf("directory disabled filter is not an LDAP filter: %v", err)
		}
	}
	return nil
}

func checkFilter(what, f string) error {
	if strings.Count(f, "%s") != 1 || strings.Count(f, "%") != 1 {
		return fmt.Errorf("directory %s must hold exactly one %%s (and no other %%)", what)
	}
	if _, err := ldap.CompileFilter(fmt.Sprintf(f, "x")); err != nil {
		return fmt.Errorf("directory %s is not an LDAP filter: %v", what, err)
	}
	return nil
}

// User is a directory user as last read.
type User struct {
	Name   string   // as the user typed it
	DN     string   // its entry
	Groups []string // group DNs, canonical (see CanonicalDN)
}

// Directory is one configured directory. It is safe for concurrent use.
type Directory struct {
	cfg   Config
	host  string                 // host:port
	tls   bool                   // ldaps
	cache *credcache.Cache[User] // successful binds, for Config.CacheTTL
	logf  func(format string, args ...any)
}

// New checks cfg and returns a Directory; it does no network I/O.
func New(cfg Config, logf func(format string, args ...any)) (*Directory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, _ := url.Parse(cfg.URL)
	port := u.Port()
	if port == "" {
		port = map[string]string{"ldap": "389", "ldaps": "636"}[u.Scheme]
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Directory{
		cfg:   cfg,
		host:  net.JoinHostPort(u.Hostname(), port),
		tls:   u.Scheme == "ldaps",
		cache: credcache.New[User](maxCacheEntries, cfg.CacheTTL),
		logf:  logf,
	}, nil
}

// Login checks user and password against the directory and returns the user
// with its groups. A refused login's error says why (for the log); the
// viewer should only ever be told "refused".
func (d *Directory) Login(ctx context.Context, user, password string) (User, error) {
	if err := checkUserName(user); err != nil {
		return User{}, err
	}
	if apitype.CheckDirectoryPassword("password", password) != nil {
		return User{}, fmt.Errorf("%w: password empty, too long or holding NUL", ErrInvalidCredentials)
	}
	if u, ok := d.cache.Get(user, password); ok {
		return u, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	c, err := d.connect(ctx)
	if err != nil {
		return User{}, err
	}
	defer c.close()
	u, err := c.lookup(ctx, user)
	if err != nil {
		return User{}, err
	}
	if err := c.conn.Bind(u.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return User{}, fmt.Errorf("%w: the directory refused the password of %q", ErrInvalidCredentials, user)
		}
		return User{}, c.unavailable(ctx, "user bind", err)
	}
	d.cache.Put(user, password, u)
	return u, nil
}

// Lookup re-reads one user (membership, disabled, deleted) with the service
// account, as a sync does.
func (d *Directory) Lookup(ctx context.Context, user string) (User, error) {
	if err := checkUserName(user); err != nil {
		return User{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	c, err := d.connect(ctx)
	if err != nil {
		return User{}, err
	}
	defer c.close()
	return c.lookup(ctx, user)
}

// Forget drops the cached binds of a user (its rights changed).
func (d *Directory) Forget(user string) { d.cache.Forget(user) }

func checkUserName(user string) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: empty", ErrBadUserName)
	case len(user) > maxUserNameBytes:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadUserName, maxUserNameBytes)
	case !utf8.ValidString(user):
		return fmt.Errorf("%w: not UTF-8", ErrBadUserName)
	case strings.IndexByte(user, 0) >= 0:
		return fmt.Errorf("%w: holds a NUL byte", ErrBadUserName)
	}
	for _, r := range user {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: holds a control character", ErrBadUserName)
		}
	}
	return nil
}

// conn is one connection, bound as the service account.
type conn struct {
	d     *Directory
	conn  *ldap.Conn
	abort func() bool // stops the ctx watcher
}

func (d *Directory) connect(ctx context.Context) (*conn, error) {
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	raw, err := dialer.DialContext(ctx, "tcp", d.host)
	if err != nil {
		return nil, d.unavailableErr(ctx, "connect", err)
	}
	if d.tls {
		tc := tls.Client(raw, d.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, d.unavailableErr(ctx, "TLS handshake", err)
		}
		raw = tc
	}
	lc := ldap.NewConn(raw, d.tls)
	lc.Start()
	lc.SetTimeout(d.cfg.Timeout)
	// ctx ending closes the connection, so no call on it outlives ctx
	c := &conn{d: d, conn: lc, abort: context.AfterFunc(ctx, func() { lc.Close() })}
	if d.cfg.StartTLS {
		if err := lc.StartTLS(d.tlsConfig()); err != nil {
			c.close()
			return nil, c.unavailable(ctx, "StartTLS", err)
		}
	}
	if err := lc.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
		c.close()
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("%w: the directory refused the service account %q (check its password with `camwarden directory set`)", ErrUnavailable, d.cfg.BindDN)
		}
		return nil, c.unavailable(ctx, "service bind", err)
	}
	return c, nil
}

func (d *Directory) tlsConfig() *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.cfg.TLS != nil {
		tc = d.cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(d.host)
	}
	return tc
}

func (c *conn) close() {
	c.abort()
	c.conn.Close()
}

// lookup finds user's entry and groups, refusing disabled accounts.
func (c *conn) lookup(ctx context.Context, user string) (User, error) {
	cfg := c.d.cfg
	attrs := []string{"1.1"} // no attributes
	if cfg.GroupFilter == "" {
		attrs = []string{cfg.GroupAttribute}
	}
	filter := fmt.Sprintf(cfg.UserFilter, ldap.EscapeFilter(user))
	res, err := c.conn.Search(ldap.NewSearchRequest(cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, int(cfg.Timeout/time.Second)+1, false, filter, attrs, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return User{}, c.unavailable(ctx, "user search", err)
	}
	switch {
	case res == nil || len(res.Entries) == 0:
		return User{}, fmt.Errorf("%w: %w %q", ErrInvalidCredentials, ErrNotFound, user)
	case len(res.Entries) > 1 || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return User{}, fmt.Errorf("%w: %q; refusing it (make the user filter unique)", ErrAmbiguous, user)
	}
	entry := res.Entries[0]
	if entry.DN == "" {
		// binding an empty DN with a password is no proof of anything
		return User{}, fmt.Errorf("%w: the directory returned an entry without a DN for %q", ErrUnavailable, user)
	}
	u := User{Name: user, DN: entry.DN}
	if cfg.DisabledFilter != "" {
		res, err := c.conn.Search(ldap.NewSearchRequest(entry.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, int(cfg.Timeout/time.Second)+1, false, cfg.DisabledFilter, []string{"1.1"}, nil))
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return User{}, c.unavailable(ctx, "disabled check", err)
		}
		if res != nil && len(res.Entries) > 0 {
			return User{}, fmt.Errorf("%w: %q", ErrDisabled, user)
		}
	}
	var groups []string
	if cfg.GroupFilter == "" {
		groups = entry.GetAttributeValues(cfg.GroupAttribute)
	} else {
		res, err := c.conn.Search(ldap.NewSearchRequest(cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			maxGroups, int(cfg.Timeout/time.Second)+1, false,
			fmt.Sprintf(cfg.GroupFilter, ldap.EscapeFilter(entry.DN)), []string{"1.1"}, nil))
		if err != nil {
			return User{}, c.unavailable(ctx, "group search", err)
		}
		for _, g := range res.Entries {
			groups = append(groups, g.DN)
		}
	}
	if len(groups) > maxGroups {
		return User{}, fmt.Errorf("%w: %q is in more than %d groups", ErrUnavailable, user, maxGroups)
	}
	for _, g := range groups {
		u.Groups = append(u.Groups, CanonicalDN(g))
	}
	return u, nil
}

// unavailable turns a failed LDAP call into ErrUnavailable with a reason an
// admin can act on.
func (c *conn) unavailable(ctx context.Context, what string, err error) error {
	return c.d.unavailableErr(ctx, what, err)
}

func (d *Directory) unavailableErr(ctx context.Context, what string, err error) error {
	var reason string
	var ne net.Error
	switch {
	case ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "timed out"):
		reason = fmt.Sprintf("did not answer within %s", d.cfg.Timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused (is the directory running?)"
	default:
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode != ldap.ErrorNetwork {
			reason = fmt.Sprintf("LDAP result %d %q", le.ResultCode, ldap.LDAPResultCodeMap[le.ResultCode])
		} else {
			reason = "connection failed or the answer was not LDAP: " + textutil.Shorten(err.Error(), maxReasonBytes)
		}
	}
	return fmt.Errorf("%w: %s at %s: %s", ErrUnavailable, what, d.host, reason)
}

// CanonicalDN normalises a DN for comparison: attribute types folded, values
// as the directory spells them but lower-cased (group names compare
// case-insensitively in OpenLDAP's and AD's default schemas). A string that
// is not a DN is lower-cased and trimmed.
func CanonicalDN(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	return strings.ToLower(parsed.String())
}

// CheckDN says whether dn parses as a distinguished name (for a group
// mapping or a base DN given by an admin).
func CheckDN(dn string) error {
	if dn == "" {
		return errors.New("empty DN")
	}
	if _, err := ldap.ParseDN(dn); err != nil {
		return fmt.Errorf("%q is not a DN: %v", textutil.Shorten(dn, maxReasonBytes), err)
	}
	return nil
}
