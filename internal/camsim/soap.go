package camsim

import (
	"bytes"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// XML namespaces, spelled as real ONVIF devices spell them.
const (
	nsEnv  = "http://www.w3.org/2003/05/soap-envelope"
	nsTDS  = "http://www.onvif.org/ver10/device/wsdl"
	nsTRT  = "http://www.onvif.org/ver10/media/wsdl"
	nsTR2  = "http://www.onvif.org/ver20/media/wsdl"
	nsTT   = "http://www.onvif.org/ver10/schema"
	nsTER  = "http://www.onvif.org/ver10/error"
	nsWSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsWSU  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	nsWSA  = "http://schemas.xmlsoap.org/ws/2004/08/addressing" // WS-Discovery 2005/04 addressing
	nsWSD  = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
	nsDN   = "http://www.onvif.org/ver10/network/wsdl"

	passwordDigestType = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)

// maxSOAPBody bounds what we read from a client.
const maxSOAPBody = 256 << 10

// tokenWindow is how far a UsernameToken's Created may be from the camera's clock.
const tokenWindow = 5 * time.Minute

// soapRequest is what the services need from a request envelope.
type soapRequest struct {
	Action string // local name of the first Body child, e.g. "GetProfiles"
	NS     string // its namespace
	Token  *usernameToken
	// MessageID is the WS-Addressing message id (directed probes).
	MessageID string
	// Parameters the implemented operations take, matched by local name.
	ProfileToken      string
	Protocol          string // Media2 GetStreamUri
	Category          []string
	IncludeCapability bool
}

type usernameToken struct {
	Username     string
	Password     string
	PasswordType string
	Nonce        string
	Created      string
}

type xmlEnvelope struct {
	XMLName xml.Name
	Header  struct {
		MessageID string `xml:"MessageID"`
		Security  *struct {
			UsernameToken *struct {
				Username string `xml:"Username"`
				Password struct {
					Type  string `xml:"Type,attr"`
					Value string `xml:",chardata"`
				} `xml:"Password"`
				Nonce   string `xml:"Nonce"`
				Created string `xml:"Created"`
			} `xml:"UsernameToken"`
		} `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Security"`
	} `xml:"Header"`
	Body struct {
		Op *struct {
			XMLName           xml.Name
			ProfileToken      string   `xml:"ProfileToken"`
			Token             string   `xml:"Token"` // Media2 GetProfiles filter
			Protocol          string   `xml:"Protocol"`
			Category          []string `xml:"Category"`
			IncludeCapability string   `xml:"IncludeCapability"`
		} `xml:",any"`
	} `xml:"Body"`
}

var (
	errNotSOAP12 = errors.New("not a SOAP 1.2 envelope")
	errNoBodyOp  = errors.New("SOAP body holds no operation")
)

// parseSOAP decodes a request envelope. It never trusts sizes from the peer:
// the caller bounds the input.
func parseSOAP(data []byte) (*soapRequest, error) {
	var env xmlEnvelope
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("malformed SOAP envelope: %w", err)
	}
	if env.XMLName.Local != "Envelope" {
		return nil, errors.New("root element is not a SOAP Envelope")
	}
	if env.XMLName.Space != nsEnv {
		return nil, errNotSOAP12
	}
	op := env.Body.Op
	if op == nil || op.XMLName.Local == "" {
		return nil, errNoBodyOp
	}
	r := &soapRequest{
		MessageID:         strings.TrimSpace(env.Header.MessageID),
		Action:            op.XMLName.Local,
		NS:                op.XMLName.Space,
		ProfileToken:      strings.TrimSpace(op.ProfileToken),
		Protocol:          strings.TrimSpace(op.Protocol),
		IncludeCapability: strings.TrimSpace(op.IncludeCapability) == "true" || strings.TrimSpace(op.IncludeCapability) == "1",
	}
	if r.ProfileToken == "" {
		r.ProfileToken = strings.TrimSpace(op.Token)
	}
	for _, c := range op.Category {
		r.Category = append(r.Category, strings.TrimSpace(c))
	}
	if s := env.Header.Security; s != nil && s.UsernameToken != nil {
		t := s.UsernameToken
		r.Token = &usernameToken{
			Username:     strings.TrimSpace(t.Username),
			Password:     strings.TrimSpace(t.Password.Value),
			PasswordType: strings.TrimSpace(t.Password.Type),
			Nonce:        strings.TrimSpace(t.Nonce),
			Created:      strings.TrimSpace(t.Created),
		}
	}
	return r, nil
}

// wsseDigest is B64(SHA1(nonce + created + password)), the ONVIF PasswordDigest.
func wsseDigest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	io.WriteString(h, created)
	io.WriteString(h, password)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// checkToken verifies a UsernameToken against the camera's credentials and
// clock. The returned reason is for the log only (never the password): the
// client always gets the same NotAuthorized fault, as real cameras send.
func (c *Camera) checkToken(t *usernameToken, now time.Time) (ok bool, reason string) {
	if t == nil {
		return false, "no UsernameToken"
	}
	if t.PasswordType != passwordDigestType {
		return false, "password type is not PasswordDigest"
	}
	nonce, err := base64.StdEncoding.DecodeString(t.Nonce)
	if err != nil || len(nonce) == 0 {
		return false, "nonce missing or not base64"
	}
	created, err := time.Parse(time.RFC3339Nano, t.Created)
	if err != nil {
		return false, "Created is not an xsd:dateTime"
	}
	if d := created.Sub(now); d > tokenWindow || d < -tokenWindow {
		return false, fmt.Sprintf("Created is %s off the camera clock", d.Round(time.Second))
	}
	want := wsseDigest(nonce, t.Created, c.sim.opts.Password)
	userOK := subtle.ConstantTimeCompare([]byte(t.Username), []byte(c.sim.opts.Username)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(t.Password), []byte(want)) == 1
	if !userOK || !passOK {
		return false, "wrong username or password digest"
	}
	// Only authentic tokens enter the cache, so strangers cannot fill it.
	if !c.nonces.add(t.Nonce, now) {
		return false, "nonce replayed"
	}
	return true, ""
}

// nonceCache remembers the nonces of accepted tokens for twice the window
// plus a minute, long enough that a replayed token is also outside the
// Created window. Entries expire in insertion order, so a FIFO prunes them.
type nonceCache struct {
	mu    sync.Mutex
	seen  map[string]struct{}
	order []nonceEntry
}

type nonceEntry struct {
	nonce   string
	expires time.Time
}

const maxNonces = 1 << 20 // bounds memory under a benchmark's request storm

func newNonceCache() *nonceCache { return &nonceCache{seen: map[string]struct{}{}} }

// add returns false if nonce was seen before.
func (n *nonceCache) add(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := 0
	for i < len(n.order) && (now.After(n.order[i].expires) || len(n.order)-i >= maxNonces) {
		delete(n.seen, n.order[i].nonce)
		i++
	}
	n.order = n.order[i:]
	if _, dup := n.seen[nonce]; dup {
		return false
	}
	n.seen[nonce] = struct{}{}
	n.order = append(n.order, nonceEntry{nonce, now.Add(2*tokenWindow + time.Minute)})
	return true
}

// soapFault is an ONVIF fault: env code, ter subcodes, reason.
type soapFault struct {
	status   int
	code     string // "env:Sender" or "env:Receiver"
	subcodes []string
	reason   string
}

var (
	faultNotAuthorized = soapFault{http.StatusBadRequest, "env:Sender", []string{"ter:NotAuthorized"}, "Sender not Authorized"}
	faultActionNotSup  = soapFault{http.StatusInternalServerError, "env:Receiver", []string{"ter:ActionNotSupported"}, "Optional Action Not Implemented"}
	faultNoProfile     = soapFault{http.StatusBadRequest, "env:Sender", []string{"ter:InvalidArgVal", "ter:NoProfile"}, "The requested profile token does not exist"}
	faultWellFormed    = soapFault{http.StatusBadRequest, "env:Sender", []string{"ter:WellFormed"}, "The request is not well formed"}
	faultNoService     = soapFault{http.StatusBadRequest, "env:Sender", []string{"ter:InvalidArgVal", "ter:NoSuchService"}, "The requested capability category is not supported"}
	faultVersion       = soapFault{http.StatusInternalServerError, "env:VersionMismatch", nil, "Only SOAP 1.2 is supported"}
)

func writeFault(w http.ResponseWriter, f soapFault) {
	var b strings.Builder
	b.WriteString(`<env:Fault><env:Code><env:Value>` + f.code + `</env:Value>`)
	for _, s := range f.subcodes {
		b.WriteString(`<env:Subcode><env:Value>` + s + `</env:Value>`)
	}
	for range f.subcodes {
		b.WriteString(`</env:Subcode>`)
	}
	b.WriteString(`</env:Code><env:Reason><env:Text xml:lang="en">`)
	xml.EscapeText(&b, []byte(f.reason))
	b.WriteString(`</env:Text></env:Reason></env:Fault>`)
	writeEnvelope(w, f.status, b.String())
}

const envelopeOpen = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<env:Envelope xmlns:env="` + nsEnv + `" xmlns:tds="` + nsTDS + `" xmlns:trt="` + nsTRT + `" xmlns:tr2="` + nsTR2 +
	`" xmlns:tt="` + nsTT + `" xmlns:ter="` + nsTER + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"` +
	` xmlns:xsd="http://www.w3.org/2001/XMLSchema"><env:Header/><env:Body>`
const envelopeClose = `</env:Body></env:Envelope>`

func writeEnvelope(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, envelopeOpen)
	io.WriteString(w, body)
	io.WriteString(w, envelopeClose)
}

// serveHTTP is the device and media service of one camera. Like most real
// cameras it dispatches on the operation's namespace, not on the URL path.
func (c *Camera) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "ONVIF services take SOAP 1.2 over POST", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSOAPBody))
	if err != nil {
		writeFault(w, faultWellFormed)
		return
	}
	req, err := parseSOAP(data)
	if err != nil {
		c.log.Debug("bad SOAP request", "remote", r.RemoteAddr, "error", err)
		if errors.Is(err, errNotSOAP12) {
			writeFault(w, faultVersion)
			return
		}
		writeFault(w, faultWellFormed)
		return
	}
	log := c.log.With("op", req.Action, "remote", r.RemoteAddr)
	if req.NS == nsWSD && req.Action == "Probe" {
		c.serveDirectedProbe(w, data, req)
		return
	}
	op, known := c.operation(req)
	if !known {
		log.Debug("unsupported action", "ns", req.NS)
		writeFault(w, faultActionNotSup)
		return
	}
	if op.needsAuth {
		if c.sim.opts.Auth == AuthDigest {
			if !c.checkHTTPDigest(w, r) {
				log.Debug("HTTP Digest rejected")
				return
			}
		} else if ok, reason := c.checkToken(req.Token, c.Now()); !ok {
			log.Info("WS-Security rejected", "reason", reason)
			writeFault(w, faultNotAuthorized)
			return
		}
	}
	body, fault := op.run(req)
	if fault != nil {
		log.Debug("fault", "reason", fault.reason)
		writeFault(w, *fault)
		return
	}
	log.Debug("ok")
	writeEnvelope(w, http.StatusOK, body)
}

// serveDirectedProbe answers a WS-Discovery Probe sent over HTTP to the
// device service (a "directed probe"), without authentication as devices
// do: a ProbeMatches with this camera when it matches, else an empty one.
func (c *Camera) serveDirectedProbe(w http.ResponseWriter, data []byte, req *soapRequest) {
	d := c.sim.discovery()
	ep := c.ep.Load()
	p, err := parseProbe(data)
	if d == nil || ep == nil || err != nil {
		writeFault(w, faultWellFormed)
		return
	}
	body := `<d:ProbeMatches/>`
	if p.matches(c) {
		body = `<d:ProbeMatches><d:ProbeMatch>` + c.discoveryBody(ep) + `</d:ProbeMatch></d:ProbeMatches>`
	}
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(d.message(matchesAction, wsaAnonymous, req.MessageID, body))
}
