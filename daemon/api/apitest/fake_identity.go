package apitest

import (
	"context"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
)

// IssuerList implements api.Backend.
func (f *Fake) IssuerList(ctx context.Context, c api.Caller) (*apitype.IssuerList, error) {
	return call[apitype.IssuerList](ctx, f, "IssuerList", c, nil)
}

// IssuerAdd implements api.Backend.
func (f *Fake) IssuerAdd(ctx context.Context, c api.Caller, req apitype.IssuerAddRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "IssuerAdd", c, req)
}

// IssuerRemove implements api.Backend.
func (f *Fake) IssuerRemove(ctx context.Context, c api.Caller, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "IssuerRemove", c, name)
}

// GroupMapList implements api.Backend.
func (f *Fake) GroupMapList(ctx context.Context, c api.Caller) (*apitype.GroupMapList, error) {
	return call[apitype.GroupMapList](ctx, f, "GroupMapList", c, nil)
}

// GroupMapAdd implements api.Backend.
func (f *Fake) GroupMapAdd(ctx context.Context, c api.Caller, m apitype.GroupMapping) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "GroupMapAdd", c, m)
}

// GroupMapRemove implements api.Backend.
func (f *Fake) GroupMapRemove(ctx context.Context, c api.Caller, m apitype.GroupMapping) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "GroupMapRemove", c, m)
}

// DirectoryShow implements api.Backend.
func (f *Fake) DirectoryShow(ctx context.Context, c api.Caller) (*apitype.Directory, error) {
	return call[apitype.Directory](ctx, f, "DirectoryShow", c, nil)
}

// DirectorySet implements api.Backend.
func (f *Fake) DirectorySet(ctx context.Context, c api.Caller, req apitype.DirectorySetRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "DirectorySet", c, req)
}

// DirectoryClear implements api.Backend.
func (f *Fake) DirectoryClear(ctx context.Context, c api.Caller) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "DirectoryClear", c, nil)
}

// TokenRevoke implements api.Backend.
func (f *Fake) TokenRevoke(ctx context.Context, c api.Caller, req apitype.TokenRevokeRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, f, "TokenRevoke", c, req)
}

// DirectoryTest implements api.Backend.
func (f *Fake) DirectoryTest(ctx context.Context, c api.Caller, req apitype.DirectoryTestRequest) (*apitype.DirectoryTestResult, error) {
	return call[apitype.DirectoryTestResult](ctx, f, "DirectoryTest", c, req)
}

// TokenCheck implements api.Backend.
func (f *Fake) TokenCheck(ctx context.Context, c api.Caller, req apitype.TokenCheckRequest) (*apitype.TokenCheckResult, error) {
	return call[apitype.TokenCheckResult](ctx, f, "TokenCheck", c, req)
}
