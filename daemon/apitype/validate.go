package apitype

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/camwarden/camwarden/internal/textutil"
)

// Request validation lives here, once: the CLI calls Validate before it
// sends a request (a bad value is a usage error, exit 2) and the daemon
// calls it again on what it receives (a request may come from any client).
// Every error is an *Error with CodeInvalid, and none echoes a URL: an admin
// may have pasted one with a password in it.

// nameRe is the documented safe set for camera, stream, user and group names.
var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidName reports whether s is in the safe name set: lower-case letters,
// digits, '_' and '-', starting with a letter or digit, at most 64 bytes.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// CheckName returns a descriptive error when s is not a valid name of the
// given kind (camera, stream, user, group).
func CheckName(kind, s string) error {
	if !ValidName(s) {
		return invalidf("invalid %s name %q: use 1-64 characters a-z 0-9 _ - starting with a letter or digit", kind, s)
	}
	return nil
}

// CheckAction accepts exactly "read" or "publish".
func CheckAction(s string) error {
	if s != "read" && s != "publish" {
		return invalidf("unknown action %q: use read or publish", s)
	}
	return nil
}

// CheckPattern accepts "camera/stream", "camera/*" and "*".
func CheckPattern(p string) error {
	if p == "*" {
		return nil
	}
	cam, st, ok := strings.Cut(p, "/")
	if !ok || !ValidName(cam) || (st != "*" && !ValidName(st)) {
		return invalidf("invalid pattern %q: use camera/stream, camera/* or *", p)
	}
	return nil
}

// CheckSubject accepts a user name or @group.
func CheckSubject(s string) error {
	if g, isGroup := strings.CutPrefix(s, "@"); isGroup {
		return CheckName("group", g)
	}
	if !ValidName(s) {
		return invalidf("invalid user name %q: use 1-64 characters a-z 0-9 _ - starting with a letter or digit (a group is written @name)", s)
	}
	return nil
}

// MinPasswordLen is the shortest user password accepted.
const MinPasswordLen = 8

// MaxPasswordBytes is the longest password accepted.
const MaxPasswordBytes = 1024

// CheckPassword applies the user password rule.
func CheckPassword(pw string) error {
	if len(pw) < MinPasswordLen {
		return invalidf("password too short: use at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordBytes {
		return invalidf("password too long: at most %d bytes (and at least %d characters)", MaxPasswordBytes, MinPasswordLen)
	}
	if strings.ContainsAny(pw, "\r\n\x00") {
		return invalidf("password must not contain line breaks or NUL (and must have at least %d characters)", MinPasswordLen)
	}
	return nil
}

// Transport is how a puller carries RTP from a camera.
type Transport string

const (
	TransportAuto Transport = "auto" // UDP, falling back to TCP
	TransportTCP  Transport = "tcp"
	TransportUDP  Transport = "udp"
)

// ParseTransport accepts auto (also ""), tcp and udp.
func ParseTransport(s string) (Transport, error) {
	switch Transport(s) {
	case "", TransportAuto:
		return TransportAuto, nil
	case TransportTCP, TransportUDP:
		return Transport(s), nil
	}
	return "", invalidf("--transport must be auto, tcp or udp, not %q", s)
}

// CredentialsInURL is the refusal of a URL that carries user:password.
const CredentialsInURL = "put credentials in --user/--password-stdin, not the URL"

// CheckStreamURL validates a camera stream URL: rtsp or rtsps (or http or
// https: multipart MJPEG, served as RTP/JPEG; rtmp or rtmps), a host name or address, a
// valid port if any, and no credentials.
func CheckStreamURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return invalidf("%s", CredentialsInURL)
		}
		return invalidf("invalid stream URL: %s", RedactParseError(err))
	}
	if u.User != nil {
		return invalidf("%s", CredentialsInURL)
	}
	switch u.Scheme {
	case "rtsp", "rtsps", "http", "https", "rtmp", "rtmps":
	default:
		return invalidf("--url must be an rtsp://, rtsps:// URL (or http://, https:// for an MJPEG camera), an rtmp:// or rtmps:// URL, or use --exec for anything else")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		// RTSP has no fragments; a '#' here is most likely part of a pasted password.
		return invalidf("stream URL must not hold a '#'; %s", CredentialsInURL)
	}
	return checkHost(u, "stream URL")
}

// CheckXAddr validates an ONVIF device service address given by an admin.
func CheckXAddr(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		if err == nil || strings.Contains(raw, "@") {
			return invalidf("%s", CredentialsInURL)
		}
		return invalidf("invalid --xaddr: %s", RedactParseError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidf("invalid --xaddr: use http://HOST[:PORT]/onvif/device_service")
	}
	return checkHost(u, "--xaddr")
}

// checkHost requires a host (a name or an IP literal) and a valid port.
func checkHost(u *url.URL, what string) error {
	host := u.Hostname()
	if host == "" {
		return invalidf("%s has no host", what)
	}
	if net.ParseIP(host) == nil && !validHostName(host) {
		return invalidf("%s has an invalid host name", what)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalidf("%s has an invalid port: use 1-65535", what)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return invalidf("%s has an empty port", what)
	}
	return nil
}

// validHostName is RFC 1123: dot-separated labels of letters, digits and
// '-', not starting or ending with '-', at most 253 bytes.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// CheckTarget validates a directed discovery target, HOST or HOST:PORT.
func CheckTarget(t string) error {
	host := t
	if h, _, err := net.SplitHostPort(t); err == nil {
		host = h
	}
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return invalidf("invalid target %q: use HOST or HOST:PORT", t)
	}
	return nil
}

// MaxDiscoverWindow bounds an admin-requested probe.
const MaxDiscoverWindow = 30 * time.Second

// Validate checks a discovery request.
func (r DiscoverRequest) Validate() error {
	if r.TimeoutMS < 0 || time.Duration(r.TimeoutMS)*time.Millisecond > MaxDiscoverWindow {
		return invalidf("--timeout must be between 0 and %s", MaxDiscoverWindow)
	}
	for _, t := range r.Targets {
		if err := CheckTarget(t); err != nil {
			return err
		}
	}
	return nil
}

// DefaultStream is the stream name of a camera added without --stream.
const DefaultStream = "main"

// Validate checks a camera-add request; an empty Stream means DefaultStream.
func (r CameraAddRequest) Validate() error {
	if err := CheckName("camera", r.Name); err != nil {
		return err
	}
	if r.Stream != "" {
		if err := CheckName("stream", r.Stream); err != nil {
			return err
		}
	}
	if r.URL == "" && r.Exec == "" {
		return invalidf("--url is required (or --exec with a command that publishes the stream to %s)", OutputPlaceholder)
	}
	if r.URL != "" && r.Exec != "" {
		return invalidf("give exactly one of --url and --exec")
	}
	if r.Exec != "" {
		if err := CheckExecCommand(r.Exec); err != nil {
			return err
		}
	} else if err := CheckStreamURL(r.URL); err != nil {
		return err
	}
	if _, err := ParseTransport(r.Transport); err != nil {
		return err
	}
	if r.Password != "" && r.User == "" && r.Exec == "" {
		return invalidf("a camera password needs --user")
	}
	return nil
}

// Validate checks an adoption request (the password may be empty: some
// cameras have none).
func (r CameraAdoptRequest) Validate() error {
	if err := CheckName("camera", r.Name); err != nil {
		return err
	}
	if (r.DeviceURN == "") == (r.XAddr == "") {
		return invalidf("give exactly one of --device and --xaddr")
	}
	if r.XAddr != "" {
		if err := CheckXAddr(r.XAddr); err != nil {
			return err
		}
	}
	if r.DeviceURN != "" {
		if err := CheckDeviceURN(r.DeviceURN); err != nil {
			return err
		}
	}
	if r.User == "" {
		return invalidf("adoption needs --user and --password-stdin: the camera's ONVIF credentials")
	}
	if _, err := ParseChannels(r.Channels); err != nil {
		return invalidf("--channels: %v", err)
	}
	if r.Channels != "" {
		// Channel cameras are named NAME-chNN: leave room for the suffix.
		if err := CheckName("camera", r.Name+"-ch01"); err != nil {
			return invalidf("camera name %q is too long for a recorder's channels (NAME-chNN)", r.Name)
		}
	}
	return nil
}

// MaxChannels bounds a recorder's channel numbers.
const MaxChannels = 128

// ParseChannels parses a recorder channel selection such as "1,3-5" into
// sorted, distinct channel numbers in 1..MaxChannels. "" means all (nil).
func ParseChannels(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if len(s) > 512 {
		return nil, errors.New("the channel list is longer than 512 characters")
	}
	var set [MaxChannels + 1]bool
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := channelNumber(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = channelNumber(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("the range %d-%d runs backwards", a, b)
			}
		}
		for n := a; n <= b; n++ {
			set[n] = true
		}
	}
	var out []int
	for n, ok := range set {
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func channelNumber(s string) (int, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || len(s) > 4 {
		return 0, fmt.Errorf("%q is not a channel number (write e.g. 1,3-5)", textutil.Shorten(s, 16))
	}
	if n < 1 || n > MaxChannels {
		return 0, fmt.Errorf("channel %d is outside 1-%d", n, MaxChannels)
	}
	return n, nil
}

// Validate checks a camera-set request: at least one change, each valid.
func (r CameraSetRequest) Validate() error {
	if err := CheckName("camera", r.Name); err != nil {
		return err
	}
	if r.Stream != "" {
		if err := CheckName("stream", r.Stream); err != nil {
			return err
		}
	}
	if r.URL != nil && r.Exec != nil {
		return invalidf("give one of --url and --exec, not both")
	}
	if r.URL != nil {
		if err := CheckStreamURL(*r.URL); err != nil {
			return err
		}
	}
	if r.Exec != nil {
		if err := CheckExecCommand(*r.Exec); err != nil {
			return err
		}
	}
	if r.Transport != nil {
		if _, err := ParseTransport(*r.Transport); err != nil {
			return err
		}
	}
	if r.URL == nil && r.Exec == nil && r.Transport == nil && r.OnDemand == nil && r.User == nil && r.Password == nil && r.AllowBasic == nil {
		return invalidf("nothing to change: give at least one of --url, --exec, --transport, --on-demand, --user, --password-stdin, --allow-basic")
	}
	return nil
}

// Validate checks a camera-move request; the address itself is resolved
// against the camera by the daemon.
func (r CameraMoveRequest) Validate() error {
	if err := CheckName("camera", r.Name); err != nil {
		return err
	}
	return CheckMoveTarget(r.To)
}

// CheckMoveTarget checks the form of camera move --to (the daemon resolves
// it against the camera's stored address): a full http(s) URL without
// credentials, or HOST[:PORT]. Surrounding space is ignored.
func CheckMoveTarget(to string) error {
	to = strings.TrimSpace(to)
	if to == "" {
		return invalidf("give the camera's new address: --to HOST[:PORT] or --to http(s)://HOST[:PORT]/PATH")
	}
	if strings.Contains(to, "@") {
		return invalidf("put no credentials in --to; the camera's stored ones are used")
	}
	if strings.Contains(to, "://") {
		u, err := url.Parse(to)
		if err != nil {
			return invalidf("invalid --to: %s; use HOST[:PORT] or http(s)://HOST[:PORT]/onvif/device_service", RedactParseError(err))
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return invalidf("invalid --to: use HOST[:PORT] or http(s)://HOST[:PORT]/onvif/device_service")
		}
		return checkHost(u, "--to")
	}
	if strings.ContainsAny(to, "/?# \t") {
		return invalidf("invalid --to %q: use HOST[:PORT] or a full http(s):// URL", to)
	}
	host, port, err := net.SplitHostPort(to)
	if err != nil {
		host, port = strings.Trim(to, "[]"), ""
	}
	if host == "" || (net.ParseIP(host) == nil && !validHostName(host)) {
		return invalidf("invalid --to %q: not a host name or IP address", to)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return invalidf("invalid --to %q: use a port 1-65535", to)
		}
	}
	return nil
}

// CheckDeviceURN checks camera adopt --device the way the daemon reads it
// (onvif.NormaliseURN): urn:uuid: or uuid: followed by hex digits and
// dashes, or another URI with a scheme, printable and without spaces.
func CheckDeviceURN(s string) error {
	const hint = "use the urn:uuid:... address shown by camwarden discover"
	s = strings.TrimSpace(s)
	if len(s) > 256 {
		return invalidf("invalid --device: longer than 256 bytes; %s", hint)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return invalidf("invalid --device %q: spaces or unprintable characters; %s", s, hint)
		}
	}
	lower := strings.ToLower(s)
	var id string
	switch {
	case strings.HasPrefix(lower, "urn:uuid:"):
		id = lower[len("urn:uuid:"):]
	case strings.HasPrefix(lower, "uuid:"):
		id = lower[len("uuid:"):]
	default:
		if !strings.Contains(s, ":") {
			return invalidf("invalid --device %q: %s", s, hint)
		}
		return nil
	}
	if id == "" || strings.Trim(id, "0123456789abcdef-") != "" || strings.Trim(id, "-") == "" {
		return invalidf("invalid --device %q: a uuid is hex digits and dashes; %s", s, hint)
	}
	return nil
}

// Validate checks a user-add request.
func (r UserAddRequest) Validate() error {
	if err := CheckName("user", r.Name); err != nil {
		return err
	}
	return CheckPassword(r.Password)
}

// Validate checks a password change.
func (r UserPasswdRequest) Validate() error {
	if err := CheckName("user", r.Name); err != nil {
		return err
	}
	return CheckPassword(r.Password)
}

// Validate checks a group membership change.
func (r GroupMemberRequest) Validate() error {
	if err := CheckName("group", r.Group); err != nil {
		return err
	}
	return CheckName("user", r.User)
}

// Validate checks a grant's syntax (whether its subject exists is the
// daemon's to say).
func (g Grant) Validate() error {
	if err := CheckSubject(g.Subject); err != nil {
		return err
	}
	if err := CheckAction(g.Action); err != nil {
		return err
	}
	return CheckPattern(g.Pattern)
}

// MaxAuditLimit bounds one audit listing.
const MaxAuditLimit = 10000

// Validate checks an audit listing request.
func (r AuditListRequest) Validate() error {
	if r.Limit > MaxAuditLimit {
		return invalidf("--limit must be at most %d", MaxAuditLimit)
	}
	return nil
}

func invalidf(format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Message: fmt.Sprintf(format, args...)}
}
