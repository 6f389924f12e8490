package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
)

// Public record types. They hold no bbolt types and no sealed blobs.

// Stream is one stream of a camera. URL never holds credentials. Exec, when
// set, is the command (as the admin wrote it) that publishes the stream; the
// source kind is derived from Exec and the URL's scheme (apitype.StreamSource).
type Stream struct {
	Name      string
	URL       string
	Transport string
	OnDemand  bool
	Exec      string // schema 5
}

// ONVIFIdentity is what an adopted ONVIF device reported. CertSHA256 is the
// hex SHA-256 of the TLS leaf certificate the device presented when it was
// adopted (or last moved) over HTTPS; "" for plain HTTP. It is the only
// proof of identity that lets the daemon follow the camera to a new address
// by itself.
type ONVIFIdentity struct {
	URN, XAddr, Manufacturer, Model, Firmware, Serial, HardwareID string
	CertSHA256                                                    string
}

// PendingMove is an unconfirmed sighting of an adopted camera's URN at
// another device address. Discovery messages are unauthenticated, so it is
// only a hint: nothing is sent to XAddr until an admin confirms the move.
type PendingMove struct {
	XAddr  string    // the device service address seen
	SeenAt time.Time // first sighting at this address
	Source string    // "hello", "probe", ...
	Reason string    // why it was not followed automatically
	// Others are further addresses announced for the same URN while the
	// move was pending (a spoofer and the real camera can both answer);
	// the first MaxPendingOthers, oldest first: a spoofer flooding new
	// addresses cannot push out the ones seen before its flood.
	Others []string
	// Truncated says more addresses were announced than are kept (or than
	// were recorded that minute): the list is not the whole story, so the
	// camera's address must be verified out of band.
	Truncated bool
}

// MaxPendingOthers bounds PendingMove.Others.
const MaxPendingOthers = 8

// Camera is a configured camera. Its password is sealed and only available
// through Tx.CameraPassword; HasPassword says whether one is set.
type Camera struct {
	Name        string
	Username    string
	HasPassword bool
	// AllowBasic lets the puller answer an RTSP Basic challenge (the
	// password in clear); without it only Digest is answered.
	AllowBasic  bool
	ONVIF       *ONVIFIdentity
	PendingMove *PendingMove
	Streams     []Stream
	Created     time.Time
	Changed     time.Time
	Revision    uint64 // bumped on every change of the record or its password
	// Recorder names the network recorder whose channel Channel (1-based)
	// this camera is; its credentials are the recorder's (HasPassword and
	// CameraPassword follow them). "" for a camera of its own.
	Recorder    string
	Channel     int
	ChannelName string // the recorder's own name for the channel
}

// Recorder is a network recorder (NVR/DVR) whose channels are cameras.
// Its password is sealed once, under the recorder's name, and shared by
// every channel camera; the record goes with its last channel.
type Recorder struct {
	Name        string
	Username    string
	HasPassword bool
	Created     time.Time
	Changed     time.Time
}

// User is a restream user. PasswordHash is argon2id (PHC string); the digest
// secret is sealed and only available through Tx.UserDigestSecret.
type User struct {
	Name              string
	Disabled          bool
	Created, Changed  time.Time
	CredentialVersion uint64 // bumped on password change
	PasswordHash      string
}

// Group is a named set of users; Members is sorted.
type Group struct {
	Name    string
	Members []string
}

// Grant allows Subject ("user" or "@group") to do Action ("read"|"publish")
// on Pattern ("camera/stream", "camera/*" or "*").
type Grant struct {
	Subject, Action, Pattern string
}

// AuditEntry is one record of the audit chain. PrevHash and Hash are hex
// HMAC-SHA256 under the audit key; Hash covers the canonical encoding of
// every other field.
type AuditEntry struct {
	Seq      uint64
	Time     time.Time
	UID      int
	GID      int
	PID      int
	Exe      string
	Action   string
	Target   string
	Outcome  string
	Args     map[string]string
	PrevHash string
	Hash     string
}

// AuditVerify is the result of VerifyAudit. When OK is false, FirstBad is the
// sequence number of the first entry where the chain breaks.
type AuditVerify struct {
	OK       bool
	Entries  uint64
	FirstBad uint64
	Reason   string
	// Rekeys are the chain's audit.rekey entries, oldest first: where its
	// MACs were made anew, so an OK chain is only as good as the file was
	// before each of them (reported even when OK).
	Rekeys []AuditRekey
}

// AuditRekey is an audit.rekey entry of the chain.
type AuditRekey struct {
	Seq     uint64    // the rekey entry
	Time    time.Time // when it was written
	Entries uint64    // how many entries before it were re-keyed
	From    string    // "unkeyed" (no key mark) or "master key <id>"; "" if not recorded
	Schema  uint64    // the database's schema when it was re-keyed (0: not recorded)
	// UnverifiedFrom is the first entry the re-keying could not vouch
	// for (0: the chain before it verified, as in a migration).
	UnverifiedFrom uint64
}

// PolicyData is everything the access layer needs, read in one transaction.
type PolicyData struct {
	Users  []User
	Groups []Group
	Grants []Grant
}

// Stored encodings (JSON with short, stable field names). Unknown fields are
// ignored so an older build can read records a compatible newer one wrote
// only if the schema version says so; decoding never panics on any input
// (FuzzDecodeRecords).

type streamRec struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	Transport string `json:"transport,omitempty"`
	OnDemand  bool   `json:"on_demand,omitempty"`
	Exec      string `json:"exec,omitempty"` // schema 5
}

type onvifRec struct {
	URN          string `json:"urn,omitempty"`
	XAddr        string `json:"xaddr,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Firmware     string `json:"firmware,omitempty"`
	Serial       string `json:"serial,omitempty"`
	HardwareID   string `json:"hardware_id,omitempty"`
	CertSHA256   string `json:"cert_sha256,omitempty"` // schema 3
}

type pendingMoveRec struct {
	XAddr     string    `json:"xaddr"`
	SeenAt    time.Time `json:"seen_at"`
	Source    string    `json:"source,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Others    []string  `json:"others,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
}

type cameraRec struct {
	Name     string      `json:"name"`
	Username string      `json:"username,omitempty"`
	Password []byte      `json:"password,omitempty"` // sealed (camera, name, "password")
	ONVIF    *onvifRec   `json:"onvif,omitempty"`
	Streams  []streamRec `json:"streams"`
	Created  time.Time   `json:"created"`
	Changed  time.Time   `json:"changed"`
	Revision uint64      `json:"revision"`
	// Schema 3.
	AllowBasic  bool            `json:"allow_basic,omitempty"`
	PendingMove *pendingMoveRec `json:"pending_move,omitempty"`
	// Schema 6.
	Recorder    string `json:"recorder,omitempty"`
	Channel     int    `json:"channel,omitempty"`
	ChannelName string `json:"channel_name,omitempty"`
}

type recorderRec struct {
	Name     string    `json:"name"`
	Username string    `json:"username,omitempty"`
	Password []byte    `json:"password,omitempty"` // sealed (recorder, name, "password")
	Created  time.Time `json:"created"`
	Changed  time.Time `json:"changed"`
}

type userRec struct {
	Name              string    `json:"name"`
	Disabled          bool      `json:"disabled,omitempty"`
	Created           time.Time `json:"created"`
	Changed           time.Time `json:"changed"`
	CredentialVersion uint64    `json:"credential_version"`
	PasswordHash      string    `json:"password_hash"`
	Digest            []byte    `json:"digest,omitempty"` // sealed (user, name, "digest")
}

type groupRec struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

type grantRec struct {
	Subject string `json:"subject"`
	Action  string `json:"action"`
	Pattern string `json:"pattern"`
}

type auditRec struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	UID      int               `json:"uid"`
	GID      int               `json:"gid"`
	PID      int               `json:"pid"`
	Exe      string            `json:"exe,omitempty"`
	Action   string            `json:"action"`
	Target   string            `json:"target,omitempty"`
	Outcome  string            `json:"outcome"`
	Args     map[string]string `json:"args,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	MAC  string `json:"mac,omitempty"` // headMAC; absent before the chain was keyed
}

// decode unmarshals a stored value (always copying out of the bbolt page) and
// checks that the record names itself as its key says.
func decode(kind string, key, val []byte, v any) error {
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("%w: %s record %q: %v", ErrCorrupt, kind, textutil.Shorten(string(key), 64), err)
	}
	return nil
}

func decodeCamera(key, val []byte) (cameraRec, error) {
	var r cameraRec
	if err := decode(kindCamera, key, val, &r); err != nil {
		return r, err
	}
	if r.Name != string(key) {
		return r, fmt.Errorf("%w: camera record under key %q names %q", ErrCorrupt, textutil.Shorten(string(key), 64), textutil.Shorten(r.Name, 64))
	}
	return r, nil
}

func decodeRecorder(key, val []byte) (recorderRec, error) {
	var r recorderRec
	if err := decode(kindRecorder, key, val, &r); err != nil {
		return r, err
	}
	if r.Name != string(key) {
		return r, fmt.Errorf("%w: recorder record under key %q names %q", ErrCorrupt, textutil.Shorten(string(key), 64), textutil.Shorten(r.Name, 64))
	}
	return r, nil
}

func decodeUser(key, val []byte) (userRec, error) {
	var r userRec
	if err := decode(kindUser, key, val, &r); err != nil {
		return r, err
	}
	if r.Name != string(key) {
		return r, fmt.Errorf("%w: user record under key %q names %q", ErrCorrupt, textutil.Shorten(string(key), 64), textutil.Shorten(r.Name, 64))
	}
	return r, nil
}

func decodeGroup(key, val []byte) (groupRec, error) {
	var r groupRec
	if err := decode("group", key, val, &r); err != nil {
		return r, err
	}
	if r.Name != string(key) {
		return r, fmt.Errorf("%w: group record under key %q names %q", ErrCorrupt, textutil.Shorten(string(key), 64), textutil.Shorten(r.Name, 64))
	}
	return r, nil
}

func decodeGrant(key, val []byte) (grantRec, error) {
	var r grantRec
	if err := decode("grant", key, val, &r); err != nil {
		return r, err
	}
	if string(grantKey(Grant(r))) != string(key) {
		return r, fmt.Errorf("%w: grant record does not match its key", ErrCorrupt)
	}
	return r, nil
}

func decodeAudit(key, val []byte) (auditRec, error) {
	var r auditRec
	if err := json.Unmarshal(val, &r); err != nil {
		return r, fmt.Errorf("%w: audit entry %x: %v", ErrCorrupt, key, err)
	}
	return r, nil
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// grantKey is the length-prefixed (subject, action, pattern): unambiguous for
// any bytes in the fields.
func grantKey(g Grant) []byte {
	var k []byte
	for _, s := range []string{g.Subject, g.Action, g.Pattern} {
		k = binary.AppendUvarint(k, uint64(len(s)))
		k = append(k, s...)
	}
	return k
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func (r cameraRec) public() Camera {
	c := Camera{
		Name: r.Name, Username: r.Username, HasPassword: len(r.Password) > 0, AllowBasic: r.AllowBasic,
		Created: r.Created, Changed: r.Changed, Revision: r.Revision,
		Recorder: r.Recorder, Channel: r.Channel, ChannelName: r.ChannelName,
	}
	if r.ONVIF != nil {
		o := ONVIFIdentity(*r.ONVIF)
		c.ONVIF = &o
	}
	if r.PendingMove != nil {
		m := PendingMove(*r.PendingMove)
		m.Others = append([]string(nil), m.Others...)
		c.PendingMove = &m
	}
	for _, s := range r.Streams {
		c.Streams = append(c.Streams, Stream(s))
	}
	return c
}

// applyPublic copies the editable fields of c into r.
func (r *cameraRec) applyPublic(c Camera) {
	r.Username = c.Username
	r.AllowBasic = c.AllowBasic
	r.ONVIF = nil
	if c.ONVIF != nil {
		o := onvifRec(*c.ONVIF)
		r.ONVIF = &o
	}
	r.PendingMove = nil
	if c.PendingMove != nil {
		m := pendingMoveRec(*c.PendingMove)
		r.PendingMove = &m
	}
	r.Streams = make([]streamRec, 0, len(c.Streams))
	for _, s := range c.Streams {
		r.Streams = append(r.Streams, streamRec(s))
	}
}

func (r userRec) public() User {
	return User{Name: r.Name, Disabled: r.Disabled, Created: r.Created, Changed: r.Changed,
		CredentialVersion: r.CredentialVersion, PasswordHash: r.PasswordHash}
}

func (r groupRec) public() Group {
	return Group{Name: r.Name, Members: append([]string{}, r.Members...)}
}

func (r auditRec) public() AuditEntry { return AuditEntry(r) }
