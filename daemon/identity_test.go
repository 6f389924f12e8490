package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/daemon/identity/directory"
	"github.com/camwarden/camwarden/internal/testutil"
	"github.com/camwarden/camwarden/store"
)

const dirBindSecret = "daemon-Dir-Bind-Pw-6142" // in testdata/test-secrets.txt

func apiCode(err error) string {
	var ae *apitype.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// A JWKS served on 127.0.0.1 with a key the test generates.
func serveJWKS(t *testing.T) string {
	url, _ := serveJWKSKey(t)
	return url
}

// serveJWKSKey also returns the private key, to sign tokens with (kid "k1").
func serveJWKSKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{j.Marshal()}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(doc) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks.json", priv
}

func TestIssuersAndGroupMapsThroughTheAPI(t *testing.T) {
	td := startTestDaemon(t)
	cl, ctx := td.client, context.Background()
	jwks := serveJWKS(t)
	req := apitype.IssuerAddRequest{Name: "portal", Issuer: "https://portal.test/", Audience: "box-1", JWKSURL: jwks}
	if _, err := cl.IssuerAdd(ctx, req); err != nil {
		t.Fatal(err)
	}
	// the verifier follows at once: the issuer's key is read
	testutil.WaitFor(t, 20*time.Second, "the issuer's JWKS to be read", func() bool {
		l, err := cl.IssuerList(ctx)
		return err == nil && len(l.Issuers) == 1 && l.Issuers[0].Keys == 1 && l.Issuers[0].LastError == ""
	})
	l, _ := cl.IssuerList(ctx)
	if is := l.Issuers[0]; is.SubjectClaim != "sub" || is.GroupsClaim != "groups" || is.Issuer != "https://portal.test/" || is.LastRefresh.IsZero() {
		t.Fatalf("issuer %+v", is)
	}
	if _, err := cl.IssuerAdd(ctx, req); apiCode(err) != apitype.CodeConflict {
		t.Fatalf("duplicate issuer: %v", err)
	}
	for _, bad := range []apitype.IssuerAddRequest{
		{Name: "x", Audience: "a", JWKSURL: "ftp://h/jwks"},
		{Name: "x", Audience: "a"},
		{Name: "x", JWKSURL: jwks},
		{Name: "Bad Name", Audience: "a", JWKSURL: jwks},
		{Name: "x", Audience: "a", JWKSFile: "relative.json"},
	} {
		if _, err := cl.IssuerAdd(ctx, bad); apiCode(err) != apitype.CodeInvalid {
			t.Fatalf("issuer %+v: %v, want invalid", bad, err)
		}
	}

	m := apitype.GroupMapping{Group: "guards", Issuer: "portal", ClaimValue: "site-7"}
	if _, err := cl.GroupMapAdd(ctx, m); apiCode(err) != apitype.CodeNotFound {
		t.Fatalf("mapping onto a missing group: %v", err)
	}
	if _, err := cl.GroupAdd(ctx, "guards"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupMapAdd(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupMapAdd(ctx, m); apiCode(err) != apitype.CodeConflict {
		t.Fatalf("duplicate mapping: %v", err)
	}
	if _, err := cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "guards", DirectoryGroup: "not a dn"}); apiCode(err) != apitype.CodeInvalid {
		t.Fatalf("mapping from a non-DN: %v", err)
	}
	if _, err := cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "guards", DirectoryGroup: "cn=g,dc=test"}); apiCode(err) != apitype.CodeNotFound {
		t.Fatalf("directory mapping without a directory: %v", err)
	}
	ms, err := cl.GroupMapList(ctx)
	if err != nil || len(ms.Mappings) != 1 || ms.Mappings[0] != m {
		t.Fatalf("mappings %+v %v", ms, err)
	}
	if _, err := cl.IssuerRemove(ctx, "portal"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := cl.GroupMapList(ctx); len(ms.Mappings) != 0 {
		t.Fatalf("the removed issuer's mappings stayed: %+v", ms)
	}
	if st := td.d.identity.verifier.Status(); len(st) != 0 {
		t.Fatalf("the verifier still has issuers: %v", st)
	}
}

func TestDirectoryAndTokenRevokeThroughTheAPI(t *testing.T) {
	td := startTestDaemon(t)
	cl, ctx := td.client, context.Background()
	req := apitype.DirectorySetRequest{URL: "ldaps://dc1.example.test", BindDN: "cn=svc,dc=example,dc=test",
		BaseDN: "ou=people,dc=example,dc=test", UserFilter: "(sAMAccountName=%s)", SyncIntervalMS: 2000}
	if _, err := cl.DirectorySet(ctx, req); apiCode(err) != apitype.CodeInvalid || !strings.Contains(err.Error(), "bind password") {
		t.Fatalf("directory without a bind password: %v", err)
	}
	req.BindPassword = dirBindSecret
	if _, err := cl.DirectorySet(ctx, req); err != nil {
		t.Fatal(err)
	}
	// a change without the password keeps it
	req.BindPassword, req.GroupFilter = "", "(&(objectClass=group)(member=%s))"
	if _, err := cl.DirectorySet(ctx, req); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(r *apitype.DirectorySetRequest){
		func(r *apitype.DirectorySetRequest) { r.URL = "http://dc1" },
		func(r *apitype.DirectorySetRequest) { r.UserFilter = "(uid=alice)" },
		func(r *apitype.DirectorySetRequest) { r.BaseDN = "people" },
		func(r *apitype.DirectorySetRequest) { r.CAFile = "/nonexistent/ca.pem" },
	} {
		r := req
		bad(&r)
		if _, err := cl.DirectorySet(ctx, r); apiCode(err) != apitype.CodeInvalid {
			t.Fatalf("directory %+v: %v, want invalid", r, err)
		}
	}
	dir, err := cl.DirectoryShow(ctx)
	if err != nil || !dir.Configured || !dir.HasBindPassword || dir.GroupFilter == "" || dir.SyncIntervalMS != 2000 {
		t.Fatalf("directory %+v %v", dir, err)
	}
	shown, _ := json.Marshal(dir)
	if strings.Contains(string(shown), dirBindSecret) {
		t.Fatal("the bind password is in the API response")
	}
	if _, err := cl.GroupAdd(ctx, "guards"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "guards", DirectoryGroup: "CN=Guards,OU=Groups,DC=example,DC=test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DirectoryClear(ctx); err != nil {
		t.Fatal(err)
	}
	if ms, _ := cl.GroupMapList(ctx); len(ms.Mappings) != 0 {
		t.Fatalf("directory mappings stayed: %+v", ms)
	}

	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := cl.TokenRevoke(ctx, apitype.TokenRevokeRequest{JTI: "jti-42", Until: until}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.TokenRevoke(ctx, apitype.TokenRevokeRequest{JTI: "jti-old", Until: time.Now().Add(-time.Minute)}); apiCode(err) != apitype.CodeInvalid {
		t.Fatalf("revocation in the past: %v", err)
	}
	if got := td.d.identity.verifier.Revocations(); !got["jti-42"].Equal(until) {
		t.Fatalf("verifier revocations %v", got)
	}

	audit, err := cl.AuditList(ctx, apitype.AuditListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Action)
	}
	all := strings.Join(actions, " ")
	for _, want := range []string{"directory.set", "group.map", "directory.clear", "token.revoke"} {
		if !strings.Contains(all, want) {
			t.Fatalf("audit lacks %s: %s", want, all)
		}
	}
	text, _ := json.Marshal(audit)
	testutil.CheckNoSecrets(t, "audit list", string(text), []string{dirBindSecret})
}

// directory test goes through the daemon's own directory, built from the
// stored configuration (sealed bind password, CA-less ldap:// here), against
// a real slapd: login, mapped groups, wrong password, slapd stopped.
func TestDirectoryTestAgainstRealSlapd(t *testing.T) {
	const (
		suffix = "dc=nvr,dc=test"
		svcDN  = "cn=svc," + suffix
		admin  = "daemon-slapd-Admin-Pw-8802" // in testdata/test-secrets.txt
		svcPW  = "daemon-svc-Bind-Pw-2290"
		userPW = "daemon-dave-Dir-Pw-4471"
	)
	sl := testutil.StartSlapd(t, testutil.SlapdConfig{Suffix: suffix, AdminDN: "cn=admin," + suffix, AdminPassword: admin, ServiceDN: svcDN})
	sl.Modify("-a", `dn: `+suffix+`
objectClass: dcObject
objectClass: organization
o: nvr
dc: nvr

dn: `+svcDN+`
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: `+svcPW+`

dn: uid=dave,`+suffix+`
objectClass: inetOrgPerson
uid: dave
cn: dave
sn: d
userPassword: `+userPW+`

dn: cn=Guards,`+suffix+`
objectClass: groupOfNames
cn: Guards
member: uid=dave,`+suffix+`
`)
	td := startTestDaemon(t)
	cl, ctx := td.client, context.Background()
	if _, err := cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "dave", Password: userPW}); apiCode(err) != apitype.CodeNotFound {
		t.Fatalf("test without a directory: %v", err)
	}
	if _, err := cl.DirectorySet(ctx, apitype.DirectorySetRequest{URL: sl.URL, BindDN: svcDN, BindPassword: svcPW, BaseDN: suffix,
		UserFilter: "(uid=%s)", TimeoutMS: 2000}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupAdd(ctx, "guards"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "guards", DirectoryGroup: "CN=guards," + strings.ToUpper(suffix)}); err != nil {
		t.Fatal(err)
	}
	r, err := cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "dave", Password: userPW})
	if err != nil {
		t.Fatal(err)
	}
	if r.DN != "uid=dave,"+suffix || len(r.Groups) != 1 || len(r.MappedGroups) != 1 || r.MappedGroups[0] != "guards" {
		t.Fatalf("directory test %+v", r)
	}
	if _, err := cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "dave", Password: svcPW}); apiCode(err) != apitype.CodeUnauthorized {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "*", Password: userPW}); apiCode(err) != apitype.CodeUnauthorized {
		t.Fatalf("wildcard user: %v", err)
	}
	sl.Stop()
	start := time.Now()
	_, err = cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "dave", Password: userPW})
	if apiCode(err) != apitype.CodeUnavailable || !strings.Contains(err.Error(), "connection refused") || time.Since(start) > 2*time.Second {
		t.Fatalf("slapd stopped: %v after %s", err, time.Since(start))
	}
	// local users are not touched by any of it
	if _, err := cl.UserAdd(ctx, apitype.UserAddRequest{Name: "local", Password: "local-user-Pw-1"}); err != nil {
		t.Fatal(err)
	}
	text, _ := json.Marshal(r)
	testutil.CheckNoSecrets(t, "directory test answer", string(text)+err.Error(), []string{svcPW, userPW, admin})
}

func TestMappedGroups(t *testing.T) {
	maps := []store.GroupMapping{
		{Group: "guards", DirectoryGroup: "CN=Guards, OU=Groups,DC=test"},
		{Group: "night", DirectoryGroup: "cn=night,ou=groups,dc=test"},
		{Group: "guards", Issuer: "portal", Value: "site-7"},
		{Group: "ops", Issuer: "portal", Value: "Ops"},
		{Group: "ops", Issuer: "other", Value: "site-7"},
	}
	if got := mappedDirectoryGroups(maps, []string{directory.CanonicalDN("cn=guards,ou=groups,dc=test"), "cn=x,dc=test"}); !slices.Equal(got, []string{"guards"}) {
		t.Fatalf("directory groups %v", got)
	}
	if got := mappedTokenGroups(maps, "portal", []string{"site-7", "ops"}); !slices.Equal(got, []string{"guards"}) {
		t.Fatalf("token groups %v (claim values compare exactly, per issuer)", got)
	}
	if got := mappedTokenGroups(maps, "portal", nil); len(got) != 0 {
		t.Fatalf("no claims: %v", got)
	}
}

// token check verifies through the daemon's verifier with a stored issuer
// whose JWKS a test server on 127.0.0.1 serves; the token never reaches the
// log or the audit.
func TestTokenCheckThroughTheDaemon(t *testing.T) {
	td := startTestDaemon(t)
	cl, ctx := td.client, context.Background()
	jwks, priv := serveJWKSKey(t)
	if _, err := cl.IssuerAdd(ctx, apitype.IssuerAddRequest{Name: "portal", Issuer: "https://portal.test/", Audience: "nvr-1", JWKSURL: jwks}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupAdd(ctx, "guards"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "guards", Issuer: "portal", ClaimValue: "site-1-guards"}); err != nil {
		t.Fatal(err)
	}
	sign := func(exp time.Time, jti string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "https://portal.test/", "aud": "nvr-1", "sub": "erin",
			"groups": []string{"site-1-guards", "other"}, "jti": jti, "exp": exp.Unix(), "iat": time.Now().Unix()})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(time.Now().Add(10*time.Minute), "jti-erin")
	var r *apitype.TokenCheckResult
	testutil.WaitFor(t, 20*time.Second, "the token to verify", func() bool {
		var err error
		r, err = cl.TokenCheck(ctx, apitype.TokenCheckRequest{Token: good})
		return err == nil
	})
	if r.Issuer != "portal" || r.Subject != "erin" || r.JTI != "jti-erin" || r.KeyID != "k1" || !slices.Equal(r.MappedGroups, []string{"guards"}) {
		t.Fatalf("token check %+v", r)
	}
	expired := sign(time.Now().Add(-time.Minute), "jti-old")
	if _, err := cl.TokenCheck(ctx, apitype.TokenCheckRequest{Token: expired}); apiCode(err) != apitype.CodeUnauthorized || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := cl.TokenRevoke(ctx, apitype.TokenRevokeRequest{JTI: "jti-erin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.TokenCheck(ctx, apitype.TokenCheckRequest{Token: good}); apiCode(err) != apitype.CodeUnauthorized || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked token: %v", err)
	}
	audit, err := cl.AuditList(ctx, apitype.AuditListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := json.Marshal(audit)
	if !strings.Contains(string(text), "portal:erin") {
		t.Fatalf("the audit does not name the token's issuer and subject: %s", text)
	}
	for _, tok := range []string{good, expired} {
		if strings.Contains(string(text), tok[len(tok)-20:]) {
			t.Fatal("a token reached the audit log")
		}
	}
}

// The daemon runs the directory's sync at the stored interval: a watched
// user removed from a mapped group in slapd is reported (logged and
// audited) at the next pass. Nothing is watched until the auth path is
// wired, so the test watches the user itself.
func TestDirectorySyncRunsInTheDaemon(t *testing.T) {
	const (
		suffix = "dc=sync,dc=test"
		svcDN  = "cn=svc," + suffix
		admin  = "daemon-slapd-Admin-Pw-8802"
		svcPW  = "daemon-svc-Bind-Pw-2290"
		userPW = "daemon-dave-Dir-Pw-4471"
	)
	sl := testutil.StartSlapd(t, testutil.SlapdConfig{Suffix: suffix, AdminDN: "cn=admin," + suffix, AdminPassword: admin, ServiceDN: svcDN})
	sl.Modify("-a", "dn: "+suffix+"\nobjectClass: dcObject\nobjectClass: organization\no: s\ndc: sync\n\n"+
		"dn: "+svcDN+"\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: svc\nuserPassword: "+svcPW+"\n\n"+
		"dn: uid=dave,"+suffix+"\nobjectClass: inetOrgPerson\nuid: dave\ncn: dave\nsn: d\nuserPassword: "+userPW+"\n\n"+
		"dn: uid=ed,"+suffix+"\nobjectClass: inetOrgPerson\nuid: ed\ncn: ed\nsn: e\nuserPassword: "+userPW+"\n\n"+
		"dn: cn=guards,"+suffix+"\nobjectClass: groupOfNames\ncn: guards\nmember: uid=dave,"+suffix+"\nmember: uid=ed,"+suffix+"\n")
	td := startTestDaemon(t)
	cl, ctx := td.client, context.Background()
	if _, err := cl.DirectorySet(ctx, apitype.DirectorySetRequest{URL: sl.URL, BindDN: svcDN, BindPassword: svcPW, BaseDN: suffix,
		UserFilter: "(uid=%s)", TimeoutMS: 2000, SyncIntervalMS: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupAdd(ctx, "guards"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GroupMapAdd(ctx, apitype.GroupMapping{Group: "guards", DirectoryGroup: "cn=guards," + suffix}); err != nil {
		t.Fatal(err)
	}
	syncer := td.d.identity.syncerNow()
	if syncer == nil {
		t.Fatal("no directory syncer")
	}
	for _, name := range []string{"dave", "ed"} {
		u, err := td.d.identity.dir.Load().Login(ctx, name, userPW)
		if err != nil {
			t.Fatal(err)
		}
		syncer.Watch(u)
	}
	sl.Modify("", "dn: cn=guards,"+suffix+"\nchangetype: modify\ndelete: member\nmember: uid=dave,"+suffix+"\n")
	var entries []apitype.AuditEntry
	testutil.WaitFor(t, 20*time.Second, "the sync to report dave", func() bool {
		a, err := cl.AuditList(ctx, apitype.AuditListRequest{})
		if err != nil {
			return false
		}
		entries = entries[:0]
		for _, e := range a.Entries {
			if e.Action == "directory.sync" {
				entries = append(entries, e)
			}
		}
		return len(entries) > 0
	})
	if len(entries) != 1 || entries[0].Target != "dave" || !strings.Contains(entries[0].Detail, "mapped groups changed") {
		t.Fatalf("sync audit entries %+v (only dave changed)", entries)
	}
	if _, err := cl.DirectoryClear(ctx); err != nil {
		t.Fatal(err)
	}
	if td.d.identity.syncerNow() != nil || td.d.identity.dir.Load() != nil {
		t.Fatal("the directory and its syncer survived directory clear")
	}
}

// The stored timeout reaches the directory client: against a directory that
// accepts and never answers, the refusal names the configured bound, not
// the 5 s default.
func TestStoredDirectoryTimeoutReachesTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	td := startTestDaemon(t)
	cl, ctx := td.client, context.Background()
	if _, err := cl.DirectorySet(ctx, apitype.DirectorySetRequest{URL: "ldap://" + ln.Addr().String(), BindDN: "cn=svc,dc=test",
		BindPassword: dirBindSecret, BaseDN: "dc=test", TimeoutMS: 700}); err != nil {
		t.Fatal(err)
	}
	if d, _ := cl.DirectoryShow(ctx); d == nil || d.TimeoutMS != 700 {
		t.Fatalf("directory show %+v", d)
	}
	_, err = cl.DirectoryTest(ctx, apitype.DirectoryTestRequest{User: "dave", Password: "any-password"})
	if apiCode(err) != apitype.CodeUnavailable || !strings.Contains(err.Error(), "did not answer within 700ms") {
		t.Fatalf("directory test against a silent directory: %v", err)
	}
}

// directoryConfig carries every stored field that the client has.
func TestDirectoryConfigCarriesEveryStoredField(t *testing.T) {
	rec := store.Directory{URL: "ldap://127.0.0.1:1", StartTLS: true, CAFile: "/ca.pem", BindDN: "cn=svc,dc=test",
		BaseDN: "dc=test", UserFilter: "(uid=%s)", GroupAttribute: "memberOf", GroupFilter: "(member=%s)",
		GroupBaseDN: "ou=groups,dc=test", DisabledFilter: "(locked=TRUE)", Timeout: 700 * time.Millisecond,
		SyncInterval: time.Minute}
	cfg := reflect.ValueOf(directoryConfig(rec, "pw"))
	for i := range cfg.NumField() {
		name := cfg.Type().Field(i).Name
		if name == "TLS" || name == "CacheTTL" { // from the CA file; not stored
			continue
		}
		if cfg.Field(i).IsZero() {
			t.Errorf("directoryConfig leaves %s unset", name)
		}
	}
}
