package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/identity/directory"
	"github.com/camwarden/camwarden/daemon/identity/token"
	"github.com/camwarden/camwarden/store"
)

// Issuers, group mappings, the directory and token revocation (#13). The
// records are stored and validated here; the verifier follows the issuers
// and revocations at once. Logging viewers in with them is not wired yet.

// identityMutation commits one identity change through the ordinary
// mutation path (audit, policy snapshot, Enforce).
func (b backend) identityMutation(ctx context.Context, c api.Caller, action, target string, args map[string]string, apply func(tx *store.Tx) error) (*apitype.MutationResult, error) {
	res, err := b.d.mutate(ctx, mutation{
		caller: c, action: action, target: target, args: args,
		apply: func(tx *store.Tx, _ *changeSet) error { return apply(tx) },
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

// identityChange commits a change, then has the running identity state
// (verifier or directory) re-read the store. A failed re-read is reported:
// the change is saved but not in force.
func (b backend) identityChange(ctx context.Context, c api.Caller, action, target string, args map[string]string,
	apply func(tx *store.Tx) error, reload func(context.Context, *store.Store) error) (*apitype.MutationResult, error) {
	res, err := b.identityMutation(ctx, c, action, target, args, apply)
	if err != nil {
		return nil, err
	}
	if err := reload(ctx, b.d.store); err != nil {
		b.d.log.Error("identity change committed but not applied", "action", action, "error", err)
		return nil, apitype.Errorf(apitype.CodeInternal, "the change is saved but not yet in force; see the camwardend log")
	}
	return res, nil
}

func (b backend) IssuerList(ctx context.Context, c api.Caller) (*apitype.IssuerList, error) {
	out := &apitype.IssuerList{Issuers: []apitype.Issuer{}}
	var stored []store.Issuer
	if err := b.d.store.View(ctx, func(tx *store.Tx) error {
		var err error
		stored, err = tx.Issuers()
		return err
	}); err != nil {
		return nil, toAPIError(err)
	}
	status := b.d.identity.verifier.Status()
	for _, s := range stored {
		cfg := tokenIssuer(s)
		is := apitype.Issuer{Name: s.Name, Issuer: s.Issuer, Audience: s.Audience, JWKSURL: apitype.StripUserinfo(s.JWKSURL),
			JWKSFile: s.JWKSFile, SubjectClaim: orDefault(cfg.SubjectClaim, "sub"), GroupsClaim: orDefault(cfg.GroupsClaim, "groups"),
			Created: s.Created}
		if st, ok := status[s.Name]; ok {
			is.Keys, is.SkippedKeys, is.LastRefresh, is.LastError = st.Keys, st.Skipped, st.LastRefresh, st.LastError
		} else {
			is.LastError = "not loaded (see the camwardend log)"
		}
		out.Issuers = append(out.Issuers, is)
	}
	return out, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (b backend) IssuerAdd(ctx context.Context, c api.Caller, req apitype.IssuerAddRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.Issuer == "" {
		req.Issuer = req.Name
	}
	rec := store.Issuer{Name: req.Name, Issuer: req.Issuer, Audience: req.Audience, JWKSURL: req.JWKSURL,
		JWKSFile: req.JWKSFile, SubjectClaim: req.SubjectClaim, GroupsClaim: req.GroupsClaim}
	if err := tokenIssuer(rec).Validate(); err != nil {
		return nil, invalid("%v", err)
	}
	args := map[string]string{"iss": req.Issuer, "audience": req.Audience, "jwks_url": apitype.StripUserinfo(req.JWKSURL),
		"jwks_file": req.JWKSFile, "subject_claim": req.SubjectClaim, "groups_claim": req.GroupsClaim}
	return b.identityChange(ctx, c, "issuer.add", req.Name, args, func(tx *store.Tx) error { return tx.CreateIssuer(rec) },
		b.d.identity.reloadIssuers)
}

func (b backend) IssuerRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	if err := apitype.CheckName("issuer", name); err != nil {
		return nil, err
	}
	// Concurrent changes each re-read the store, so the last one applied is the latest.
	return b.identityChange(ctx, c, "issuer.remove", name, nil, func(tx *store.Tx) error { return tx.DeleteIssuer(name) },
		b.d.identity.reloadIssuers)
}

func (b backend) GroupMapList(ctx context.Context, c api.Caller) (*apitype.GroupMapList, error) {
	maps, err := b.d.viewers.mappings(ctx)
	if err != nil {
		return nil, toAPIError(err)
	}
	out := &apitype.GroupMapList{Mappings: []apitype.GroupMapping{}}
	for _, m := range maps {
		out.Mappings = append(out.Mappings, apitype.GroupMapping{Group: m.Group, Issuer: m.Issuer, ClaimValue: m.Value, DirectoryGroup: m.DirectoryGroup})
	}
	return out, nil
}

func groupMapping(m apitype.GroupMapping) (store.GroupMapping, map[string]string, error) {
	if err := m.Validate(); err != nil {
		return store.GroupMapping{}, nil, err
	}
	if m.DirectoryGroup != "" {
		if err := directory.CheckDN(m.DirectoryGroup); err != nil {
			return store.GroupMapping{}, nil, invalid("--directory-group: %v", err)
		}
		return store.GroupMapping{Group: m.Group, DirectoryGroup: m.DirectoryGroup}, map[string]string{"directory_group": m.DirectoryGroup}, nil
	}
	return store.GroupMapping{Group: m.Group, Issuer: m.Issuer, Value: m.ClaimValue},
		map[string]string{"issuer": m.Issuer, "claim_value": m.ClaimValue}, nil
}

func (b backend) GroupMapAdd(ctx context.Context, c api.Caller, m apitype.GroupMapping) (*apitype.MutationResult, error) {
	sm, args, err := groupMapping(m)
	if err != nil {
		return nil, err
	}
	return b.identityChange(ctx, c, "group.map", m.Group, args, func(tx *store.Tx) error { return tx.AddGroupMapping(sm) },
		b.d.regroupSessions)
}

func (b backend) GroupMapRemove(ctx context.Context, c api.Caller, m apitype.GroupMapping) (*apitype.MutationResult, error) {
	sm, args, err := groupMapping(m)
	if err != nil {
		return nil, err
	}
	return b.identityChange(ctx, c, "group.unmap", m.Group, args, func(tx *store.Tx) error { return tx.RemoveGroupMapping(sm) },
		b.d.regroupSessions)
}

func (b backend) DirectoryShow(ctx context.Context, c api.Caller) (*apitype.Directory, error) {
	var out apitype.Directory
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		d, ok, err := tx.Directory()
		if err != nil || !ok {
			return err
		}
		out = apitype.Directory{Configured: true, URL: d.URL, StartTLS: d.StartTLS, CAFile: d.CAFile, BindDN: d.BindDN,
			HasBindPassword: d.HasBindPassword, BaseDN: d.BaseDN, UserFilter: d.UserFilter, GroupAttribute: d.GroupAttribute,
			GroupFilter: d.GroupFilter, GroupBaseDN: d.GroupBaseDN, DisabledFilter: d.DisabledFilter,
			TimeoutMS: d.Timeout.Milliseconds(), SyncIntervalMS: d.SyncInterval.Milliseconds(), Changed: d.Changed}
		return nil
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return &out, nil
}

func (b backend) DirectorySet(ctx context.Context, c api.Caller, req apitype.DirectorySetRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	rec := store.Directory{URL: req.URL, StartTLS: req.StartTLS, CAFile: req.CAFile, BindDN: req.BindDN, BaseDN: req.BaseDN,
		UserFilter: req.UserFilter, GroupAttribute: req.GroupAttribute, GroupFilter: req.GroupFilter, GroupBaseDN: req.GroupBaseDN,
		DisabledFilter: req.DisabledFilter, Timeout: time.Duration(req.TimeoutMS) * time.Millisecond,
		SyncInterval: time.Duration(req.SyncIntervalMS) * time.Millisecond}
	// The directory package checks the rest (filters, DNs, URL form). The
	// password only has to be non-empty for that check; the stored one is
	// kept when none is given.
	if err := directoryConfig(rec, "(checked later)").Validate(); err != nil {
		return nil, invalid("%v", err)
	}
	if rec.CAFile != "" {
		if _, err := loadDirectoryCA(rec.CAFile); err != nil {
			return nil, invalid("--ca-file: %v", err)
		}
	}
	args := map[string]string{"url": req.URL, "bind_dn": req.BindDN, "base_dn": req.BaseDN, "user_filter": req.UserFilter,
		"group_attribute": req.GroupAttribute, "group_filter": req.GroupFilter, "disabled_filter": req.DisabledFilter,
		"bind_password": store.AuditSecretChanged}
	if req.BindPassword == "" { // keeps the stored one
		args["bind_password"] = store.AuditSecretKept
	}
	return b.identityChange(ctx, c, "directory.set", "directory", args, func(tx *store.Tx) error {
		if req.BindPassword == "" {
			if old, ok, err := tx.Directory(); err != nil {
				return err
			} else if !ok || !old.HasBindPassword {
				return invalid("the directory needs the service account's bind password (--password-stdin)")
			}
		}
		return tx.SetDirectory(rec, req.BindPassword)
	}, b.d.directoryChanged)
}

func (b backend) DirectoryClear(ctx context.Context, c api.Caller) (*apitype.MutationResult, error) {
	return b.identityChange(ctx, c, "directory.clear", "directory", nil, func(tx *store.Tx) error { return tx.ClearDirectory() },
		b.d.directoryChanged)
}

// DirectoryTest logs a user in against the directory (no session) and says
// which groups it is in and which camwarden groups they map to. The answer
// to a refusal names the reason: the caller is an admin checking the set-up.
func (b backend) DirectoryTest(ctx context.Context, c api.Caller, req apitype.DirectoryTestRequest) (*apitype.DirectoryTestResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	dir := b.d.identity.dir.Load()
	if dir == nil {
		return nil, apitype.Errorf(apitype.CodeNotFound, "no usable directory is configured (camwarden directory set; see the camwardend log)")
	}
	dir.Forget(req.User) // test the directory, not the bind cache
	u, err := dir.Login(ctx, req.User, req.Password)
	if err != nil {
		code := apitype.CodeUnauthorized
		if errors.Is(err, directory.ErrUnavailable) {
			code = apitype.CodeUnavailable
		}
		b.d.auditFailure(ctx, c, "directory.test", req.User, "failed: "+code)
		return nil, apitype.Errorf(code, "%v", err)
	}
	maps, err := b.d.viewers.mappings(ctx)
	if err != nil {
		return nil, toAPIError(err)
	}
	b.d.audit(ctx, auditEntry(c, "directory.test", req.User, "ok", nil))
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return &apitype.DirectoryTestResult{User: u.Name, DN: u.DN, Groups: groups, MappedGroups: mappedDirectoryGroups(maps, u.Groups)}, nil
}

func (b backend) TokenRevoke(ctx context.Context, c api.Caller, req apitype.TokenRevokeRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	until := req.Until
	if !until.IsZero() && !until.After(time.Now()) {
		return nil, invalid("--until %s has passed: a token past its exp is refused anyway", until.UTC().Format(time.RFC3339))
	}
	if until.IsZero() {
		until = time.Now().Add(token.DefaultMaxLifetime)
	}
	res, err := b.identityMutation(ctx, c, "token.revoke", req.JTI, map[string]string{"until": until.UTC().Format(time.RFC3339)},
		func(tx *store.Tx) error { return tx.RevokeToken(req.JTI, until) })
	if err != nil {
		return nil, err
	}
	// committed first, so a crash now still refuses the token after restart
	b.d.identity.verifier.Revoke(req.JTI, until)
	return res, nil
}

// TokenCheck verifies a token as a viewer login would and says which
// camwarden groups its claims map to. The token is never logged or audited;
// the audit entry names the issuer and subject (or the refusal class).
func (b backend) TokenCheck(ctx context.Context, c api.Caller, req apitype.TokenCheckRequest) (*apitype.TokenCheckResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	vctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	id, err := b.d.identity.verifier.Verify(vctx, req.Token)
	if err != nil {
		b.d.auditFailure(ctx, c, "token.check", "", "failed: "+apitype.CodeUnauthorized)
		return nil, apitype.Errorf(apitype.CodeUnauthorized, "%v", err)
	}
	maps, err := b.d.viewers.mappings(ctx)
	if err != nil {
		return nil, toAPIError(err)
	}
	b.d.audit(ctx, auditEntry(c, "token.check", id.Issuer+":"+id.Subject, "ok", map[string]string{"jti": id.JTI}))
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	return &apitype.TokenCheckResult{Issuer: id.Issuer, Subject: id.Subject, Groups: groups, JTI: id.JTI, KeyID: id.KeyID,
		Expiry: id.Expiry, MappedGroups: mappedTokenGroups(maps, id.Issuer, id.Groups)}, nil
}
