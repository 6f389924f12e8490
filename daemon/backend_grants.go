package daemon

import (
	"context"
	"strings"

	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

// checkGrant validates a grant and that its subject exists.
func checkGrant(tx *store.Tx, g apitype.Grant) error {
	if _, err := access.ParseAction(g.Action); err != nil {
		return invalid("%v", err)
	}
	if err := access.ValidatePattern(g.Pattern); err != nil {
		return invalid("%v", err)
	}
	if name, isGroup := strings.CutPrefix(g.Subject, "@"); isGroup {
		gs, err := tx.Groups()
		if err != nil {
			return err
		}
		for _, grp := range gs {
			if grp.Name == name {
				return nil
			}
		}
		return apitype.Errorf(apitype.CodeNotFound, "group %q not found (create it with: camwarden group add %s)", name, name)
	}
	if err := access.CheckName("user", g.Subject); err != nil {
		return invalid("%v (a group is written @name)", err)
	}
	_, err := tx.User(g.Subject)
	return err
}

func (b backend) Grant(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	return b.grantMutation(ctx, c, "grant.add", g, func(tx *store.Tx) error {
		if err := checkGrant(tx, g); err != nil {
			return err
		}
		return tx.AddGrant(store.Grant{Subject: g.Subject, Action: g.Action, Pattern: g.Pattern})
	})
}

func (b backend) Revoke(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	return b.grantMutation(ctx, c, "grant.revoke", g, func(tx *store.Tx) error {
		return tx.RevokeGrant(store.Grant{Subject: g.Subject, Action: g.Action, Pattern: g.Pattern})
	})
}

func (b backend) grantMutation(ctx context.Context, c api.Caller, action string, g apitype.Grant, apply func(tx *store.Tx) error) (*apitype.MutationResult, error) {
	res, err := b.d.mutate(ctx, mutation{
		caller: c, action: action, target: g.Subject,
		args:  map[string]string{"action": g.Action, "pattern": g.Pattern},
		apply: func(tx *store.Tx, ch *changeSet) error { return apply(tx) },
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

func (b backend) Grants(ctx context.Context, c api.Caller, subject string) (*apitype.GrantList, error) {
	out := &apitype.GrantList{Grants: []apitype.Grant{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		gs, err := tx.Grants()
		for _, g := range gs {
			if subject == "" || g.Subject == subject {
				out.Grants = append(out.Grants, apitype.Grant{Subject: g.Subject, Action: g.Action, Pattern: g.Pattern})
			}
		}
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}
