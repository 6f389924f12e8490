package onvif

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
)

// Errors the daemon tests with errors.Is; they are always wrapped with
// context (which call, which device).
var (
	// ErrUnauthorized: the camera rejected the credentials (SOAP
	// NotAuthorized fault, or HTTP 401 we could not answer).
	ErrUnauthorized = errors.New("camera rejected the credentials")
	// ErrUnreachable: no HTTP answer (connection refused, timeout, DNS).
	ErrUnreachable = errors.New("camera unreachable")
	// ErrNoProfiles: the media service has no profile we can stream.
	ErrNoProfiles = errors.New("camera has no usable media profiles")
	// ErrBadResponse: the camera answered something we cannot parse.
	ErrBadResponse = errors.New("camera sent an unexpected response")
)

// Fault is a SOAP fault returned by a camera. Code and Subcode are local
// names without prefix (e.g. "Sender", "NotAuthorized"); Subcode is the
// most specific one, Subcodes the whole chain.
type Fault struct {
	Code     string
	Subcode  string
	Subcodes []string
	Reason   string
}

func (f *Fault) Error() string {
	var b strings.Builder
	b.WriteString("SOAP fault ")
	b.WriteString(f.Code)
	for _, s := range f.Subcodes {
		b.WriteString("/")
		b.WriteString(s)
	}
	if f.Reason != "" {
		b.WriteString(": ")
		b.WriteString(f.Reason)
	}
	return b.String()
}

func (f *Fault) has(names ...string) bool {
	for _, s := range f.Subcodes {
		for _, n := range names {
			if strings.EqualFold(s, n) {
				return true
			}
		}
	}
	return false
}

// Is makes errors.Is(fault, ErrUnauthorized) true for authentication
// faults, however the camera spells them.
func (f *Fault) Is(target error) bool {
	return target == ErrUnauthorized && f.notAuthorized()
}

func (f *Fault) notAuthorized() bool {
	if f.has("NotAuthorized", "FailedAuthentication", "InvalidSecurityToken", "InvalidSecurity") {
		return true
	}
	// Some firmwares put no subcode and say it in the reason only.
	r := strings.ToLower(f.Reason)
	return len(f.Subcodes) == 0 && (strings.Contains(r, "not authorized") || strings.Contains(r, "unauthorized"))
}

// IsNotAuthorized reports whether err is (or wraps) an authentication
// failure: a NotAuthorized-style fault or an unanswerable HTTP 401.
func IsNotAuthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsActionNotSupported reports whether err wraps an ActionNotSupported fault.
func IsActionNotSupported(err error) bool {
	var f *Fault
	return errors.As(err, &f) && f.has("ActionNotSupported", "NotSupported")
}

// Namespaces used in requests. The use-go/onvif request structs marshal
// with literal "tds:"/"trt:"/"onvif:" prefixes, so the envelope declares them.
const envelopeOpen = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"` +
	` xmlns:tds="http://www.onvif.org/ver10/device/wsdl"` +
	` xmlns:trt="http://www.onvif.org/ver10/media/wsdl"` +
	` xmlns:tr2="http://www.onvif.org/ver20/media/wsdl"` +
	` xmlns:onvif="http://www.onvif.org/ver10/schema"` +
	` xmlns:tt="http://www.onvif.org/ver10/schema">`

const (
	wsseNS      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	wsuNS       = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	pwDigestURI = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
	b64URI      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// usernameToken is a WS-Security UsernameToken with PasswordDigest.
type usernameToken struct {
	Username, Digest, Nonce, Created string
}

// newUsernameToken builds a token whose Created is the camera's clock
// (our clock + offset): cameras reject tokens outside a small window.
func newUsernameToken(user, pass string, now time.Time) usernameToken {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	created := now.UTC().Format("2006-01-02T15:04:05.000Z")
	return usernameToken{
		Username: user,
		Digest:   passwordDigest(nonce[:], created, pass),
		Nonce:    base64.StdEncoding.EncodeToString(nonce[:]),
		Created:  created,
	}
}

// passwordDigest is B64(SHA1(nonce + created + password)).
func passwordDigest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// buildEnvelope wraps body (a request struct marshalled with encoding/xml)
// in a SOAP 1.2 envelope, with a UsernameToken header when tok is non-nil.
func buildEnvelope(body any, tok *usernameToken) ([]byte, error) {
	inner, err := xml.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("onvif: marshal request: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(envelopeOpen)
	b.WriteString("<s:Header>")
	if tok != nil {
		b.WriteString(`<wsse:Security s:mustUnderstand="1" xmlns:wsse="` + wsseNS + `" xmlns:wsu="` + wsuNS + `">`)
		b.WriteString("<wsse:UsernameToken><wsse:Username>")
		xml.EscapeText(&b, []byte(tok.Username))
		b.WriteString(`</wsse:Username><wsse:Password Type="` + pwDigestURI + `">`)
		b.WriteString(tok.Digest)
		b.WriteString(`</wsse:Password><wsse:Nonce EncodingType="` + b64URI + `">`)
		b.WriteString(tok.Nonce)
		b.WriteString("</wsse:Nonce><wsu:Created>")
		b.WriteString(tok.Created)
		b.WriteString("</wsu:Created></wsse:UsernameToken></wsse:Security>")
	}
	b.WriteString("</s:Header><s:Body>")
	b.Write(inner)
	b.WriteString("</s:Body></s:Envelope>")
	return b.Bytes(), nil
}

// parseEnvelope finds the Body of a SOAP 1.1/1.2 envelope by local name and
// returns the raw XML of its first child element, or the Fault it carries
// as a *Fault error. Namespaces and prefixes are ignored.
func parseEnvelope(data []byte) ([]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	inBody := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: no SOAP Body", ErrBadResponse)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && t.Name.Local != "Envelope" {
				return nil, fmt.Errorf("%w: root element is %q, not a SOAP Envelope", ErrBadResponse, textutil.Prefix(t.Name.Local, 64))
			}
			if depth == 2 && t.Name.Local == "Body" {
				inBody = true
				continue
			}
			if inBody && depth == 3 {
				start := dec.InputOffset()
				if t.Name.Local == "Fault" {
					var f rawFault
					if err := dec.DecodeElement(&f, &t); err != nil {
						return nil, fmt.Errorf("%w: fault: %v", ErrBadResponse, err)
					}
					return nil, f.toFault()
				}
				// Re-serialise nothing: hand back the element's bytes so the
				// caller decodes it with its own namespace-agnostic struct.
				if err := dec.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
				}
				return elementBytes(data, start, dec.InputOffset(), t), nil
			}
		case xml.EndElement:
			depth--
			if inBody && depth == 1 {
				return nil, fmt.Errorf("%w: empty SOAP Body", ErrBadResponse)
			}
		}
	}
}

// elementBytes rebuilds the first body element from its inner bytes. The
// start tag is re-emitted without attributes or prefix (namespaces do not
// matter to our decoders); the element's content is copied as sent, and
// the namespace declarations of ancestors are irrelevant for the same reason.
func elementBytes(data []byte, innerStart, end int64, t xml.StartElement) []byte {
	inner := data[innerStart:end]
	// Drop the closing tag of the element itself.
	if i := bytes.LastIndexByte(inner, '<'); i >= 0 {
		inner = inner[:i]
	}
	var b bytes.Buffer
	b.WriteString("<" + t.Name.Local + ">")
	b.Write(inner)
	b.WriteString("</" + t.Name.Local + ">")
	return b.Bytes()
}

type rawSubcode struct {
	Value   string      `xml:"Value"`
	Subcode *rawSubcode `xml:"Subcode"`
}

type rawFault struct {
	Code   rawSubcode `xml:"Code"` // SOAP 1.2
	Reason struct {
		Text []string `xml:"Text"`
	} `xml:"Reason"`
	FaultCode   string `xml:"faultcode"`   // SOAP 1.1
	FaultString string `xml:"faultstring"` // SOAP 1.1
}

func localPart(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s = s[i+1:]
	}
	return textutil.Prefix(cleanField(s), 128)
}

func (r *rawFault) toFault() *Fault {
	f := &Fault{Code: localPart(r.Code.Value)}
	sc := r.Code.Subcode
	for i := 0; sc != nil && i < 8; i++ {
		if v := localPart(sc.Value); v != "" {
			f.Subcodes = append(f.Subcodes, v)
		}
		sc = sc.Subcode
	}
	if len(r.Reason.Text) > 0 {
		f.Reason = r.Reason.Text[0]
	}
	if f.Code == "" && r.FaultCode != "" {
		// SOAP 1.1: faultcode may itself name the ONVIF subcode.
		f.Code = localPart(r.FaultCode)
		if !strings.EqualFold(f.Code, "Client") && !strings.EqualFold(f.Code, "Server") {
			f.Subcodes = append(f.Subcodes, f.Code)
		}
		f.Reason = r.FaultString
	}
	f.Reason = textutil.Prefix(cleanField(f.Reason), 256)
	if len(f.Subcodes) > 0 {
		f.Subcode = f.Subcodes[len(f.Subcodes)-1]
	}
	if f.Code == "" {
		f.Code = "Unknown"
	}
	return f
}
