package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/camwarden/camwarden/internal/testutil"
)

// The identity commands with the real binaries: a directory configured and
// tested against a real slapd, an issuer whose JWKS a test server serves, a
// token checked and revoked. Secrets go by stdin only and appear in no
// output, log or audit entry.
func TestIdentityCommandsWithRealDirectoryAndIssuer(t *testing.T) {
	const (
		suffix  = "dc=e2e,dc=test"
		svcDN   = "cn=svc," + suffix
		adminPW = "e2e-slapd-Admin-Pw-5190" // all in testdata/test-secrets.txt
		svcPW   = "e2e-svc-Bind-Pw-3377"
		userPW  = "e2e-gina-Dir-Pw-6604"
	)
	sl := testutil.StartSlapd(t, testutil.SlapdConfig{Suffix: suffix, AdminDN: "cn=admin," + suffix, AdminPassword: adminPW, ServiceDN: svcDN})
	sl.Modify("-a", "dn: "+suffix+"\nobjectClass: dcObject\nobjectClass: organization\no: e2e\ndc: e2e\n\n"+
		"dn: "+svcDN+"\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: svc\nuserPassword: "+svcPW+"\n\n"+
		"dn: uid=gina,"+suffix+"\nobjectClass: inetOrgPerson\nuid: gina\ncn: gina\nsn: g\nuserPassword: "+userPW+"\n\n"+
		"dn: cn=guards,"+suffix+"\nobjectClass: groupOfNames\ncn: guards\nmember: uid=gina,"+suffix+"\n")

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "e2e-1"}})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(doc) }))
	t.Cleanup(jwks.Close)

	d := startDaemon(t, "")
	d.must("", "group", "add", "guards")
	d.must(svcPW+"\n", "directory", "set", "--url", sl.URL, "--bind-dn", svcDN, "--password-stdin", "--base-dn", suffix,
		"--user-filter", "(uid=%s)", "--timeout", "2s", "--sync-interval", "2s")
	d.must("", "group", "map", "guards", "--directory-group", "cn=guards,"+suffix)
	out := d.must(userPW+"\n", "directory", "test", "gina", "--password-stdin")
	if !strings.Contains(out, "uid=gina,"+suffix) || !regexpMatch(`camwarden groups\s+guards`, out) {
		t.Fatalf("directory test:\n%s", out)
	}
	if out, code := d.cli("wrong-password\n", "directory", "test", "gina", "--password-stdin"); code == 0 || !strings.Contains(out, "wrong user name or password") {
		t.Fatalf("wrong password: exit %d\n%s", code, out)
	}
	out = d.must("", "directory", "show")
	if !regexpMatch(`bind password\s+set`, out) || !regexpMatch(`sync interval\s+2s`, out) {
		t.Fatalf("directory show:\n%s", out)
	}

	d.must("", "issuer", "add", "portal", "--jwks-url", jwks.URL+"/jwks.json", "--audience", "nvr-e2e", "--iss", "https://portal.e2e/")
	d.must("", "group", "map", "guards", "--issuer", "portal", "--claim-value", "g-team")
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "https://portal.e2e/", "aud": "nvr-e2e", "sub": "hal",
		"groups": []string{"g-team"}, "jti": "e2e-jti-1", "exp": time.Now().Add(5 * time.Minute).Unix()})
	tok.Header["kid"] = "e2e-1"
	raw, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	var checked string
	testutil.WaitFor(t, 20*time.Second, "token check to pass", func() bool {
		o, code := d.cli(raw+"\n", "token", "check", "--token-stdin")
		checked = o
		return code == 0
	})
	if !regexpMatch(`subject\s+hal`, checked) || !regexpMatch(`camwarden groups\s+guards`, checked) {
		t.Fatalf("token check:\n%s", checked)
	}
	out = d.must("", "issuer", "list")
	if !regexpMatch(`portal\s+https://portal.e2e/\s+nvr-e2e\s+\S+\s+1\s`, out) {
		t.Fatalf("issuer list:\n%s", out)
	}
	d.must("", "token", "revoke", "e2e-jti-1")
	if out, code := d.cli(raw+"\n", "token", "check", "--token-stdin"); code == 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked token: exit %d\n%s", code, out)
	}

	audit := d.must("", "--json", "audit", "list")
	for _, want := range []string{"directory.set", "directory.test", "issuer.add", "group.map", "token.check", "token.revoke"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	secrets := []string{svcPW, userPW, adminPW, raw[len(raw)-24:]}
	testutil.CheckNoSecrets(t, "CLI output", d.output.String(), secrets)
	testutil.CheckNoSecrets(t, "daemon log", d.logs.String(), secrets)
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
