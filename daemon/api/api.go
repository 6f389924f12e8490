// Package api serves camwardend's admin API: HTTP/1.1 + JSON over a local
// Unix socket, versioned under /v1/.
//
// Every connection is identified by SO_PEERCRED; only root, the daemon's own
// uid and members of the admin group (default camwarden-admin) are served,
// everyone else gets 403 and the refusal is reported to
// Backend.AuditRefusal. Requests carrying Origin or Referer (browsers) are
// refused, bodies are capped at 1 MiB, unknown JSON fields are rejected, and
// every error is written in one place with the shape
// {"error": {"code": "...", "message": "..."}}. As a second line behind
// the backend, credentials are stripped from every URL in a response.
//
// Routes (method, path, Backend method). Every route needs an allowed
// caller (see above); there is no finer right.
//
//	GET    /v1/audit                             AuditList        ?since=RFC3339&limit=N
//	POST   /v1/audit/verify                      AuditVerify      AuditVerifyRequest (up to 4096 journal heads)
//	GET    /v1/cameras                           CameraList
//	POST   /v1/cameras                           CameraAdd        CameraAddRequest
//	POST   /v1/cameras/adopt                     CameraAdopt      CameraAdoptRequest
//	DELETE /v1/cameras/{name}                    CameraRemove
//	GET    /v1/cameras/{name}                    CameraShow
//	PATCH  /v1/cameras/{name}                    CameraSet        CameraSetRequest
//	POST   /v1/cameras/{name}/move               CameraMove       CameraMoveRequest
//	DELETE /v1/directory                         DirectoryClear
//	GET    /v1/directory                         DirectoryShow
//	PUT    /v1/directory                         DirectorySet     DirectorySetRequest
//	POST   /v1/directory/test                    DirectoryTest    DirectoryTestRequest
//	POST   /v1/discover                          Discover         DiscoverRequest
//	GET    /v1/grants                            Grants           ?subject=S
//	POST   /v1/grants                            Grant            Grant
//	POST   /v1/grants/revoke                     Revoke           Grant
//	GET    /v1/groupmaps                         GroupMapList
//	POST   /v1/groupmaps                         GroupMapAdd      GroupMapping
//	POST   /v1/groupmaps/remove                  GroupMapRemove   GroupMapping
//	GET    /v1/groups                            GroupList
//	POST   /v1/groups                            GroupAdd         {"name": G}
//	DELETE /v1/groups/{name}                     GroupRemove
//	POST   /v1/groups/{name}/members             GroupMemberAdd   GroupMemberRequest
//	DELETE /v1/groups/{name}/members/{user}      GroupMemberRemove
//	GET    /v1/issuers                           IssuerList
//	POST   /v1/issuers                           IssuerAdd        IssuerAddRequest
//	DELETE /v1/issuers/{name}                    IssuerRemove
//	POST   /v1/key/rotate                        KeyRotate
//	GET    /v1/sessions                          SessionList
//	DELETE /v1/sessions/{id}                     SessionKick
//	GET    /v1/status                            Status
//	GET    /v1/streams                           StreamList
//	POST   /v1/tokens/check                      TokenCheck       TokenCheckRequest
//	POST   /v1/tokens/revoke                     TokenRevoke      TokenRevokeRequest
//	GET    /v1/users                             UserList
//	POST   /v1/users                             UserAdd          UserAddRequest
//	DELETE /v1/users/{name}                      UserRemove
//	POST   /v1/users/{name}/disable              UserDisable
//	POST   /v1/users/{name}/enable               UserEnable
//	PUT    /v1/users/{name}/password             UserPasswd       UserPasswdRequest
//
// Where a name is in the path and the body also names it, both must agree.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/hashicorp/go-hclog"
)

// DefaultAdminGroup is the group whose members may use the admin API.
const DefaultAdminGroup = "camwarden-admin"

// Backend is what the daemon implements: one method per endpoint. Errors of
// type *apitype.Error reach the caller as they are; any other error is
// logged and answered as a generic internal error, so internals and secrets
// never leak.
type Backend interface {
	Status(ctx context.Context, c Caller) (*apitype.Status, error)
	Discover(ctx context.Context, c Caller, req apitype.DiscoverRequest) (*apitype.DiscoverResult, error)

	CameraList(ctx context.Context, c Caller) (*apitype.CameraList, error)
	CameraShow(ctx context.Context, c Caller, name string) (*apitype.Camera, error)
	CameraAdd(ctx context.Context, c Caller, req apitype.CameraAddRequest) (*apitype.MutationResult, error)
	CameraAdopt(ctx context.Context, c Caller, req apitype.CameraAdoptRequest) (*apitype.MutationResult, error)
	CameraSet(ctx context.Context, c Caller, req apitype.CameraSetRequest) (*apitype.MutationResult, error)
	CameraRemove(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)
	CameraMove(ctx context.Context, c Caller, req apitype.CameraMoveRequest) (*apitype.MutationResult, error)

	StreamList(ctx context.Context, c Caller) (*apitype.StreamList, error)

	UserList(ctx context.Context, c Caller) (*apitype.UserList, error)
	UserAdd(ctx context.Context, c Caller, req apitype.UserAddRequest) (*apitype.MutationResult, error)
	UserPasswd(ctx context.Context, c Caller, req apitype.UserPasswdRequest) (*apitype.MutationResult, error)
	UserDisable(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)
	UserEnable(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)
	UserRemove(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)

	GroupList(ctx context.Context, c Caller) (*apitype.GroupList, error)
	GroupAdd(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)
	GroupRemove(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)
	GroupMemberAdd(ctx context.Context, c Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error)
	GroupMemberRemove(ctx context.Context, c Caller, req apitype.GroupMemberRequest) (*apitype.MutationResult, error)

	Grant(ctx context.Context, c Caller, g apitype.Grant) (*apitype.MutationResult, error)
	Revoke(ctx context.Context, c Caller, g apitype.Grant) (*apitype.MutationResult, error)
	Grants(ctx context.Context, c Caller, subject string) (*apitype.GrantList, error)

	SessionList(ctx context.Context, c Caller) (*apitype.SessionList, error)
	SessionKick(ctx context.Context, c Caller, id string) (*apitype.MutationResult, error)

	AuditList(ctx context.Context, c Caller, req apitype.AuditListRequest) (*apitype.AuditList, error)
	AuditVerify(ctx context.Context, c Caller, req apitype.AuditVerifyRequest) (*apitype.AuditVerify, error)

	KeyRotate(ctx context.Context, c Caller) (*apitype.KeyRotate, error)

	IssuerList(ctx context.Context, c Caller) (*apitype.IssuerList, error)
	IssuerAdd(ctx context.Context, c Caller, req apitype.IssuerAddRequest) (*apitype.MutationResult, error)
	IssuerRemove(ctx context.Context, c Caller, name string) (*apitype.MutationResult, error)
	GroupMapList(ctx context.Context, c Caller) (*apitype.GroupMapList, error)
	GroupMapAdd(ctx context.Context, c Caller, m apitype.GroupMapping) (*apitype.MutationResult, error)
	GroupMapRemove(ctx context.Context, c Caller, m apitype.GroupMapping) (*apitype.MutationResult, error)
	DirectoryShow(ctx context.Context, c Caller) (*apitype.Directory, error)
	DirectorySet(ctx context.Context, c Caller, req apitype.DirectorySetRequest) (*apitype.MutationResult, error)
	DirectoryClear(ctx context.Context, c Caller) (*apitype.MutationResult, error)
	TokenRevoke(ctx context.Context, c Caller, req apitype.TokenRevokeRequest) (*apitype.MutationResult, error)
	DirectoryTest(ctx context.Context, c Caller, req apitype.DirectoryTestRequest) (*apitype.DirectoryTestResult, error)
	TokenCheck(ctx context.Context, c Caller, req apitype.TokenCheckRequest) (*apitype.TokenCheckResult, error)

	// AuditRefusal records a refused request (not an allowed caller, or a
	// browser-originated request). It must not block for long.
	AuditRefusal(ctx context.Context, c Caller, method, path, reason string)
}

// Options configure the handler and the server.
type Options struct {
	Backend Backend
	Logger  hclog.Logger // default: null logger
	// AdminGroup names the group whose members are allowed; default
	// DefaultAdminGroup. It is looked up per connection, so a group created
	// after start takes effect.
	AdminGroup string
	// AllowUID is the daemon's own uid (root is always allowed).
	AllowUID int
	// ReadTimeout bounds reading a request, headers included: a client that
	// connects and sends nothing is dropped after it. Default 10 s.
	ReadTimeout time.Duration
	// IdleTimeout bounds keep-alive idling between requests. Default 60 s.
	IdleTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.AdminGroup == "" {
		o.AdminGroup = DefaultAdminGroup
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	return o
}

// handlerFunc is one endpoint: decode what it needs from r, call the
// backend, return the response value or an error.
type handlerFunc func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error)

type route struct {
	method string
	path   string // http.ServeMux pattern path
	op     string // Backend method name, for docs and the completeness test
	h      handlerFunc
}

// routes is THE route table, sorted by path then method.
var routes = []route{
	{"GET", "/v1/audit", "AuditList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		req, err := auditQuery(r)
		if err != nil {
			return nil, err
		}
		return b.AuditList(ctx, c, req)
	}},
	{"POST", "/v1/audit/verify", "AuditVerify", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.AuditVerifyRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if err := req.Validate(); err != nil {
			return nil, err
		}
		return b.AuditVerify(ctx, c, req)
	}},
	{"GET", "/v1/cameras", "CameraList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.CameraList(ctx, c)
	}},
	{"POST", "/v1/cameras", "CameraAdd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.CameraAddRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.CameraAdd(ctx, c, req)
	}},
	{"POST", "/v1/cameras/adopt", "CameraAdopt", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.CameraAdoptRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.CameraAdopt(ctx, c, req)
	}},
	{"DELETE", "/v1/cameras/{name}", "CameraRemove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.CameraRemove(ctx, c, r.PathValue("name"))
	}},
	{"GET", "/v1/cameras/{name}", "CameraShow", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.CameraShow(ctx, c, r.PathValue("name"))
	}},
	{"PATCH", "/v1/cameras/{name}", "CameraSet", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.CameraSetRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if err := samePathName(&req.Name, r.PathValue("name")); err != nil {
			return nil, err
		}
		return b.CameraSet(ctx, c, req)
	}},
	{"POST", "/v1/cameras/{name}/move", "CameraMove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.CameraMoveRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if err := samePathName(&req.Name, r.PathValue("name")); err != nil {
			return nil, err
		}
		return b.CameraMove(ctx, c, req)
	}},
	{"DELETE", "/v1/directory", "DirectoryClear", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.DirectoryClear(ctx, c)
	}},
	{"GET", "/v1/directory", "DirectoryShow", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.DirectoryShow(ctx, c)
	}},
	{"PUT", "/v1/directory", "DirectorySet", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.DirectorySetRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.DirectorySet(ctx, c, req)
	}},
	{"POST", "/v1/directory/test", "DirectoryTest", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.DirectoryTestRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.DirectoryTest(ctx, c, req)
	}},
	{"POST", "/v1/discover", "Discover", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.DiscoverRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if req.TimeoutMS < 0 {
			return nil, apitype.Errorf(apitype.CodeInvalid, "timeout_ms must not be negative")
		}
		return b.Discover(ctx, c, req)
	}},
	{"GET", "/v1/grants", "Grants", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.Grants(ctx, c, r.URL.Query().Get("subject"))
	}},
	{"POST", "/v1/grants", "Grant", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.Grant
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.Grant(ctx, c, req)
	}},
	{"POST", "/v1/grants/revoke", "Revoke", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.Grant
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.Revoke(ctx, c, req)
	}},
	{"GET", "/v1/groupmaps", "GroupMapList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.GroupMapList(ctx, c)
	}},
	{"POST", "/v1/groupmaps", "GroupMapAdd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.GroupMapping
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.GroupMapAdd(ctx, c, req)
	}},
	{"POST", "/v1/groupmaps/remove", "GroupMapRemove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.GroupMapping
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.GroupMapRemove(ctx, c, req)
	}},
	{"GET", "/v1/groups", "GroupList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.GroupList(ctx, c)
	}},
	{"POST", "/v1/groups", "GroupAdd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req struct {
			Name string `json:"name"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.GroupAdd(ctx, c, req.Name)
	}},
	{"DELETE", "/v1/groups/{name}", "GroupRemove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.GroupRemove(ctx, c, r.PathValue("name"))
	}},
	{"POST", "/v1/groups/{name}/members", "GroupMemberAdd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.GroupMemberRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if err := samePathName(&req.Group, r.PathValue("name")); err != nil {
			return nil, err
		}
		return b.GroupMemberAdd(ctx, c, req)
	}},
	{"DELETE", "/v1/groups/{name}/members/{user}", "GroupMemberRemove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.GroupMemberRemove(ctx, c, apitype.GroupMemberRequest{Group: r.PathValue("name"), User: r.PathValue("user")})
	}},
	{"GET", "/v1/issuers", "IssuerList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.IssuerList(ctx, c)
	}},
	{"POST", "/v1/issuers", "IssuerAdd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.IssuerAddRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.IssuerAdd(ctx, c, req)
	}},
	{"DELETE", "/v1/issuers/{name}", "IssuerRemove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.IssuerRemove(ctx, c, r.PathValue("name"))
	}},
	{"POST", "/v1/key/rotate", "KeyRotate", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.KeyRotate(ctx, c)
	}},
	{"GET", "/v1/sessions", "SessionList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.SessionList(ctx, c)
	}},
	{"DELETE", "/v1/sessions/{id}", "SessionKick", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.SessionKick(ctx, c, r.PathValue("id"))
	}},
	{"GET", "/v1/status", "Status", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.Status(ctx, c)
	}},
	{"GET", "/v1/streams", "StreamList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.StreamList(ctx, c)
	}},
	{"POST", "/v1/tokens/check", "TokenCheck", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.TokenCheckRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.TokenCheck(ctx, c, req)
	}},
	{"POST", "/v1/tokens/revoke", "TokenRevoke", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.TokenRevokeRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.TokenRevoke(ctx, c, req)
	}},
	{"GET", "/v1/users", "UserList", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.UserList(ctx, c)
	}},
	{"POST", "/v1/users", "UserAdd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.UserAddRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return b.UserAdd(ctx, c, req)
	}},
	{"DELETE", "/v1/users/{name}", "UserRemove", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.UserRemove(ctx, c, r.PathValue("name"))
	}},
	{"POST", "/v1/users/{name}/disable", "UserDisable", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.UserDisable(ctx, c, r.PathValue("name"))
	}},
	{"POST", "/v1/users/{name}/enable", "UserEnable", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		return b.UserEnable(ctx, c, r.PathValue("name"))
	}},
	{"PUT", "/v1/users/{name}/password", "UserPasswd", func(ctx context.Context, b Backend, c Caller, r *http.Request) (any, error) {
		var req apitype.UserPasswdRequest
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if err := samePathName(&req.Name, r.PathValue("name")); err != nil {
			return nil, err
		}
		return b.UserPasswd(ctx, c, req)
	}},
}

// samePathName fills *body from the path, refusing a body that names
// something else.
func samePathName(body *string, path string) error {
	if *body != "" && *body != path {
		return apitype.Errorf(apitype.CodeInvalid, "the name in the body (%q) differs from the one in the path (%q)", *body, path)
	}
	*body = path
	return nil
}

// decodeBody reads exactly one JSON object into v, rejecting unknown fields
// and bodies over the cap. An empty body decodes as {}.
func decodeBody(r *http.Request, v any) error {
	if r.ContentLength > apitype.MaxBodyBytes {
		return tooLarge()
	}
	body, err := io.ReadAll(r.Body) // r.Body is already capped by MaxBytesReader
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return apitype.Errorf(apitype.CodeInvalid, "reading the request body: %v", err)
	}
	return decodeJSON(body, v)
}

func tooLarge() error {
	return apitype.Errorf(apitype.CodeTooLarge, "request body is larger than %d bytes", apitype.MaxBodyBytes)
}

// decodeJSON is the one JSON request parser (fuzzed).
func decodeJSON(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apitype.Errorf(apitype.CodeInvalid, "invalid JSON request: %v", err)
	}
	if dec.More() {
		return apitype.Errorf(apitype.CodeInvalid, "invalid JSON request: more than one value in the body")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return apitype.Errorf(apitype.CodeInvalid, "invalid JSON request: trailing data after the object")
	}
	return nil
}

func auditQuery(r *http.Request) (apitype.AuditListRequest, error) {
	var req apitype.AuditListRequest
	q := r.URL.Query()
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return req, apitype.Errorf(apitype.CodeInvalid, "since must be an RFC 3339 time such as 2026-11-25T09:00:00Z")
		}
		req.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return req, apitype.Errorf(apitype.CodeInvalid, "limit must be a non-negative integer")
		}
		req.Limit = n
	}
	return req, nil
}

type handler struct {
	opts    Options
	mux     *http.ServeMux
	methods []string // every method used in the table, for 405 detection
}

// NewHandler returns the admin API handler. Requests must reach it through
// Serve (or a server using the same ConnContext) to carry peer credentials;
// requests without them are refused.
func NewHandler(opts Options) http.Handler {
	opts = opts.withDefaults()
	h := &handler{opts: opts, mux: http.NewServeMux()}
	seen := map[string]bool{}
	for _, rt := range routes {
		rt := rt
		h.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			h.serveRoute(w, r, rt)
		})
		if !seen[rt.method] {
			seen[rt.method] = true
			h.methods = append(h.methods, rt.method)
		}
	}
	h.mux.HandleFunc("/", h.noRoute)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Refusals come before routing, so nothing is learned about routes
	// without being allowed.
	res, _ := r.Context().Value(callerKey{}).(*callerResult)
	if res == nil || res.err != nil {
		reason := "peer credentials unavailable"
		if res != nil {
			reason = "peer credentials unavailable: " + res.err.Error()
		}
		h.refuse(w, r, Caller{UID: -1, GID: -1}, reason)
		return
	}
	c := res.caller
	if ok, reason := allowed(c, h.opts.AllowUID, lookupGroupID(h.opts.AdminGroup)); !ok {
		h.refuse(w, r, c, reason)
		return
	}
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		h.refuse(w, r, c, "request carries an Origin or Referer header (browser)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, apitype.MaxBodyBytes)
	h.mux.ServeHTTP(w, r)
}

func (h *handler) refuse(w http.ResponseWriter, r *http.Request, c Caller, reason string) {
	// Not logged here: AuditRefusal logs and audits it, coalesced per
	// caller, so that a flood of refusals cannot fill the disk.
	h.opts.Backend.AuditRefusal(r.Context(), c, r.Method, r.URL.Path, reason)
	h.writeError(w, r, apitype.Errorf(apitype.CodeForbidden,
		"permission denied: the admin API is for root and members of the %s group", h.opts.AdminGroup))
}

func (h *handler) noRoute(w http.ResponseWriter, r *http.Request) {
	for _, m := range h.methods {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := h.mux.Handler(r2); pattern != "/" && pattern != "" {
			h.writeError(w, r, apitype.Errorf(apitype.CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
			return
		}
	}
	h.writeError(w, r, apitype.Errorf(apitype.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

func (h *handler) serveRoute(w http.ResponseWriter, r *http.Request, rt route) {
	c, _ := CallerFromContext(r.Context())
	resp, err := rt.h(r.Context(), h.opts.Backend, c, r)
	if err == nil && isNil(resp) {
		err = errors.New("backend returned neither a result nor an error")
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.opts.Logger.Debug("admin API request", "caller", c.String(), "method", r.Method, "path", r.URL.Path, "op", rt.op)
	writeJSON(w, http.StatusOK, sanitize(resp))
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// writeError is the one place errors are written.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apitype.Error
	if !errors.As(err, &ae) {
		// Never send internals (paths, store errors, maybe secrets) to the
		// caller; the log has them.
		h.opts.Logger.Error("admin API internal error", "method", r.Method, "path", r.URL.Path, "error", err)
		ae = apitype.Errorf(apitype.CodeInternal, "internal error in camwardend; see its log (journalctl -u camwardend)")
	}
	status := apitype.HTTPStatus(ae.Code)
	if status == http.StatusRequestEntityTooLarge {
		// The rest of an oversized body is not read: do not reuse the conn.
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, status, apitype.ErrorBody{Error: ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(fmt.Sprintf(`{"error":{"code":%q,"message":"encoding the response failed"}}`, apitype.CodeInternal))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
