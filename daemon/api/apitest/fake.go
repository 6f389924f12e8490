// Package apitest provides a fake api.Backend for tests of the admin API,
// its client and the CLI: every call is routed through one function field,
// so a test sees the operation name and the typed request.
package apitest

import (
	"context"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
)

// Fake implements api.Backend. Handle gets the Backend method name, the
// caller and the request (the typed request struct, the name string, or nil
// for methods without input); a nil result means a zero response. A nil
// Handle answers every call with a zero response.
type Fake struct {
	Handle  func(ctx context.Context, op string, c api.Caller, req any) (any, error)
	Refused func(c api.Caller, method, path, reason string)
}

var _ api.Backend = (*Fake)(nil)

func call[T any](ctx context.Context, f *Fake, op string, c api.Caller, req any) (*T, error) {
	if f.Handle != nil {
		v, err := f.Handle(ctx, op, c, req)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return v.(*T), nil
		}
	}
	return new(T), nil
}

// AuditRefusal reports to Refused.
func (f *Fake) AuditRefusal(ctx context.Context, c api.Caller, method, path, reason string) {
	if f.Refused != nil {
		f.Refused(c, method, path, reason)
	}
}

// Status implements api.Backend.
func (f *Fake) Status(ctx context.Context, c api.Caller) (*apitype.Status, error) {
	return call[apitype.Status](ctx, f, "Status", c, nil)
}

// Discover implements api.Backend.
func (f *Fake) Discover(ctx context.Context, c api.Caller, req apitype.DiscoverRequest) (*apitype.DiscoverResult, error) {
	return call[apitype.DiscoverResult](ctx, f, "Discover", c, req)
}

// CameraList implements api.Backend.
func (f *Fake) CameraList(ctx context.Context, c api.Caller) (*apitype.CameraList, error) {
	return call[apitype.CameraList](ctx, f, "CameraList", c, nil)
}

// CameraShow implements api.Backend.
func (f *Fake) CameraShow(ctx context.Context, c api.Caller, name string) (*apitype.Camera, error) {
	return call[apitype.Camera](ctx, f, "CameraShow", c, name)
}

// CameraAdd implements api.Backend.
func (f *Fake) CameraAdd(ctx context.Context, c api.Caller, req apitype.CameraAddRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "CameraAdd", c, req)
}

// CameraAdopt implements api.Backend.
func (f *Fake) CameraAdopt(ctx context.Context, c api.Caller, req apitype.CameraAdoptRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "CameraAdopt", c, req)
}

// CameraMove implements api.Backend.
func (f *Fake) CameraMove(ctx context.Context, c api.Caller, req apitype.CameraMoveRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "CameraMove", c, req)
}

// CameraSet implements api.Backend.
func (f *Fake) CameraSet(ctx context.Context, c api.Caller, req apitype.CameraSetRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "CameraSet", c, req)
}

// CameraRemove implements api.Backend.
func (f *Fake) CameraRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "CameraRemove", c, name)
}

// StreamList implements api.Backend.
func (f *Fake) StreamList(ctx context.Context, c api.Caller) (*apitype.StreamList, error) {
	return call[apitype.StreamList](ctx, f, "StreamList", c, nil)
}

// UserList implements api.Backend.
func (f *Fake) UserList(ctx context.Context, c api.Caller) (*apitype.UserList, error) {
	return call[apitype.UserList](ctx, f, "UserList", c, nil)
}

// UserAdd implements api.Backend.
func (f *Fake) UserAdd(ctx context.Context, c api.Caller, req apitype.UserAddRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "UserAdd", c, req)
}

// UserPasswd implements api.Backend.
func (f *Fake) UserPasswd(ctx context.Context, c api.Caller, req apitype.UserPasswdRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "UserPasswd", c, req)
}

// UserDisable implements api.Backend.
func (f *Fake) UserDisable(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "UserDisable", c, name)
}

// UserEnable implements api.Backend.
func (f *Fake) UserEnable(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "UserEnable", c, name)
}

// UserRemove implements api.Backend.
func (f *Fake) UserRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "UserRemove", c, name)
}

// GroupList implements api.Backend.
func (f *Fake) GroupList(ctx context.Context, c api.Caller) (*apitype.GroupList, error) {
	return call[apitype.GroupList](ctx, f, "GroupList", c, nil)
}

// GroupAdd implements api.Backend.
func (f *Fake) GroupAdd(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "GroupAdd", c, name)
}

// GroupRemove implements api.Backend.
func (f *Fake) GroupRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "GroupRemove", c, name)
}

// GroupMemberAdd implements api.Backend.
func (f *Fake) GroupMemberAdd(ctx context.Context, c api.Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "GroupMemberAdd", c, req)
}

// GroupMemberRemove implements api.Backend.
func (f *Fake) GroupMemberRemove(ctx context.Context, c api.Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "GroupMemberRemove", c, req)
}

// Grant implements api.Backend.
func (f *Fake) Grant(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "Grant", c, g)
}

// Revoke implements api.Backend.
func (f *Fake) Revoke(ctx context.Context, c api.Caller, g apitype.Grant) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "Revoke", c, g)
}

// Grants implements api.Backend.
func (f *Fake) Grants(ctx context.Context, c api.Caller, subject string) (*apitype.GrantList, error) {
	return call[apitype.GrantList](ctx, f, "Grants", c, subject)
}

// SessionList implements api.Backend.
func (f *Fake) SessionList(ctx context.Context, c api.Caller) (*apitype.SessionList, error) {
	return call[apitype.SessionList](ctx, f, "SessionList", c, nil)
}

// SessionKick implements api.Backend.
func (f *Fake) SessionKick(ctx context.Context, c api.Caller, id string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "SessionKick", c, id)
}

// AuditList implements api.Backend.
func (f *Fake) AuditList(ctx context.Context, c api.Caller, req apitype.AuditListRequest) (*apitype.AuditList, error) {
	return call[apitype.AuditList](ctx, f, "AuditList", c, req)
}

// AuditVerify implements api.Backend.
func (f *Fake) AuditVerify(ctx context.Context, c api.Caller, req apitype.AuditVerifyRequest) (*apitype.AuditVerify, error) {
	return call[apitype.AuditVerify](ctx, f, "AuditVerify", c, req)
}

// KeyRotate implements api.Backend.
func (f *Fake) KeyRotate(ctx context.Context, c api.Caller) (*apitype.KeyRotate, error) {
	return call[apitype.KeyRotate](ctx, f, "KeyRotate", c, nil)
}
