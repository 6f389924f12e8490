// Package apitype holds the request and response types and the error codes
// of camwardend's admin API. It is shared by the server (daemon/api), the
// typed client (daemon/client) and the CLI, and imports only the standard
// library.
//
// Secrets are write-only: request types may carry a Password, response types
// never carry a password, a sealed blob or a URL with credentials.
package apitype

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error codes: the "code" of the one error shape
// {"error": {"code": "...", "message": "..."}}.
const (
	CodeInvalid          = "invalid"            // 400: the request is malformed or a value is not acceptable
	CodeUnauthorized     = "unauthorized"       // 401: credentials are wrong (e.g. a camera refused ours)
	CodeForbidden        = "forbidden"          // 403: the caller may not use the admin API
	CodeNotFound         = "not_found"          // 404: no such camera/user/group/session/route
	CodeMethodNotAllowed = "method_not_allowed" // 405: the route exists for another method
	CodeConflict         = "conflict"           // 409: it already exists, or it is in use
	CodeTooLarge         = "too_large"          // 413: the request body is over MaxBodyBytes
	CodeInternal         = "internal"           // 500: a bug or an I/O failure; details are in the daemon log
	CodeUnavailable      = "unavailable"        // 503: a dependency (camera, store) cannot be reached now
)

// MaxBodyBytes caps every request body.
const MaxBodyBytes = 1 << 20

// Error is a typed API failure. The daemon's Backend returns *Error for
// failures the caller should see; the client returns *Error whenever the
// daemon answered with an error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the JSON envelope every error response carries.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// HTTPStatus maps an error code to its HTTP status; unknown codes are 500.
func HTTPStatus(code string) int {
	switch code {
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeConflict:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Status is the answer of GET /v1/status.
type Status struct {
	Version             string    `json:"version"`
	PID                 int       `json:"pid"`
	StartedAt           time.Time `json:"started_at"`
	RTSPAddr            string    `json:"rtsp_addr"`
	RTSPSAddr           string    `json:"rtsps_addr,omitempty"`        // "" = no RTSPS
	RTSPSFingerprint    string    `json:"rtsps_fingerprint,omitempty"` // SHA-256 of the RTSPS certificate
	RTSPSCertGenerated  bool      `json:"rtsps_cert_generated,omitempty"`
	StateDir            string    `json:"state_dir,omitempty"`
	SchemaVersion       int       `json:"schema_version"`
	DiscoveryInterfaces []string  `json:"discovery_interfaces,omitempty"` // empty: all, ["none"]: off
	Cameras             int       `json:"cameras"`
	Streams             int       `json:"streams"`
	StreamsUp           int       `json:"streams_up"`
	Readers             int       `json:"readers"`
	Sessions            int       `json:"sessions"`
	Users               int       `json:"users"`
	Groups              int       `json:"groups"`
	KeyID               string    `json:"key_id,omitempty"` // identifies the sealing key, never the key
	// Damaged lists records whose sealed value no longer opens (a flipped
	// byte, a blob copied from another record): set it again.
	Damaged []DamagedRecord `json:"damaged,omitempty"`
}

// DamagedRecord names a record whose sealed value does not open.
type DamagedRecord struct {
	Kind   string `json:"kind"` // camera, user, directory
	Name   string `json:"name"`
	Field  string `json:"field"` // password, digest, bind_password
	Reason string `json:"reason"`
}

// DiscoverRequest asks for an ONVIF WS-Discovery round. Targets are
// HOST[:PORT] devices to probe directly (unicast) as well.
type DiscoverRequest struct {
	TimeoutMS int      `json:"timeout_ms,omitempty"`
	Targets   []string `json:"targets,omitempty"`
}

// Device is one ONVIF device seen by discovery.
type Device struct {
	URN        string   `json:"urn"`
	Name       string   `json:"name,omitempty"`
	Hardware   string   `json:"hardware,omitempty"`
	Model      string   `json:"model,omitempty"`
	XAddrs     []string `json:"xaddrs"`
	Addresses  []string `json:"addresses,omitempty"`  // source addresses the answers came from
	Interfaces []string `json:"interfaces,omitempty"` // interfaces the answers arrived on
	AdoptedAs  string   `json:"adopted_as,omitempty"` // camera name when already adopted
	// DeviceXAddr is the address camera adopt --device uses, the one to
	// confirm; empty when the sightings disagree (Ambiguous says why).
	DeviceXAddr string `json:"device_xaddr,omitempty"`
	Ambiguous   string `json:"ambiguous,omitempty"`
}

// DiscoverResult is the answer of POST /v1/discover.
type DiscoverResult struct {
	Devices []Device `json:"devices"`
}

// ONVIFIdentity describes the ONVIF device a camera was adopted from.
type ONVIFIdentity struct {
	URN          string `json:"urn,omitempty"`
	XAddr        string `json:"xaddr,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Firmware     string `json:"firmware,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Hardware     string `json:"hardware,omitempty"`
	// CertSHA256 is the pinned TLS certificate of a camera adopted over
	// HTTPS (hex SHA-256 of the leaf); only such a camera is followed to a
	// new address without an admin's confirmation.
	CertSHA256 string `json:"cert_sha256,omitempty"`
}

// PendingMove is an unconfirmed sighting of an adopted camera's URN at
// another address. Nothing has been sent there; Hint says how to confirm.
type PendingMove struct {
	XAddr  string    `json:"xaddr"`
	Addr   string    `json:"addr"` // HOST:PORT of XAddr, what camera move --to takes
	SeenAt time.Time `json:"seen_at,omitzero"`
	Source string    `json:"source,omitempty"` // hello, probe, discover
	Reason string    `json:"reason,omitempty"` // why it was not followed automatically
	// Also are further addresses (HOST:PORT) announced for the camera's URN
	// meanwhile: only one of them, if any, is the camera.
	Also []string `json:"also,omitempty"`
	// Truncated: more addresses were announced than Also lists; verify the
	// camera's address out of band.
	Truncated bool   `json:"truncated,omitempty"`
	Hint      string `json:"hint"`
}

// Stream is one configured stream of a camera. URL never holds credentials.
type Stream struct {
	Name      string     `json:"name"`
	Source    SourceKind `json:"source"` // rtsp, exec, rtmp, http
	URL       string     `json:"url,omitempty"`
	Exec      string     `json:"exec,omitempty"` // an exec source's command, as set
	Transport string     `json:"transport"`      // auto, tcp or udp
	OnDemand  bool       `json:"on_demand"`
}

// Camera is a configured camera. It says whether a password is stored but
// never carries it.
type Camera struct {
	Name        string         `json:"name"`
	User        string         `json:"user,omitempty"`
	HasPassword bool           `json:"has_password"`
	AllowBasic  bool           `json:"allow_basic,omitempty"` // RTSP Basic answered (password in clear)
	ONVIF       *ONVIFIdentity `json:"onvif,omitempty"`
	PendingMove *PendingMove   `json:"pending_move,omitempty"`
	Streams     []Stream       `json:"streams"`
	Created     time.Time      `json:"created,omitzero"`
	Changed     time.Time      `json:"changed,omitzero"`
	// Recorder, Channel and ChannelName: a network recorder's channel
	// (the recorder's credentials are shared by its channels).
	Recorder    string `json:"recorder,omitempty"`
	Channel     int    `json:"channel,omitempty"`
	ChannelName string `json:"channel_name,omitempty"`
}

// CameraList is the answer of GET /v1/cameras.
type CameraList struct {
	Cameras []Camera `json:"cameras"`
}

// CameraAddRequest adds a camera by URL, or by a command that publishes
// it (Exec; exactly one of URL and Exec). URL must not hold user:pass.
type CameraAddRequest struct {
	Name      string `json:"name"`
	URL       string `json:"url,omitempty"`
	Exec      string `json:"exec,omitempty"` // see SplitCommand; must hold OutputPlaceholder
	User      string `json:"user,omitempty"`
	Password  string `json:"password,omitempty"`
	Stream    string `json:"stream,omitempty"`    // default "main"
	Transport string `json:"transport,omitempty"` // auto (default), tcp, udp
	OnDemand  bool   `json:"on_demand,omitempty"`
	// AllowBasic lets the daemon answer the camera's RTSP Basic challenge,
	// which sends the password in clear; without it only Digest is used.
	AllowBasic bool `json:"allow_basic,omitempty"`
}

// CameraAdoptRequest adopts an ONVIF device, by discovered URN or by XAddr.
// Exactly one of DeviceURN and XAddr is set.
type CameraAdoptRequest struct {
	Name      string `json:"name"`
	DeviceURN string `json:"device_urn,omitempty"`
	XAddr     string `json:"xaddr,omitempty"`
	User      string `json:"user"`
	Password  string `json:"password"`
	// Channels selects a recorder's channels ("1,3-5"); empty: all.
	Channels string `json:"channels,omitempty"`
}

// CameraSetRequest changes a camera. Nil fields are left as they are.
// Stream names the stream URL/Transport/OnDemand apply to; empty means the
// camera's only stream (an error when it has several).
type CameraSetRequest struct {
	Name      string  `json:"name"`
	Stream    string  `json:"stream,omitempty"`
	URL       *string `json:"url,omitempty"`
	Exec      *string `json:"exec,omitempty"` // replaces URL (and vice versa)
	Transport *string `json:"transport,omitempty"`
	OnDemand  *bool   `json:"on_demand,omitempty"`
	User      *string `json:"user,omitempty"`
	Password  *string `json:"password,omitempty"`
	// AllowBasic (camera-wide) allows or refuses RTSP Basic.
	AllowBasic *bool `json:"allow_basic,omitempty"`
}

// CameraMoveRequest confirms that an adopted camera now lives at To: a
// device service URL, or HOST[:PORT] (the stored scheme and path are kept;
// a pending move's address is taken whole). The daemon re-reads the
// camera's stream addresses there with its stored credentials.
type CameraMoveRequest struct {
	Name string `json:"name"`
	To   string `json:"to"`
}

// StreamStatus is the live state of one camera stream.
type StreamStatus struct {
	Camera      string    `json:"camera"`
	Stream      string    `json:"stream"`
	Path        string    `json:"path"`  // RTSP path readers use: camera/stream
	State       string    `json:"state"` // idle, connecting, live, backoff
	Codec       string    `json:"codec,omitempty"`
	Width       int       `json:"width,omitempty"`
	Height      int       `json:"height,omitempty"`
	BitrateKbps float64   `json:"bitrate_kbps"`
	FPS         float64   `json:"fps"`
	PacketsLost uint64    `json:"packets_lost"`
	Readers     int       `json:"readers"`
	Published   bool      `json:"published,omitempty"`  // a publisher, not a camera, feeds it
	Source      string    `json:"source,omitempty"`     // the camera stream's source kind (rtsp, exec, rtmp, http)
	SourcePID   int       `json:"source_pid,omitempty"` // an exec or rtmp source's running command
	Since       time.Time `json:"since,omitzero"`       // when State was entered
	LastError   string    `json:"last_error,omitempty"`
	// PendingMove is the camera's unconfirmed move, if any (see Camera).
	PendingMove *PendingMove `json:"pending_move,omitempty"`
	// Tracks are the medias of the camera's last description, in its order.
	Tracks []Track `json:"tracks,omitempty"`
}

// Track is one media of a camera stream.
type Track struct {
	Media       string  `json:"media"` // video, audio, application
	Codec       string  `json:"codec"` // H264, H265, MJPEG, AAC, AAC-LATM, PCMU, PCMA, G722, G726, Opus, L16, ONVIF metadata, ...
	RTPMap      string  `json:"rtpmap,omitempty"`
	ClockRate   int     `json:"clock_rate,omitempty"`
	SampleRate  int     `json:"sample_rate,omitempty"`
	Channels    int     `json:"channels,omitempty"`
	Width       int     `json:"width,omitempty"`
	Height      int     `json:"height,omitempty"`
	FPS         float64 `json:"fps,omitempty"`          // measured
	SPSFPS      float64 `json:"declared_fps,omitempty"` // what the H.264/H.265 SPS states
	BitrateKbps float64 `json:"bitrate_kbps"`
	// BackChannel: audio towards the camera; listed, not restreamed.
	BackChannel bool `json:"back_channel,omitempty"`
	// Repacketised: the camera's packets exceed our packet size and are split again.
	Repacketised bool   `json:"repacketised,omitempty"`
	Dropped      uint64 `json:"dropped_packets,omitempty"` // oversized (not splittable) or not valid for the codec
	Problem      string `json:"problem,omitempty"`
}

// StreamList is the answer of GET /v1/streams.
type StreamList struct {
	Streams []StreamStatus `json:"streams"`
}

// User is an RTSP user. No password hash is ever returned.
type User struct {
	Name     string    `json:"name"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created,omitzero"`
	Changed  time.Time `json:"changed,omitzero"`
	Groups   []string  `json:"groups"`
}

// UserList is the answer of GET /v1/users.
type UserList struct {
	Users []User `json:"users"`
}

// UserAddRequest creates a user.
type UserAddRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// UserPasswdRequest replaces a user's password.
type UserPasswdRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Group is a named set of users.
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// GroupList is the answer of GET /v1/groups.
type GroupList struct {
	Groups []Group `json:"groups"`
}

// GroupMemberRequest adds a user to or removes a user from a group.
type GroupMemberRequest struct {
	Group string `json:"group"`
	User  string `json:"user"`
}

// Grant allows Subject (a user, or @group) to do Action (read, publish) on
// paths matching Pattern (camera/stream, camera/* or *).
type Grant struct {
	Subject string `json:"subject"`
	Action  string `json:"action"`
	Pattern string `json:"pattern"`
}

// GrantList is the answer of GET /v1/grants.
type GrantList struct {
	Grants []Grant `json:"grants"`
}

// Session is one live RTSP session.
type Session struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Action    string    `json:"action"` // read or publish
	Path      string    `json:"path"`   // camera/stream
	Remote    string    `json:"remote"` // reader's address
	Transport string    `json:"transport,omitempty"`
	Started   time.Time `json:"started"`
	BytesSent uint64    `json:"bytes_sent"`
}

// SessionList is the answer of GET /v1/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// AuditVerifyRequest optionally carries audit heads the daemon mirrored to
// its journal: the database must hold each of them, or it was rolled back
// to an older copy. The newest head alone is not enough (a rolled-back
// database grows past it again); the last head of every daemon run is
// (each entry's MAC covers the entries before it).
type AuditVerifyRequest struct {
	Journal []AuditHead `json:"journal,omitempty"`
}

// MaxJournalHeads bounds an AuditVerifyRequest (at most 131 bytes of JSON a
// head, so the body stays within MaxBodyBytes).
const MaxJournalHeads = 4096

// Validate checks the number and the shape of the heads.
func (r AuditVerifyRequest) Validate() error {
	if len(r.Journal) > MaxJournalHeads {
		return Errorf(CodeInvalid, "at most %d journal heads", MaxJournalHeads)
	}
	for _, h := range r.Journal {
		if err := h.Validate(); err != nil {
			return Errorf(CodeInvalid, "%v", err)
		}
	}
	return nil
}

// Validate checks the shape of a mirrored head: hash 64 and key id 16
// lowercase hex digits.
func (h AuditHead) Validate() error {
	if !lowerHex(h.Hash, 64) || !lowerHex(h.KeyID, 16) {
		return errors.New("an audit head is SEQ:HASH:KEYID: a number, 64 and 16 lowercase hex digits")
	}
	return nil
}

func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// AuditHead is one mirrored head: the chain's last entry and the id of the
// audit key that MACed it (an id, never the key).
type AuditHead struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	KeyID string `json:"key_id"`
}

// AuditListRequest filters the audit log. A zero Since means from the start;
// Limit 0 means the daemon's default.
type AuditListRequest struct {
	Since time.Time `json:"since,omitzero"`
	Limit int       `json:"limit,omitempty"`
}

// AuditEntry is one record of the hash-chained audit log.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // e.g. "uid=0 exe=camwarden"
	Action string    `json:"action"` // e.g. "camera.add", "api.refused"
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Hash   string    `json:"hash,omitempty"`
}

// AuditList is the answer of GET /v1/audit.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
}

// AuditVerify is the result of checking the audit chain.
type AuditVerify struct {
	OK       bool   `json:"ok"`
	Entries  int    `json:"entries"`
	FirstBad uint64 `json:"first_bad,omitempty"` // seq of the first entry that fails, when !OK
	Message  string `json:"message,omitempty"`
	// JournalSeq is the newest journal head the database was checked
	// against (0: none given); JournalHeads how many heads it was checked
	// against.
	JournalSeq   uint64 `json:"journal_seq,omitempty"`
	JournalHeads int    `json:"journal_heads,omitempty"`
	// Rekeys are the chain's re-keyings (audit.rekey entries), oldest
	// first, reported even when OK: the entries before one are only as
	// trustworthy as the file was when it happened.
	Rekeys []AuditRekey `json:"rekeys,omitempty"`
}

// AuditRekey is one re-keying of the audit chain.
type AuditRekey struct {
	Seq            uint64    `json:"seq"`                       // the audit.rekey entry
	Time           time.Time `json:"time"`                      // when it happened
	Entries        uint64    `json:"entries"`                   // entries before it that were re-keyed
	From           string    `json:"from,omitempty"`            // "unkeyed" or "master key <id>"
	Schema         uint64    `json:"schema,omitempty"`          // the database's schema then
	UnverifiedFrom uint64    `json:"unverified_from,omitempty"` // first entry it could not vouch for (0: all verified)
}

// KeyRotate is the result of re-sealing every secret under a new key.
type KeyRotate struct {
	KeyID    string `json:"key_id"`   // identifies the new key, never the key
	Resealed int    `json:"resealed"` // secrets re-sealed
}

// MutationResult says what a change did.
type MutationResult struct {
	Changed          bool    `json:"changed"`
	ClosedSessions   int     `json:"closed_sessions"`
	RestartedStreams int     `json:"restarted_streams,omitempty"`
	Camera           *Camera `json:"camera,omitempty"` // the camera after add/adopt/set
	// Cameras are the channel cameras a recorder's adoption created.
	Cameras []Camera `json:"cameras,omitempty"`
	Message string   `json:"message,omitempty"`
}
