package directory

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// slapd is a real OpenLDAP server on 127.0.0.1, configured and filled by
// the test, stopped by its PID when the test ends.
type slapd struct {
	t      *testing.T
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	pwFile string
}

func (s *slapd) url() string { return fmt.Sprintf("ldap://127.0.0.1:%d", s.port) }

func startSlapd(t *testing.T) *slapd {
	t.Helper()
	bin := "/usr/sbin/slapd"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("slapd is not installed (apt-get install slapd ldap-utils; .ci/run installs them): %v", err)
	}
	dir := t.TempDir()
	s := &slapd{t: t, dir: dir, port: testutil.FreePort(t), pwFile: filepath.Join(dir, "admin.pw")}
	must(t, os.MkdirAll(filepath.Join(dir, "db"), 0o700))
	must(t, os.WriteFile(s.pwFile, []byte(adminPassword), 0o600))
	// The ACLs are a real site's: only the service account may search,
	// passwords are only ever usable to bind.
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
database mdb
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
maxsize 10485760
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="%[5]s" read by self read by * none
`, dir, suffix, adminDN, adminPassword, svcDN)
	confPath := filepath.Join(dir, "slapd.conf")
	must(t, os.WriteFile(confPath, []byte(conf), 0o600))
	s.start(confPath)
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

func (s *slapd) start(confPath string) {
	t := s.t
	var errBuf bytes.Buffer
	cmd := exec.Command("/usr/sbin/slapd", "-f", confPath, "-h", s.url()+"/", "-d", "0")
	log := testutil.LogFile(t, "slapd")
	cmd.Stdout, cmd.Stderr = log, &teeWriter{w: &errBuf, also: log}
	must(t, cmd.Start())
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	ok := testutil.Poll(15*time.Second, func() bool {
		select {
		case <-s.exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		return false
	})
	select {
	case <-s.exited:
		t.Fatalf("slapd exited at start: %s", errBuf.String())
	default:
	}
	if !ok {
		t.Fatal("slapd did not listen within 15 s")
	}
}

// stop ends slapd by its own PID and waits for it.
func (s *slapd) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// ldapmodify applies LDIF as the admin with OpenLDAP's own client; the
// admin password goes by file, never argv.
func (s *slapd) ldapmodify(mode, ldif string) {
	s.t.Helper()
	args := []string{"-x", "-H", s.url(), "-D", adminDN, "-y", s.pwFile}
	if mode != "" {
		args = append(args, mode)
	}
	cmd := exec.Command("ldapmodify", args...)
	cmd.Stdin = strings.NewReader(ldif)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("ldapmodify: %v\n%s", err, out)
	}
}

type teeWriter struct {
	w    *bytes.Buffer
	also interface{ Write([]byte) (int, error) }
}

func (s *teeWriter) Write(p []byte) (int, error) {
	s.also.Write(p)
	return s.w.Write(p)
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
