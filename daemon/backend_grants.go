package daemon

import (
	"context"
	"strings"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

// checkSubjectExists refuses a grant to a user or @group that does not exist.
func checkSubjectExists(tx *store.Tx, subject string) error {
	if name, isGroup := strings.CutPrefix(subject, "@"); isGroup {
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
	_, err := tx.User(subject)
	return err
}

func (b backend) Grant(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return b.grantMutation(ctx, c, "grant.add", g, func(tx *store.Tx) error {
		if err := checkSubjectExists(tx, g.Subject); err != nil {
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
