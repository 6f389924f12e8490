package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SlapdConfig describes a test directory: one mdb database under Suffix with
// the memberof overlay (groupOfNames/member -> memberOf), and the ACLs of a
// real site: passwords are usable only to bind, and only ServiceDN (and each
// user for its own entry) may read.
type SlapdConfig struct {
	Suffix        string // e.g. dc=camwarden,dc=test
	AdminDN       string // rootdn
	AdminPassword string
	ServiceDN     string
}

// Slapd is a real OpenLDAP server on 127.0.0.1 started by the test (from the
// Debian slapd package; .ci/run installs it) with a slapd.conf written in
// t.TempDir(), stopped by its own PID when the test ends.
type Slapd struct {
	URL    string
	t      testing.TB
	cfg    SlapdConfig
	pwFile string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartSlapd starts slapd and waits until it listens. The database is empty:
// add the suffix entry and the rest with Modify("-a", ldif).
func StartSlapd(t testing.TB, cfg SlapdConfig) *Slapd {
	t.Helper()
	bin := "/usr/sbin/slapd"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("slapd is not installed (apt-get install slapd ldap-utils; .ci/run installs them): %v", err)
	}
	dir := t.TempDir()
	port := FreePort(t)
	s := &Slapd{URL: fmt.Sprintf("ldap://127.0.0.1:%d", port), t: t, cfg: cfg, pwFile: filepath.Join(dir, "admin.pw")}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.pwFile, []byte(cfg.AdminPassword), 0o600); err != nil {
		t.Fatal(err)
	}
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
`, dir, cfg.Suffix, cfg.AdminDN, cfg.AdminPassword, cfg.ServiceDN)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var errBuf SyncBuffer
	cmd := exec.Command(bin, "-f", confPath, "-h", s.URL+"/", "-d", "0")
	log := LogFile(t, "slapd")
	cmd.Stdout, cmd.Stderr = log, &teeWriter{&errBuf, log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.Stop)
	ok := Poll(15*time.Second, func() bool {
		select {
		case <-s.exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
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
	return s
}

// Stop ends slapd by its own PID and waits for it; later calls do nothing.
func (s *Slapd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// Modify applies LDIF as the admin with OpenLDAP's own ldapmodify (mode "-a"
// adds entries, "" applies changetype records); the admin password goes by
// file, never argv.
func (s *Slapd) Modify(mode, ldif string) {
	s.t.Helper()
	args := []string{"-x", "-H", s.URL, "-D", s.cfg.AdminDN, "-y", s.pwFile}
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
	a, b interface{ Write([]byte) (int, error) }
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.b.Write(p)
	return w.a.Write(p)
}
