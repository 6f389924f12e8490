package daemon

import (
	"context"
	"sort"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

func (b backend) UserList(ctx context.Context, c api.Caller) (*apitype.UserList, error) {
	out := &apitype.UserList{Users: []apitype.User{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		pd, err := tx.PolicyData()
		if err != nil {
			return err
		}
		groupsOf := map[string][]string{}
		for _, g := range pd.Groups {
			for _, m := range g.Members {
				groupsOf[m] = append(groupsOf[m], g.Name)
			}
		}
		for _, u := range pd.Users {
			gs := groupsOf[u.Name]
			if gs == nil {
				gs = []string{}
			}
			sort.Strings(gs)
			out.Users = append(out.Users, apitype.User{Name: u.Name, Disabled: u.Disabled, Created: u.Created, Changed: u.Changed, Groups: gs})
		}
		return nil
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}

func (b backend) userMutation(ctx context.Context, c api.Caller, action, name string, args map[string]string, apply func(tx *store.Tx) error) (*apitype.MutationResult, error) {
	res, err := b.d.mutate(ctx, mutation{
		caller: c, action: action, target: name, args: args,
		apply: func(tx *store.Tx, ch *changeSet) error {
			ch.users = true
			return apply(tx)
		},
	})
	if err != nil {
		return nil, err
	}
	res.Changed = true
	return &res, nil
}

func (b backend) UserAdd(ctx context.Context, c api.Caller, req apitype.UserAddRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return b.userMutation(ctx, c, "user.add", req.Name, nil, func(tx *store.Tx) error { return tx.CreateUser(req.Name, req.Password) })
}

func (b backend) UserPasswd(ctx context.Context, c api.Caller, req apitype.UserPasswdRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return b.userMutation(ctx, c, "user.passwd", req.Name, nil, func(tx *store.Tx) error { return tx.SetUserPassword(req.Name, req.Password) })
}

func (b backend) UserDisable(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "user.disable", name, nil, func(tx *store.Tx) error { return tx.SetUserDisabled(name, true) })
}

func (b backend) UserEnable(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "user.enable", name, nil, func(tx *store.Tx) error { return tx.SetUserDisabled(name, false) })
}

func (b backend) UserRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "user.remove", name, nil, func(tx *store.Tx) error { return tx.DeleteUser(name) })
}
