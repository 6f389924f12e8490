package client

import (
	"context"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// IssuerList lists the token issuers and the state of their keys.
func (c *Client) IssuerList(ctx context.Context) (*apitype.IssuerList, error) {
	return call[apitype.IssuerList](ctx, c, "GET", "/v1/issuers", nil, nil)
}

// IssuerAdd adds a token issuer.
func (c *Client) IssuerAdd(ctx context.Context, req apitype.IssuerAddRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/issuers", nil, req)
}

// IssuerRemove removes a token issuer (its sessions end, its mappings go).
func (c *Client) IssuerRemove(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/issuers/"+seg(name), nil, nil)
}

// GroupMapList lists the group mappings.
func (c *Client) GroupMapList(ctx context.Context) (*apitype.GroupMapList, error) {
	return call[apitype.GroupMapList](ctx, c, "GET", "/v1/groupmaps", nil, nil)
}

// GroupMapAdd maps an issuer's claim value or a directory group onto a group.
func (c *Client) GroupMapAdd(ctx context.Context, m apitype.GroupMapping) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/groupmaps", nil, m)
}

// GroupMapRemove removes a group mapping.
func (c *Client) GroupMapRemove(ctx context.Context, m apitype.GroupMapping) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/groupmaps/remove", nil, m)
}

// DirectoryShow shows the directory configuration (never its bind password).
func (c *Client) DirectoryShow(ctx context.Context) (*apitype.Directory, error) {
	return call[apitype.Directory](ctx, c, "GET", "/v1/directory", nil, nil)
}

// DirectorySet replaces the directory configuration.
func (c *Client) DirectorySet(ctx context.Context, req apitype.DirectorySetRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "PUT", "/v1/directory", nil, req)
}

// DirectoryClear removes the directory configuration and its mappings.
func (c *Client) DirectoryClear(ctx context.Context) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/directory", nil, nil)
}

// TokenRevoke refuses a token id from now on and ends its sessions.
func (c *Client) TokenRevoke(ctx context.Context, req apitype.TokenRevokeRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/tokens/revoke", nil, req)
}

// DirectoryTest tries a directory login (no session) and reports the user's groups.
func (c *Client) DirectoryTest(ctx context.Context, req apitype.DirectoryTestRequest) (*apitype.DirectoryTestResult, error) {
	return call[apitype.DirectoryTestResult](ctx, c, "POST", "/v1/directory/test", nil, req)
}

// TokenCheck verifies a viewer token (no session) and reports what it says.
func (c *Client) TokenCheck(ctx context.Context, req apitype.TokenCheckRequest) (*apitype.TokenCheckResult, error) {
	return call[apitype.TokenCheckResult](ctx, c, "POST", "/v1/tokens/check", nil, req)
}
