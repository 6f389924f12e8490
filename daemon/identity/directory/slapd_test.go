package directory

import (
	"fmt"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/internal/testutil"
)

// Test secrets (listed in testdata/test-secrets.txt).
const (
	adminPassword = "slapd-Admin-Pw-7731"
	svcPassword   = "svc-Bind-Pw-4417"
	alicePassword = "alice-Dir-Pw-9120"
	bobPassword   = "bob-Dir-Pw-5583"
	oddPassword   = "odd-Dir-Pw-3308"
)

const (
	suffix    = "dc=camwarden,dc=test"
	adminDN   = "cn=admin," + suffix
	svcDN     = "cn=camwarden,ou=services," + suffix
	peopleDN  = "ou=people," + suffix
	guardsDN  = "cn=guards,ou=groups," + suffix
	nightDN   = "cn=night,ou=groups," + suffix
	othersDN  = "cn=others,ou=groups," + suffix
	oddUserID = `o(dd)*\name`
)

// slapd is the test's real OpenLDAP server with its users and groups.
type slapd struct {
	*testutil.Slapd
}

func (s *slapd) url() string { return s.URL }

// ldapmodify applies LDIF as the admin (see testutil.Slapd.Modify).
func (s *slapd) ldapmodify(mode, ldif string) { s.Modify(mode, ldif) }

func (s *slapd) stop() { s.Stop() }

func startSlapd(t *testing.T) *slapd {
	t.Helper()
	s := &slapd{testutil.StartSlapd(t, testutil.SlapdConfig{Suffix: suffix, AdminDN: adminDN, AdminPassword: adminPassword, ServiceDN: svcDN})}
	s.ldapmodify("-a", fmt.Sprintf(`dn: %[1]s
objectClass: dcObject
objectClass: organization
o: camwarden test
dc: camwarden

dn: ou=services,%[1]s
objectClass: organizationalUnit
ou: services

dn: %[2]s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: camwarden
userPassword: %[3]s

dn: %[4]s
objectClass: organizationalUnit
ou: people

dn: ou=groups,%[1]s
objectClass: organizationalUnit
ou: groups
`, suffix, svcDN, svcPassword, peopleDN))
	for _, u := range []struct{ uid, pw string }{{"alice", alicePassword}, {"bob", bobPassword}, {"carol", bobPassword}, {oddUserID, oddPassword}} {
		s.ldapmodify("-a", fmt.Sprintf("dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: test\nuserPassword: %s\n",
			escapeDNValue(u.uid), peopleDN, u.uid, u.uid, u.pw))
	}
	s.ldapmodify("-a", fmt.Sprintf(`dn: %s
objectClass: groupOfNames
cn: guards
member: uid=alice,%[4]s
member: uid=bob,%[4]s

dn: %[2]s
objectClass: groupOfNames
cn: night
member: uid=alice,%[4]s
member: uid=bob,%[4]s

dn: %[3]s
objectClass: groupOfNames
cn: others
member: uid=carol,%[4]s
`, guardsDN, nightDN, othersDN, peopleDN))
	return s
}

func escapeDNValue(v string) string {
	// RFC 4514 specials only: '(' and '*' are plain in a DN
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `+`, `\+`, `"`, `\"`, `<`, `\<`, `>`, `\>`, `;`, `\;`, `=`, `\=`)
	return r.Replace(v)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
