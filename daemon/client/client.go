// Package client is the typed Go client of camwardend's admin API, used by
// the camwarden CLI and by tests. Methods are named after the daemon's
// Backend methods, one per endpoint.
//
// When the daemon answered with an error, methods return *apitype.Error.
// When it could not be reached, they return *ConnError, whose message says
// what to do.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// DefaultSocket is where camwardend listens by default.
const DefaultSocket = "/run/camwarden/admin.sock"

// maxResponseBytes caps what the client reads of one answer.
const maxResponseBytes = 64 << 20

// Client talks to camwardend over its Unix socket. It is safe for
// concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the daemon listening on socketPath ("" means
// DefaultSocket). It does not connect until the first call.
func New(socketPath string) *Client {
	if socketPath == "" {
		socketPath = DefaultSocket
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // discovery may take a while; callers bound calls with ctx
	}
	return &Client{socket: socketPath, hc: &http.Client{Transport: tr}}
}

// SocketPath is the socket this client talks to.
func (c *Client) SocketPath() string { return c.socket }

// ConnError means the daemon could not be reached at all.
type ConnError struct {
	Path string
	Err  error
}

func (e *ConnError) Error() string {
	if errors.Is(e.Err, os.ErrPermission) {
		return fmt.Sprintf("permission denied on %s — run as root or as a member of the camwarden-admin group (sudo camwarden ...)", e.Path)
	}
	if e.Path != DefaultSocket {
		// Not the packaged daemon's socket (make demo, a test, --socket):
		// systemctl knows nothing of that daemon.
		return fmt.Sprintf("cannot reach camwardend at %s — is a daemon running with --socket %s? (check its log; the packaged daemon's socket is %s)", e.Path, e.Path, DefaultSocket)
	}
	return fmt.Sprintf("cannot reach camwardend at %s — is it running? try: systemctl status camwardend (or give --socket PATH for a daemon started by hand)", e.Path)
}

func (e *ConnError) Unwrap() error { return e.Err }

// do sends one request; in (may be nil) is sent as JSON, the answer is
// decoded into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := "http://camwardend" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("camwardend did not answer in time: %w", ctx.Err())
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return &ConnError{Path: c.socket, Err: oe.Err}
		}
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return &ConnError{Path: c.socket, Err: err}
		}
		return fmt.Errorf("talking to camwardend at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("reading camwardend's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return parseError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding camwardend's answer: %w", err)
	}
	return nil
}

// parseError turns an error answer into *apitype.Error, whatever its body.
func parseError(status int, data []byte) *apitype.Error {
	var eb apitype.ErrorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error != nil && eb.Error.Code != "" {
		return eb.Error
	}
	code := apitype.CodeInternal
	switch status {
	case http.StatusBadRequest:
		code = apitype.CodeInvalid
	case http.StatusUnauthorized:
		code = apitype.CodeUnauthorized
	case http.StatusForbidden:
		code = apitype.CodeForbidden
	case http.StatusNotFound:
		code = apitype.CodeNotFound
	case http.StatusConflict:
		code = apitype.CodeConflict
	case http.StatusRequestEntityTooLarge:
		code = apitype.CodeTooLarge
	case http.StatusServiceUnavailable:
		code = apitype.CodeUnavailable
	}
	return apitype.Errorf(code, "camwardend answered %d %s", status, http.StatusText(status))
}

// call does one round trip and decodes the answer into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, query url.Values, in any) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, query, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func seg(s string) string { return url.PathEscape(s) }

// Status reports the daemon's state.
func (c *Client) Status(ctx context.Context) (*apitype.Status, error) {
	return call[apitype.Status](ctx, c, "GET", "/v1/status", nil, nil)
}

// Discover runs an ONVIF discovery round.
func (c *Client) Discover(ctx context.Context, req apitype.DiscoverRequest) (*apitype.DiscoverResult, error) {
	return call[apitype.DiscoverResult](ctx, c, "POST", "/v1/discover", nil, req)
}

// CameraList lists the cameras.
func (c *Client) CameraList(ctx context.Context) (*apitype.CameraList, error) {
	return call[apitype.CameraList](ctx, c, "GET", "/v1/cameras", nil, nil)
}

// CameraShow describes one camera.
func (c *Client) CameraShow(ctx context.Context, name string) (*apitype.Camera, error) {
	return call[apitype.Camera](ctx, c, "GET", "/v1/cameras/"+seg(name), nil, nil)
}

// CameraAdd adds a camera by RTSP URL.
func (c *Client) CameraAdd(ctx context.Context, req apitype.CameraAddRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/cameras", nil, req)
}

// CameraAdopt adopts an ONVIF device as a camera.
func (c *Client) CameraAdopt(ctx context.Context, req apitype.CameraAdoptRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/cameras/adopt", nil, req)
}

// CameraSet changes a camera.
func (c *Client) CameraSet(ctx context.Context, req apitype.CameraSetRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "PATCH", "/v1/cameras/"+seg(req.Name), nil, req)
}

// CameraMove confirms an adopted camera's new address.
func (c *Client) CameraMove(ctx context.Context, req apitype.CameraMoveRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/cameras/"+seg(req.Name)+"/move", nil, req)
}

// CameraRemove removes a camera.
func (c *Client) CameraRemove(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/cameras/"+seg(name), nil, nil)
}

// StreamList reports the live state of every stream.
func (c *Client) StreamList(ctx context.Context) (*apitype.StreamList, error) {
	return call[apitype.StreamList](ctx, c, "GET", "/v1/streams", nil, nil)
}

// UserList lists the users.
func (c *Client) UserList(ctx context.Context) (*apitype.UserList, error) {
	return call[apitype.UserList](ctx, c, "GET", "/v1/users", nil, nil)
}

// UserAdd creates a user.
func (c *Client) UserAdd(ctx context.Context, req apitype.UserAddRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/users", nil, req)
}

// UserPasswd replaces a user's password.
func (c *Client) UserPasswd(ctx context.Context, req apitype.UserPasswdRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "PUT", "/v1/users/"+seg(req.Name)+"/password", nil, req)
}

// UserDisable disables a user and closes their sessions.
func (c *Client) UserDisable(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/users/"+seg(name)+"/disable", nil, nil)
}

// UserEnable enables a user.
func (c *Client) UserEnable(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/users/"+seg(name)+"/enable", nil, nil)
}

// UserRemove removes a user.
func (c *Client) UserRemove(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/users/"+seg(name), nil, nil)
}

// GroupList lists the groups and their members.
func (c *Client) GroupList(ctx context.Context) (*apitype.GroupList, error) {
	return call[apitype.GroupList](ctx, c, "GET", "/v1/groups", nil, nil)
}

// GroupAdd creates a group.
func (c *Client) GroupAdd(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/groups", nil, map[string]string{"name": name})
}

// GroupRemove removes a group.
func (c *Client) GroupRemove(ctx context.Context, name string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/groups/"+seg(name), nil, nil)
}

// GroupMemberAdd adds a user to a group.
func (c *Client) GroupMemberAdd(ctx context.Context, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/groups/"+seg(req.Group)+"/members", nil, req)
}

// GroupMemberRemove removes a user from a group.
func (c *Client) GroupMemberRemove(ctx context.Context, req apitype.GroupMemberRequest) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/groups/"+seg(req.Group)+"/members/"+seg(req.User), nil, nil)
}

// Grant adds a grant.
func (c *Client) Grant(ctx context.Context, g apitype.Grant) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/grants", nil, g)
}

// Revoke removes a grant and closes the sessions it no longer allows.
func (c *Client) Revoke(ctx context.Context, g apitype.Grant) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "POST", "/v1/grants/revoke", nil, g)
}

// Grants lists the grants, of one subject when subject is not empty.
func (c *Client) Grants(ctx context.Context, subject string) (*apitype.GrantList, error) {
	var q url.Values
	if subject != "" {
		q = url.Values{"subject": {subject}}
	}
	return call[apitype.GrantList](ctx, c, "GET", "/v1/grants", q, nil)
}

// SessionList lists the live RTSP sessions.
func (c *Client) SessionList(ctx context.Context) (*apitype.SessionList, error) {
	return call[apitype.SessionList](ctx, c, "GET", "/v1/sessions", nil, nil)
}

// SessionKick closes one RTSP session.
func (c *Client) SessionKick(ctx context.Context, id string) (*apitype.MutationResult, error) {
	return call[apitype.MutationResult](ctx, c, "DELETE", "/v1/sessions/"+seg(id), nil, nil)
}

// AuditList reads the audit log.
func (c *Client) AuditList(ctx context.Context, req apitype.AuditListRequest) (*apitype.AuditList, error) {
	q := url.Values{}
	if !req.Since.IsZero() {
		q.Set("since", req.Since.UTC().Format(time.RFC3339))
	}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	return call[apitype.AuditList](ctx, c, "GET", "/v1/audit", q, nil)
}

// AuditVerify checks the audit log's hash chain, and that the database
// holds the given heads mirrored to the journal (none: the chain only).
// The heads go in a POST body: there may be thousands.
func (c *Client) AuditVerify(ctx context.Context, req apitype.AuditVerifyRequest) (*apitype.AuditVerify, error) {
	return call[apitype.AuditVerify](ctx, c, "POST", "/v1/audit/verify", nil, req)
}

// KeyRotate re-seals every secret under a new master key.
func (c *Client) KeyRotate(ctx context.Context) (*apitype.KeyRotate, error) {
	return call[apitype.KeyRotate](ctx, c, "POST", "/v1/key/rotate", nil, nil)
}
