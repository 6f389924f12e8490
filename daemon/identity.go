package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/daemon/identity/directory"
	"github.com/camwarden/camwarden/daemon/identity/token"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/store"
)

// identityState holds the token verifier, the session tracker, the
// directory and its membership sync (#13). The verifier keeps the stored
// issuers' keys current, so `issuer list` shows whether an issuer is usable,
// and revocations are loaded; the directory serves `directory test`; the
// syncer re-reads the users it is told to watch. The RTSP auth path does not
// consult them yet, so no session is tracked or watched (docs/identity.md
// says how it will be).
type identityState struct {
	log      hclog.Logger
	verifier *token.Verifier
	tracker  *token.Tracker
	dir      atomic.Pointer[directory.Directory] // nil: none configured (or unusable, see the log)

	// syncMu serialises directory rebuilds; syncer belongs to dir.
	syncMu   sync.Mutex
	syncer   *directory.Syncer
	onSync   func([]directory.Change)
	lastMaps atomic.Pointer[[]string] // last directory group DNs read from the store
}

func (d *Daemon) startIdentity(ctx context.Context) (*identityState, error) {
	log := d.log.Named("identity")
	id := &identityState{log: log}
	// Endings and sync changes are audited off the reporting goroutine,
	// which must not wait for an fsync.
	auditSystem := func(action, target, outcome string, args map[string]string) {
		go d.audit(context.Background(), auditEntry(systemCaller(), action, target, outcome, args))
	}
	id.tracker = token.NewTracker(func(sessionID string, reason token.EndReason) {
		log.Info("token session ends", "session", sessionID, "reason", reason.String())
		auditSystem("session.end", sessionID, reason.String(), nil)
		// End waits for the connections to close: never on the tracker's goroutine.
		why := stream.CloseRevoked // key, issuer or token revoked
		if reason == token.EndExpired {
			why = stream.CloseExpired
		}
		go d.streams.End(sessionID, why)
	})
	// Sync changes close the directory sessions they no longer allow, off
	// the syncer's goroutine (closing waits for the connections).
	id.onSync = func(changes []directory.Change) {
		for _, c := range changes {
			log.Info("directory user changed", "user", c.User, "change", c.Kind.String(), "mapped_groups", strings.Join(c.Groups, ","))
			auditSystem("directory.sync", c.User, c.Kind.String(), map[string]string{"mapped_groups": strings.Join(c.Groups, ",")})
		}
		go d.viewers.onDirectorySync(changes)
	}
	id.verifier = token.New(token.Options{
		Events: id.tracker,
		Logf:   func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) },
	})
	var revoked []store.RevokedToken
	if err := d.store.View(ctx, func(tx *store.Tx) error {
		var err error
		revoked, err = tx.RevokedTokens()
		return err
	}); err != nil {
		id.close()
		return nil, err
	}
	entries := make(map[string]time.Time, len(revoked))
	for _, r := range revoked {
		entries[r.JTI] = r.Until
	}
	id.verifier.LoadRevoked(entries)
	if err := id.reloadIssuers(ctx, d.store); err != nil {
		id.close()
		return nil, err
	}
	if err := id.reloadDirectory(ctx, d.store); err != nil {
		id.close()
		return nil, err
	}
	return id, nil
}

// reloadDirectory builds the directory from the stored configuration (at
// start and after every committed change). A configuration that cannot be
// used (an unreadable CA file, say) is logged and leaves no directory, so
// directory logins are refused with that reason rather than stopping the
// daemon. Only a store failure is returned.
func (id *identityState) reloadDirectory(ctx context.Context, st *store.Store) error {
	var rec store.Directory
	var ok bool
	var bindPW string
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		if rec, ok, err = tx.Directory(); err != nil || !ok {
			return err
		}
		bindPW, err = tx.DirectoryBindPassword()
		return err
	}); err != nil {
		return err
	}
	if !ok {
		id.setDirectory(st, nil, 0)
		return nil
	}
	cfg := directoryConfig(rec, bindPW)
	if rec.CAFile != "" {
		pool, err := loadDirectoryCA(rec.CAFile)
		if err != nil {
			id.log.Error("directory not usable: its CA file cannot be used", "error", err)
			id.setDirectory(st, nil, 0)
			return nil
		}
		cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	dir, err := directory.New(cfg, func(format string, args ...any) { id.log.Info(fmt.Sprintf(format, args...)) })
	if err != nil {
		id.log.Error("directory not usable", "error", err)
		id.setDirectory(st, nil, 0)
		return nil
	}
	id.setDirectory(st, dir, rec.SyncInterval)
	id.log.Info("directory configured", "url", rec.URL, "base_dn", rec.BaseDN)
	return nil
}

// directoryConfig is the directory client configuration that a stored record
// describes, the one place that maps the record's fields. TLS roots come
// from rec.CAFile through loadDirectoryCA.
func directoryConfig(rec store.Directory, bindPassword string) directory.Config {
	return directory.Config{URL: rec.URL, StartTLS: rec.StartTLS, BindDN: rec.BindDN, BindPassword: bindPassword,
		BaseDN: rec.BaseDN, UserFilter: rec.UserFilter, GroupAttribute: rec.GroupAttribute, GroupFilter: rec.GroupFilter,
		GroupBaseDN: rec.GroupBaseDN, DisabledFilter: rec.DisabledFilter, Timeout: rec.Timeout}
}

// loadDirectoryCA reads the PEM certificates a directory's TLS is checked
// against.
func loadDirectoryCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the daemon cannot read %s: %v", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// mappedDirectoryGroups returns the camwarden groups a directory user's
// group DNs (canonical, as directory.User.Groups) map to, sorted.
func mappedDirectoryGroups(maps []store.GroupMapping, dnGroups []string) []string {
	out := []string{}
	for _, m := range maps {
		if m.DirectoryGroup != "" && slices.Contains(dnGroups, directory.CanonicalDN(m.DirectoryGroup)) {
			out = append(out, m.Group)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mappedTokenGroups returns the camwarden groups a token's groups claim maps
// to for its issuer (token.Identity.Issuer), sorted. Claim values compare
// exactly.
func mappedTokenGroups(maps []store.GroupMapping, issuer string, claimValues []string) []string {
	out := []string{}
	for _, m := range maps {
		if m.Issuer == issuer && slices.Contains(claimValues, m.Value) {
			out = append(out, m.Group)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (id *identityState) close() {
	id.verifier.Close()
	id.tracker.Close()
	id.syncMu.Lock()
	if id.syncer != nil {
		id.syncer.Close()
	}
	id.syncMu.Unlock()
}

// syncerNow is the running directory syncer (nil without a directory).
func (id *identityState) syncerNow() *directory.Syncer {
	id.syncMu.Lock()
	defer id.syncMu.Unlock()
	return id.syncer
}

// setDirectory swaps in dir (nil: none) and a syncer for it.
func (id *identityState) setDirectory(st *store.Store, dir *directory.Directory, interval time.Duration) {
	id.syncMu.Lock()
	defer id.syncMu.Unlock()
	if id.syncer != nil {
		id.syncer.Close()
		id.syncer = nil
	}
	id.dir.Store(dir)
	if dir == nil {
		return
	}
	if interval <= 0 {
		interval = 60 * time.Second
	}
	id.syncer = directory.NewSyncer(dir, interval, func() []string { return id.mappedDirectoryDNs(st) }, id.onSync)
}

// mappedDirectoryDNs reads the mapped directory group DNs for a sync pass.
// If the store cannot be read the last good list is used: an empty list
// would look like every user lost every group.
func (id *identityState) mappedDirectoryDNs(st *store.Store) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var dns []string
	err := st.View(ctx, func(tx *store.Tx) error {
		ms, err := tx.GroupMappings()
		for _, m := range ms {
			if m.DirectoryGroup != "" {
				dns = append(dns, m.DirectoryGroup)
			}
		}
		return err
	})
	if err != nil {
		id.log.Error("group mappings unreadable; the sync uses the last ones read", "error", err)
		if last := id.lastMaps.Load(); last != nil {
			return *last
		}
		return nil
	}
	id.lastMaps.Store(&dns)
	return dns
}

// reloadIssuers applies the stored issuers to the verifier (after start and
// after every committed issuer change). A stored issuer the verifier
// refuses is logged and left out rather than stopping the daemon.
func (id *identityState) reloadIssuers(ctx context.Context, st *store.Store) error {
	var stored []store.Issuer
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		stored, err = tx.Issuers()
		return err
	}); err != nil {
		return err
	}
	cfgs := make([]token.Issuer, 0, len(stored))
	for _, s := range stored {
		c := tokenIssuer(s)
		if err := c.Validate(); err != nil {
			id.log.Error("stored token issuer ignored", "issuer", s.Name, "error", err)
			continue
		}
		cfgs = append(cfgs, c)
	}
	return id.verifier.SetIssuers(cfgs)
}

func tokenIssuer(s store.Issuer) token.Issuer {
	return token.Issuer{Name: s.Name, Issuer: s.Issuer, Audience: s.Audience, JWKSURL: s.JWKSURL,
		JWKSFile: s.JWKSFile, SubjectClaim: s.SubjectClaim, GroupsClaim: s.GroupsClaim}
}
