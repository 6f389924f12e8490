package camsim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/internal/testutil"
)

const (
	testUser = "admin"
	testPass = "s3cret-Pa55-never-logged"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer = testutil.SyncBuffer

// startSim starts a Sim on 127.0.0.1 with an ephemeral discovery port and
// trace logging into the returned buffer; it is closed at cleanup and the
// log is checked for the password.
func startSim(t *testing.T, opts Options) (*Sim, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Username == "" {
		opts.Username, opts.Password = testUser, testPass
	}
	if opts.DiscoveryInterfaces == nil {
		opts.DiscoveryInterfaces = []string{"none"}
	}
	opts.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if strings.Contains(logs.String(), opts.Password) {
			t.Errorf("the password appears in camsim's log")
		}
	})
	return s, logs
}

// wsseHeader builds a UsernameToken header the way ONVIF clients do.
func wsseHeader(user, pass string, created time.Time, nonce []byte) string {
	if nonce == nil {
		nonce = make([]byte, 16)
		rand.Read(nonce)
	}
	c := created.UTC().Format("2006-01-02T15:04:05.000Z")
	return `<s:Header><Security s:mustUnderstand="1" xmlns="` + nsWSSE + `"><UsernameToken>` +
		`<Username>` + user + `</Username>` +
		`<Password Type="` + passwordDigestType + `">` + wsseDigest(nonce, c, pass) + `</Password>` +
		`<Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">` +
		base64.StdEncoding.EncodeToString(nonce) + `</Nonce>` +
		`<Created xmlns="` + nsWSU + `">` + c + `</Created></UsernameToken></Security></s:Header>`
}

func envelope(header, body string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="` + nsEnv + `" xmlns:tds="` + nsTDS +
		`" xmlns:trt="` + nsTRT + `" xmlns:tt="` + nsTT + `">` + header + `<s:Body>` + body + `</s:Body></s:Envelope>`
}

func post(t *testing.T, url, body string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/soap+xml; charset=utf-8")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// fault is a decoded SOAP 1.2 fault.
type fault struct {
	Code     string
	Subcodes []string
	Reason   string
}

func parseFault(t *testing.T, data []byte) *fault {
	t.Helper()
	var env struct {
		Body struct {
			Fault *struct {
				Code struct {
					Value   string   `xml:"Value"`
					Subcode *subcode `xml:"Subcode"`
				} `xml:"Code"`
				Reason struct {
					Text struct {
						Lang  string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
						Value string `xml:",chardata"`
					} `xml:"Text"`
				} `xml:"Reason"`
			} `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
		} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
	}
	if err := xml.Unmarshal(data, &env); err != nil {
		t.Fatalf("response is not XML: %v\n%s", err, data)
	}
	f := env.Body.Fault
	if f == nil {
		return nil
	}
	out := &fault{Code: f.Code.Value, Reason: f.Reason.Text.Value}
	for s := f.Code.Subcode; s != nil; s = s.Subcode {
		out.Subcodes = append(out.Subcodes, s.Value)
	}
	if f.Reason.Text.Lang == "" {
		t.Errorf("fault Reason/Text lacks xml:lang")
	}
	return out
}

type subcode struct {
	Value   string   `xml:"Value"`
	Subcode *subcode `xml:"Subcode"`
}

func wantFault(t *testing.T, resp *http.Response, data []byte, status int, code string, subcodes ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("HTTP status %d, want %d", resp.StatusCode, status)
	}
	f := parseFault(t, data)
	if f == nil {
		t.Fatalf("no SOAP fault in:\n%s", data)
	}
	if f.Code != code || strings.Join(f.Subcodes, ",") != strings.Join(subcodes, ",") {
		t.Fatalf("fault %s %v, want %s %v", f.Code, f.Subcodes, code, subcodes)
	}
}

func wantOK(t *testing.T, resp *http.Response, data []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d:\n%s", resp.StatusCode, data)
	}
	if f := parseFault(t, data); f != nil {
		t.Fatalf("unexpected fault %+v", f)
	}
}
