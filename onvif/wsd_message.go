package onvif

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/camwarden/camwarden/internal/textutil"
)

// Limits that keep a hostile network from making us grow without bound.
const (
	maxDatagramRead  = 64 << 10 // bytes read per datagram
	maxMessageBody   = 32 << 10 // datagrams larger than this are rejected unparsed
	maxMatches       = 64       // ProbeMatch elements kept per message
	maxXAddrs        = 16       // per device
	maxSourceAddrs   = 16       // source IPs kept per device
	maxScopes        = 64       // per device
	maxTypes         = 16       // per device
	maxInterfaces    = 32       // per device
	maxFieldLen      = 2048     // one XAddr, scope or type
	maxURNLen        = 256
	defaultMaxDevice = 4096
)

// MessageKind says which WS-Discovery message a datagram carried.
type MessageKind int

// The WS-Discovery messages ParseMessage understands.
const (
	KindUnknown MessageKind = iota
	KindProbe
	KindProbeMatches
	KindHello
	KindBye
)

func (k MessageKind) String() string {
	switch k {
	case KindProbe:
		return "Probe"
	case KindProbeMatches:
		return "ProbeMatches"
	case KindHello:
		return "Hello"
	case KindBye:
		return "Bye"
	}
	return "Unknown"
}

// Match is one device announced by a ProbeMatch, Hello or Bye.
type Match struct {
	URN                      string   // normalised EndpointReference address
	Types                    []string // e.g. "dn:NetworkVideoTransmitter" as sent
	Scopes                   []string
	XAddrs                   []string // only well-formed http(s) URLs; malformed ones are dropped
	Name, Hardware, Location string
}

// Message is a parsed WS-Discovery datagram.
type Message struct {
	Kind      MessageKind
	MessageID string
	RelatesTo string
	Action    string
	Types     []string // Probe only: the requested types
	Matches   []Match  // ProbeMatches: each match; Hello/Bye: exactly one
}

// ErrMalformed is wrapped by every ParseMessage error.
var ErrMalformed = errors.New("onvif: malformed WS-Discovery message")

// Namespace-agnostic shapes: encoding/xml matches untagged-namespace names
// by local name, which is what we want for cameras that pick any prefix.
type wsdMatch struct {
	EndpointReference struct {
		Address string `xml:"Address"`
	} `xml:"EndpointReference"`
	Types  string `xml:"Types"`
	Scopes string `xml:"Scopes"`
	XAddrs string `xml:"XAddrs"`
}

type wsdEnvelope struct {
	XMLName xml.Name
	Header  struct {
		MessageID string `xml:"MessageID"`
		RelatesTo string `xml:"RelatesTo"`
		Action    string `xml:"Action"`
	} `xml:"Header"`
	Body struct {
		Probe *struct {
			Types string `xml:"Types"`
		} `xml:"Probe"`
		ProbeMatches *struct {
			ProbeMatch []wsdMatch `xml:"ProbeMatch"`
		} `xml:"ProbeMatches"`
		Hello *wsdMatch `xml:"Hello"`
		Bye   *wsdMatch `xml:"Bye"`
	} `xml:"Body"`
}

// ParseMessage parses one WS-Discovery datagram (Probe, ProbeMatches, Hello
// or Bye). It never panics; oversized input, a non-SOAP root, an unknown
// body or a ProbeMatch/Hello/Bye without a usable EndpointReference is an
// error wrapping ErrMalformed. Malformed XAddrs are dropped, not fatal.
func ParseMessage(data []byte) (Message, error) {
	if len(data) > maxMessageBody {
		return Message{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(data), maxMessageBody)
	}
	var env wsdEnvelope
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&env); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.XMLName.Local != "Envelope" {
		return Message{}, fmt.Errorf("%w: root element %q", ErrMalformed, textutil.Prefix(env.XMLName.Local, 64))
	}
	m := Message{
		MessageID: cleanField(env.Header.MessageID),
		RelatesTo: cleanField(env.Header.RelatesTo),
		Action:    cleanField(env.Header.Action),
	}
	b := &env.Body
	switch {
	case b.ProbeMatches != nil:
		m.Kind = KindProbeMatches
		for i := range b.ProbeMatches.ProbeMatch {
			if len(m.Matches) >= maxMatches {
				break
			}
			if mt, ok := convertMatch(&b.ProbeMatches.ProbeMatch[i]); ok {
				m.Matches = append(m.Matches, mt)
			}
		}
		if len(m.Matches) == 0 {
			return Message{}, fmt.Errorf("%w: ProbeMatches without a usable ProbeMatch", ErrMalformed)
		}
	case b.Hello != nil, b.Bye != nil:
		src := b.Hello
		m.Kind = KindHello
		if src == nil {
			src = b.Bye
			m.Kind = KindBye
		}
		mt, ok := convertMatch(src)
		if !ok {
			return Message{}, fmt.Errorf("%w: %s without a usable EndpointReference", ErrMalformed, m.Kind)
		}
		m.Matches = []Match{mt}
	case b.Probe != nil:
		m.Kind = KindProbe
		m.Types = splitList(b.Probe.Types, maxTypes)
	default:
		return Message{}, fmt.Errorf("%w: no WS-Discovery body", ErrMalformed)
	}
	return m, nil
}

func convertMatch(w *wsdMatch) (Match, bool) {
	urn, ok := NormaliseURN(w.EndpointReference.Address)
	if !ok {
		return Match{}, false
	}
	mt := Match{
		URN:    urn,
		Types:  splitList(w.Types, maxTypes),
		Scopes: splitList(w.Scopes, maxScopes),
	}
	for _, x := range splitList(w.XAddrs, maxXAddrs*4) {
		if len(mt.XAddrs) >= maxXAddrs {
			break
		}
		if validXAddr(x) && !contains(mt.XAddrs, x) {
			mt.XAddrs = append(mt.XAddrs, x)
		}
	}
	mt.Name, mt.Hardware, mt.Location = scopeFields(mt.Scopes)
	return mt, true
}

// validXAddr accepts only absolute http(s) URLs with a host and no
// credentials: anything else is dropped (the library panics on these).
func validXAddr(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Hostname() == "" {
		return false
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	if p := u.Port(); p != "" {
		if n, ok := atoiSmall(p); !ok || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// NormaliseURN normalises a WS-Discovery EndpointReference address. The
// `uuid:X` form real cameras send and `urn:uuid:X` both become
// `urn:uuid:<lower-case X>`; X must be hex digits and dashes. Other URIs
// (some devices use `urn:dev:...` or an http URL) are kept verbatim. It
// reports false for an empty, overlong or non-printable address.
func NormaliseURN(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxURNLen {
		return "", false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return "", false
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
			return "", false
		}
		return s, true
	}
	if id == "" || strings.Trim(id, "0123456789abcdef-") != "" || strings.Trim(id, "-") == "" {
		return "", false
	}
	return "urn:uuid:" + id, true
}

// scopeFields extracts the ONVIF name, hardware and location scopes,
// URL-decoded. The first scope of each kind wins.
func scopeFields(scopes []string) (name, hardware, location string) {
	const prefix = "onvif://www.onvif.org/"
	for _, s := range scopes {
		if len(s) <= len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
			continue
		}
		rest := s[len(prefix):]
		kind, val, ok := strings.Cut(rest, "/")
		if !ok || val == "" {
			continue
		}
		if dec, err := url.PathUnescape(val); err == nil {
			val = dec
		}
		val = cleanField(val)
		switch strings.ToLower(kind) {
		case "name":
			if name == "" {
				name = val
			}
		case "hardware":
			if hardware == "" {
				hardware = val
			}
		case "location":
			if location == "" {
				location = val
			}
		}
	}
	return name, hardware, location
}

// splitList splits a whitespace-separated xs:list, dropping overlong items
// and keeping at most max items.
func splitList(s string, max int) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if len(out) >= max {
			break
		}
		if len(f) > maxFieldLen {
			continue
		}
		out = append(out, f)
	}
	return out
}

// cleanField trims and clips a text field and removes control characters,
// so hostile devices cannot inject newlines into logs or UIs.
func cleanField(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return textutil.Prefix(s, maxFieldLen)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func atoiSmall(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
