package camsim

import (
	"testing"
	"time"
)

// The services parse SOAP envelopes, WS-Discovery datagrams and Digest
// headers from the network: none of them may panic or hang on any input.

func FuzzParseSOAP(f *testing.F) {
	f.Add([]byte(envelope(wsseHeader(testUser, testPass, time.Unix(1700000000, 0), []byte("0123456789abcdef")), getDeviceInformation)))
	f.Add([]byte(envelope("", `<trt:GetStreamUri><trt:ProfileToken>main</trt:ProfileToken></trt:GetStreamUri>`)))
	f.Add([]byte(envelope("", `<tds:GetCapabilities><tds:Category>All</tds:Category><tds:Category>Media</tds:Category></tds:GetCapabilities>`)))
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body></s:Envelope>`))
	f.Add([]byte(`<s:Envelope xmlns:s="` + nsEnv + `"><s:Body></s:Body></s:Envelope>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseSOAP(data)
		if err == nil && (r == nil || r.Action == "") {
			t.Fatalf("no error but no action: %+v", r)
		}
	})
}

func FuzzParseProbe(f *testing.F) {
	f.Add(probeMsg("urn:uuid:1", "dn:NetworkVideoTransmitter", ""))
	f.Add(probeMsg("urn:uuid:2", "tds:Device dn:NetworkVideoTransmitter", "onvif://www.onvif.org/name/x"))
	f.Add(probeMsg("urn:uuid:3", "", ""))
	f.Add(probeMsg("urn:uuid:4", "x:Unknown:Extra", ""))
	f.Add([]byte(`<Envelope xmlns="` + nsEnv + `"><Body><Hello xmlns="` + nsWSD + `"/></Body></Envelope>`))
	s, err := New(Options{Username: "u", Password: "p"})
	if err != nil {
		f.Fatal(err)
	}
	c := s.Cameras()[0]
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseProbe(data)
		if err != nil {
			return
		}
		p.matches(c)
	})
}

func FuzzParseDigestAuth(f *testing.F) {
	f.Add(`Digest username="admin", realm="camsim", nonce="00ff", uri="/onvif/device_service", qop=auth, nc=00000001, cnonce="ab", response="00"`)
	f.Add(`Digest algorithm=MD5,realm="x",qop="auth,auth-int",nonce="36160F746AFA5913"`)
	f.Add(`Basic YWRtaW46YWRtaW4=`)
	f.Add(`Digest a="unterminated`)
	f.Fuzz(func(t *testing.T, h string) {
		p, ok := parseDigestAuth(h)
		if ok && p == nil {
			t.Fatal("ok without parameters")
		}
	})
}
