package daemon

import (
	"context"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/store"
)

func (b backend) GroupList(ctx context.Context, c api.Caller) (*apitype.GroupList, error) {
	out := &apitype.GroupList{Groups: []apitype.Group{}}
	err := b.d.store.View(ctx, func(tx *store.Tx) error {
		gs, err := tx.Groups()
		for _, g := range gs {
			m := g.Members
			if m == nil {
				m = []string{}
			}
			out.Groups = append(out.Groups, apitype.Group{Name: g.Name, Members: m})
		}
		return err
	})
	if err != nil {
		return nil, toAPIError(err)
	}
	return out, nil
}

func (b backend) GroupAdd(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	if err := apitype.CheckName("group", name); err != nil {
		return nil, err
	}
	return b.userMutation(ctx, c, "group.add", name, nil, func(tx *store.Tx) error { return tx.CreateGroup(name) })
}

func (b backend) GroupRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "group.remove", name, nil, func(tx *store.Tx) error { return tx.DeleteGroup(name) })
}

func (b backend) GroupMemberAdd(ctx context.Context, c api.Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return b.userMutation(ctx, c, "group.member.add", req.Group, map[string]string{"user": req.User}, func(tx *store.Tx) error { return tx.AddMember(req.Group, req.User) })
}

func (b backend) GroupMemberRemove(ctx context.Context, c api.Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return b.userMutation(ctx, c, "group.member.remove", req.Group, map[string]string{"user": req.User}, func(tx *store.Tx) error { return tx.RemoveMember(req.Group, req.User) })
}
