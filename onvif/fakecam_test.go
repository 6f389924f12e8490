package onvif

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

// fakeCam is a small ONVIF device+media service on 127.0.0.1 for client
// tests. It verifies WS-UsernameToken digests against its own (skewed)
// clock, or HTTP Digest when requireDigest is set, independently of the
// client's code. Behaviour is changed through its fields and the hook.
type fakeCam struct {
	t             testing.TB
	user, pass    string
	offset        atomic.Int64 // camera clock minus real time, ns
	requireDigest bool
	basicOnly     bool          // answer 401 with a Basic challenge only
	tokenWindow   time.Duration // accepted |Created - camera clock|
	mediaXAddr    string        // reported by GetCapabilities/GetServices
	streamURI     string        // reported by GetStreamUri; TOKEN is replaced
	profilesXML   []byte
	// hook runs first for every request; returning true means it answered.
	hook func(op string, w http.ResponseWriter, r *http.Request) bool

	mu     sync.Mutex
	calls  map[string]int
	nonces map[string]bool
	srv    *httptest.Server
}

func newFakeCam(t testing.TB) *fakeCam {
	c := &fakeCam{
		t:           t,
		user:        "admin",
		pass:        "S3cr3t-Pa55word!",
		tokenWindow: 5 * time.Second,
		mediaXAddr:  "http://0.0.0.0/onvif/media",
		streamURI:   "rtsp://0.0.0.0:554/Streaming/Channels/TOKEN?transportmode=unicast",
		profilesXML: readCapture(t, "getprofiles_response.xml"),
		calls:       map[string]int{},
		nonces:      map[string]bool{},
	}
	c.srv = httptest.NewServer(c)
	t.Cleanup(c.srv.Close)
	c.mediaXAddr = "http://0.0.0.0:" + c.port() + "/onvif/media"
	return c
}

func (c *fakeCam) xaddr() string { return c.srv.URL + "/onvif/device_service" }

func (c *fakeCam) port() string {
	return c.srv.Listener.Addr().String()[strings.LastIndexByte(c.srv.Listener.Addr().String(), ':')+1:]
}

func (c *fakeCam) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *fakeCam) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.calls {
		m[k] = v
	}
	return m
}

func (c *fakeCam) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())).UTC() }

type fakeReq struct {
	Header struct {
		Security struct {
			UsernameToken *struct {
				Username string `xml:"Username"`
				Password string `xml:"Password"`
				Nonce    string `xml:"Nonce"`
				Created  string `xml:"Created"`
			} `xml:"UsernameToken"`
		} `xml:"Security"`
	} `xml:"Header"`
	Body struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"Body"`
}

func (c *fakeCam) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	var req fakeReq
	if err := xml.Unmarshal(data, &req); err != nil {
		http.Error(w, "bad xml", http.StatusBadRequest)
		return
	}
	op := ""
	dec := xml.NewDecoder(bytes.NewReader(req.Body.Inner))
	for op == "" {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			op = se.Name.Local
		}
	}
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
	if c.hook != nil && c.hook(op, w, r) {
		return
	}
	if op != "GetSystemDateAndTime" {
		if c.basicOnly {
			w.Header().Set("WWW-Authenticate", `Basic realm="cam"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if c.requireDigest {
			if !c.checkHTTPDigest(r) {
				w.Header().Add("WWW-Authenticate", `Basic realm="cam"`)
				w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Digest realm="IP Camera(C1234)", nonce="%x", qop="auth", algorithm=MD5, opaque="5ccc069c403ebaf9f0171e9517f40e41", stale=FALSE`, time.Now().UnixNano()))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		} else if !c.checkToken(req) {
			c.fault(w, "fault_notauthorized.xml")
			return
		}
	}
	media := op == "GetProfiles" || op == "GetStreamUri"
	if media != (r.URL.Path == "/onvif/media") {
		c.fault(w, "fault_actionnotsupported.xml")
		return
	}
	switch op {
	case "GetSystemDateAndTime":
		n := c.now()
		c.render(w, "getsystemdateandtime_response.xml", map[string]int{
			"Year": n.Year(), "Month": int(n.Month()), "Day": n.Day(), "Hour": n.Hour(), "Minute": n.Minute(), "Second": n.Second()})
	case "GetDeviceInformation":
		c.reply(w, readCapture(c.t, "getdeviceinformation_response.xml"))
	case "GetCapabilities":
		c.render(w, "getcapabilities_response.xml", map[string]string{"MediaXAddr": c.mediaXAddr})
	case "GetServices":
		c.render(w, "getservices_response.xml", map[string]string{"MediaXAddr": c.mediaXAddr})
	case "GetProfiles":
		c.reply(w, c.profilesXML)
	case "GetStreamUri":
		var su struct {
			ProfileToken string `xml:"ProfileToken"`
			Stream       string `xml:"StreamSetup>Stream"`
			Protocol     string `xml:"StreamSetup>Transport>Protocol"`
		}
		_ = xml.Unmarshal(req.Body.Inner, &su)
		if su.Stream != "RTP-Unicast" || su.Protocol != "RTSP" || su.ProfileToken == "" {
			c.fault(w, "fault_actionnotsupported.xml")
			return
		}
		c.render(w, "getstreamuri_response.xml", map[string]string{"URI": strings.ReplaceAll(c.streamURI, "TOKEN", su.ProfileToken)})
	default:
		c.fault(w, "fault_actionnotsupported.xml")
	}
}

// checkToken verifies a WS-UsernameToken PasswordDigest the way cameras do.
func (c *fakeCam) checkToken(req fakeReq) bool {
	tok := req.Header.Security.UsernameToken
	if tok == nil || tok.Username != c.user {
		return false
	}
	created, err := time.Parse(time.RFC3339Nano, tok.Created)
	if err != nil {
		return false
	}
	if d := created.Sub(c.now()); d > c.tokenWindow || d < -c.tokenWindow {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(tok.Nonce)
	if err != nil || len(nonce) < 8 {
		return false
	}
	c.mu.Lock()
	replay := c.nonces[tok.Nonce]
	c.nonces[tok.Nonce] = true
	c.mu.Unlock()
	if replay {
		return false
	}
	h := sha1.Sum(append(append(nonce, tok.Created...), c.pass...))
	return base64.StdEncoding.EncodeToString(h[:]) == tok.Password
}

// checkHTTPDigest verifies an RFC 2617 qop=auth MD5 answer.
func (c *fakeCam) checkHTTPDigest(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	if !strings.HasPrefix(a, "Digest ") {
		return false
	}
	p, err := parseAuthParams(a[len("Digest "):])
	if err != nil {
		return false
	}
	md := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	ha1 := md(c.user + ":IP Camera(C1234):" + c.pass)
	ha2 := md(r.Method + ":" + r.URL.RequestURI())
	want := md(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	return p["username"] == c.user && p["uri"] == r.URL.RequestURI() && p["qop"] == "auth" &&
		p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41" && p["response"] == want
}

func (c *fakeCam) render(w http.ResponseWriter, name string, data any) {
	tpl := template.Must(template.New(name).Funcs(nil).Parse(string(readCapture(c.t, name))))
	// Values are escaped for XML here; text/template does not.
	if m, ok := data.(map[string]string); ok {
		esc := map[string]string{}
		for k, v := range m {
			esc[k] = html.EscapeString(v)
		}
		data = esc
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		c.t.Errorf("template %s: %v", name, err)
	}
	c.reply(w, b.Bytes())
}

func (c *fakeCam) reply(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	_, _ = w.Write(body)
}

func (c *fakeCam) fault(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(readCapture(c.t, name))
}
