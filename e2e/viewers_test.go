package e2e

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/camwarden/camwarden/internal/testutil"
)

// ffmpegReader is a real FFmpeg reading an RTSP URL to nowhere. The URL
// (which may carry a token or a password) reaches FFmpeg through a concat
// list file, never its argv.
type ffmpegReader struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	exited chan struct{}
	at     time.Time // when it exited
}

func startFFmpeg(t *testing.T, rawURL string) *ffmpegReader {
	t.Helper()
	list := filepath.Join(t.TempDir(), "in.ffconcat")
	if err := os.WriteFile(list, []byte("ffconcat version 1.0\nfile '"+rawURL+"'\noption rtsp_transport tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &ffmpegReader{stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "concat", "-safe", "0", "-protocol_whitelist", "file,rtsp,rtsps,tls,tcp,udp,rtp", "-i", list, "-c", "copy", "-f", "null", "-")
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.cmd.Wait()
		r.at = time.Now()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.exited
	})
	return r
}

// redactTokens hides JWTs and URL passwords in FFmpeg's messages (it
// prints the URL).
func redactTokens(s string) string {
	return urlUserinfo.ReplaceAllString(jwtInText.ReplaceAllString(s, "(token)"), "$1://$2:***@")
}

var (
	jwtInText   = regexp.MustCompile(`eyJ[A-Za-z0-9_.%-]+`)
	urlUserinfo = regexp.MustCompile(`(rtsps?)://([^:@/]*):[^@/]*@`)
)

func (r *ffmpegReader) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// waitExit waits for FFmpeg to end and returns when it did.
func (r *ffmpegReader) waitExit(t *testing.T, within time.Duration, what string) time.Time {
	t.Helper()
	select {
	case <-r.exited:
		t.Logf("%s: FFmpeg said: %s", what, redactTokens(r.stderr.String()))
		return r.at
	case <-time.After(within):
		t.Fatalf("%s: FFmpeg still reading after %s", what, within)
		return time.Time{}
	}
}

// sessionBytes is the bytes sent to principal's sessions (0 if none).
func (d *daemonProc) sessionBytes(principal string) (n int, bytes uint64) {
	d.t.Helper()
	out := d.must("", "--json", "session", "list")
	var res struct {
		Sessions []struct {
			User      string `json:"user"`
			BytesSent uint64 `json:"bytes_sent"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		d.t.Fatalf("session list: %v\n%s", err, out)
	}
	for _, s := range res.Sessions {
		if s.User == principal {
			n++
			bytes += s.BytesSent
		}
	}
	return n, bytes
}

// waitStreaming waits until principal has a session that receives bytes.
func (d *daemonProc) waitStreaming(principal string, r *ffmpegReader) {
	d.t.Helper()
	testutil.WaitFor(d.t, 20*time.Second, principal+" streaming", func() bool {
		if r != nil && !r.running() {
			d.t.Fatalf("FFmpeg for %s ended: %s\ndaemon log:\n%s", principal, redactTokens(r.stderr.String()), tail(d.logs.String(), 3000))
		}
		n, b := d.sessionBytes(principal)
		return n > 0 && b > 50_000
	})
}

type jwtIssuer struct {
	priv ed25519.PrivateKey
	url  string
}

func startJWTIssuer(t *testing.T, kid string) *jwtIssuer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(doc) }))
	t.Cleanup(srv.Close)
	return &jwtIssuer{priv: priv, url: srv.URL + "/jwks.json"}
}

func (j *jwtIssuer) sign(t *testing.T, sub, jti string, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "https://portal.e2e/", "aud": "nvr-e2e", "sub": sub,
		"groups": []string{"g-team"}, "jti": jti, "exp": exp.Unix(), "iat": time.Now().Unix()})
	tok.Header["kid"] = "v-1"
	raw, err := tok.SignedString(j.priv)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Token viewers with real FFmpeg readers: one cut within 1 s of its
// token's exp, one cut within 1 s of `camwarden token revoke`, the token
// given as the RTSP password or as ?token=; logins audited with issuer,
// subject and jti; no token in any log or output.
func TestTokenViewersCutAtExpiryAndRevocation(t *testing.T) {
	iss := startJWTIssuer(t, "v-1")
	d := startDaemon(t, "", "--basic-auth", "always")
	d.addCamera("lobby", startCamera(t))
	d.must("", "group", "add", "guards")
	d.must("", "grant", "@guards", "read", "lobby/*")
	d.must("", "issuer", "add", "portal", "--jwks-url", iss.url, "--audience", "nvr-e2e", "--iss", "https://portal.e2e/")
	d.must("", "group", "map", "guards", "--issuer", "portal", "--claim-value", "g-team")
	testutil.WaitFor(t, 20*time.Second, "the issuer's keys", func() bool {
		return regexpMatch(`portal\s+\S+\s+nvr-e2e\s+\S+\s+1\s`, d.must("", "issuer", "list"))
	})

	// exp on a whole second (JWT exp is in seconds), far enough to start streaming
	exp := time.Now().Add(8 * time.Second).Truncate(time.Second).Add(time.Second)
	short := iss.sign(t, "ivy", "jti-short", exp)
	long := iss.sign(t, "jon", "jti-long", time.Now().Add(10*time.Minute))
	host := d.rtsp
	// FFmpeg keeps at most 127 bytes of user:password, too short for a
	// JWT: it gives the token as ?token=. A client without that limit
	// (gortsplib's) gives it as the password, with any user name.
	expiring := startFFmpeg(t, "rtsp://"+host+"/lobby/main?token="+url.QueryEscape(short))
	revoked := startFFmpeg(t, "rtsp://"+host+"/lobby/main?token="+url.QueryEscape(long))
	d.waitStreaming("portal:ivy", expiring)
	d.waitStreaming("portal:jon", revoked)
	inPassword := d.reader("lobby/main", "any-name", long)
	if n, _ := d.sessionBytes("portal:jon"); n != 2 {
		t.Fatalf("portal:jon has %d sessions, want 2 (?token= and the password field)", n)
	}
	if time.Now().After(exp.Add(-time.Second)) {
		t.Fatalf("streaming started too late to measure the cut at exp (machine too slow)")
	}
	at := expiring.waitExit(t, time.Until(exp)+10*time.Second, "token past its exp")
	if late := at.Sub(exp); late > time.Second {
		t.Fatalf("the expired token's reader ended %s after exp (want within 1 s)", late)
	} else {
		t.Logf("reader ended %s after its token's exp", late)
	}
	if !revoked.running() {
		t.Fatalf("the other token's reader ended too: %s", redactTokens(revoked.stderr.String()))
	}
	start := time.Now()
	d.must("", "token", "revoke", "jti-long")
	at = revoked.waitExit(t, 10*time.Second, "revoked token")
	if took := at.Sub(start); took > time.Second {
		t.Fatalf("the revoked token's reader ended %s after token revoke (want within 1 s)", took)
	} else {
		t.Logf("reader ended %s after token revoke", took)
	}
	select {
	case <-inPassword.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the reader with the revoked token in its password field is still connected")
	}
	if n, _ := d.sessionBytes("portal:jon"); n != 0 {
		t.Fatalf("portal:jon still has %d sessions", n)
	}
	// a revoked token logs in no more; neither does a bad one
	again := startFFmpeg(t, "rtsp://"+host+"/lobby/main?token="+url.QueryEscape(long))
	again.waitExit(t, 20*time.Second, "revoked token logging in again")

	audit := d.must("", "--json", "audit", "list")
	for _, want := range []string{`"session.login"`, "portal:ivy", "jti-short", "portal:jon", "jti-long", "session.end"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	secrets := []string{short[len(short)-24:], long[len(long)-24:]}
	testutil.CheckNoSecrets(t, "CLI output", d.output.String()+audit, secrets)
	testutil.CheckNoSecrets(t, "daemon log", d.logs.String(), secrets)
}

// Directory users stream with Basic against a real slapd: one removed from
// the mapped group is cut at the next sync (every 2 s) while the other keeps
// streaming; with slapd stopped the live directory session stays, a new
// directory login is refused with the reason in the log, and a local user
// still logs in and streams.
func TestDirectoryViewersFollowSlapd(t *testing.T) {
	const (
		suffix  = "dc=view,dc=test"
		svcDN   = "cn=svc," + suffix
		adminPW = "e2e-slapd-Admin-Pw-5190" // all in testdata/test-secrets.txt
		svcPW   = "e2e-svc-Bind-Pw-3377"
		userPW  = "e2e-gina-Dir-Pw-6604"
	)
	sl := testutil.StartSlapd(t, testutil.SlapdConfig{Suffix: suffix, AdminDN: "cn=admin," + suffix, AdminPassword: adminPW, ServiceDN: svcDN})
	people := ""
	for _, u := range []string{"gina", "hank", "iris"} {
		people += fmt.Sprintf("dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: x\nuserPassword: %s\n\n", u, suffix, u, u, userPW)
	}
	sl.Modify("-a", "dn: "+suffix+"\nobjectClass: dcObject\nobjectClass: organization\no: v\ndc: view\n\n"+
		"dn: "+svcDN+"\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: svc\nuserPassword: "+svcPW+"\n\n"+people+
		"dn: cn=guards,"+suffix+"\nobjectClass: groupOfNames\ncn: guards\nmember: uid=gina,"+suffix+"\nmember: uid=hank,"+suffix+"\nmember: uid=iris,"+suffix+"\n")

	d := startDaemon(t, "") // basic_auth = tls-only: directory users over RTSPS
	d.addCamera("lobby", startCamera(t))
	d.must("", "group", "add", "guards")
	d.must("", "grant", "@guards", "read", "lobby/*")
	d.must(svcPW+"\n", "directory", "set", "--url", sl.URL, "--bind-dn", svcDN, "--password-stdin", "--base-dn", suffix,
		"--user-filter", "(uid=%s)", "--timeout", "2s", "--sync-interval", "2s")
	d.must("", "group", "map", "guards", "--directory-group", "cn=guards,"+suffix)
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must("", "grant", "alice", "read", "lobby/*")

	host, _ := d.rtspsStatus()
	// Basic only (a directory cannot answer Digest, see README), over RTSPS
	gina := startFFmpeg(t, "rtsps://gina:"+url.QueryEscape(userPW)+"@"+host+"/lobby/main")
	hank := startFFmpeg(t, "rtsps://hank:"+url.QueryEscape(userPW)+"@"+host+"/lobby/main")
	d.waitStreaming("ldap:gina", gina)
	d.waitStreaming("ldap:hank", hank)

	sl.Modify("", "dn: cn=guards,"+suffix+"\nchangetype: modify\ndelete: member\nmember: uid=hank,"+suffix+"\n")
	removed := time.Now()
	at := hank.waitExit(t, 15*time.Second, "directory user removed from the mapped group")
	// The next sync starts within 2 s; a second sync period covers the LDAP
	// search, the kick and FFmpeg's exit on a loaded machine.
	if took := at.Sub(removed); took > 2*2*time.Second+time.Second {
		t.Fatalf("hank was cut %s after the change (sync every 2 s)", took)
	} else {
		t.Logf("hank cut %s after leaving the group (sync every 2 s)", took)
	}
	_, b0 := d.sessionBytes("ldap:gina")
	testutil.WaitFor(t, 10*time.Second, "gina still streaming", func() bool {
		n, b := d.sessionBytes("ldap:gina")
		return gina.running() && n == 1 && b > b0+100_000
	})

	sl.Stop()
	// the live directory session stays; a new directory login is refused
	// (iris has never logged in: no cached bind) with the reason logged
	iris := startFFmpeg(t, "rtsps://iris:"+url.QueryEscape(userPW)+"@"+host+"/lobby/main")
	iris.waitExit(t, 30*time.Second, "directory login with slapd stopped")
	testutil.WaitFor(t, 10*time.Second, "the reason in the log", func() bool {
		return strings.Contains(d.logs.String(), "directory logins refused") && strings.Contains(d.logs.String(), "connection refused")
	})
	// local users log in and stream, promptly
	start := time.Now()
	alice := d.reader("lobby/main", "alice", alicePassword)
	t.Logf("local user streaming %s after login with slapd down", time.Since(start))
	alice.Close()
	// a sync pass with slapd down cuts nobody
	_, b1 := d.sessionBytes("ldap:gina")
	testutil.WaitFor(t, 15*time.Second, "gina streaming through failed syncs", func() bool {
		n, b := d.sessionBytes("ldap:gina")
		return gina.running() && n == 1 && b > b1+300_000 && strings.Contains(d.logs.String(), "directory sync skipped")
	})
	audit := d.must("", "--json", "audit", "list")
	for _, want := range []string{`"session.login"`, "ldap:gina", "uid=gina," + suffix, "directory.sync"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	secrets := []string{svcPW, userPW, adminPW}
	testutil.CheckNoSecrets(t, "CLI output", d.output.String(), secrets)
	testutil.CheckNoSecrets(t, "daemon log", d.logs.String(), secrets)
}

// With the default basic_auth = tls-only, a token goes over RTSPS only:
// GStreamer's rtspsrc with the token as its password reads over RTSPS (and
// is cut by token revoke), while FFmpeg with ?token= over plain RTSP is
// refused without the token being checked.
func TestTokenOverRTSPSByDefault(t *testing.T) {
	needGst := exec.Command("gst-launch-1.0", "--version")
	if err := needGst.Run(); err != nil {
		t.Fatalf("gst-launch-1.0 missing (CI installs gstreamer1.0-tools): %v", err)
	}
	iss := startJWTIssuer(t, "v-1")
	d := startDaemon(t, "")
	d.addCamera("lobby", startCamera(t))
	d.must("", "group", "add", "guards")
	d.must("", "grant", "@guards", "read", "lobby/*")
	d.must("", "issuer", "add", "portal", "--jwks-url", iss.url, "--audience", "nvr-e2e", "--iss", "https://portal.e2e/")
	d.must("", "group", "map", "guards", "--issuer", "portal", "--claim-value", "g-team")
	testutil.WaitFor(t, 20*time.Second, "the issuer's keys", func() bool {
		return regexpMatch(`portal\s+\S+\s+nvr-e2e\s+\S+\s+1\s`, d.must("", "issuer", "list"))
	})
	raw := iss.sign(t, "kim", "jti-gst", time.Now().Add(10*time.Minute))
	tlsAddr, _ := d.rtspsStatus()

	plain := startFFmpeg(t, "rtsp://"+d.rtsp+"/lobby/main?token="+url.QueryEscape(raw))
	plain.waitExit(t, 20*time.Second, "token over plain RTSP with tls-only")
	testutil.WaitFor(t, 5*time.Second, "the refusal in the log", func() bool {
		return strings.Contains(d.logs.String(), "refused a token sent without TLS (basic_auth = tls-only)")
	})

	// the token as rtspsrc's password (its pipeline description would put
	// it in argv: gst-launch reads it from the environment instead)
	gst := exec.Command("sh", "-c", `exec gst-launch-1.0 -q rtspsrc location="$LOC" user-id=viewer user-pw="$TOKEN" tls-validation-flags=0 protocols=tcp ! fakesink`)
	gst.Env = append(os.Environ(), "LOC=rtsps://"+tlsAddr+"/lobby/main", "TOKEN="+raw)
	var gstOut testutil.SyncBuffer
	gst.Stdout, gst.Stderr = &gstOut, &gstOut
	if err := gst.Start(); err != nil {
		t.Fatal(err)
	}
	gstDone := make(chan struct{})
	go func() { gst.Wait(); close(gstDone) }()
	t.Cleanup(func() { gst.Process.Kill(); <-gstDone })
	testutil.WaitFor(t, 20*time.Second, "GStreamer streaming over RTSPS with a token", func() bool {
		n, b := d.sessionBytes("portal:kim")
		return n == 1 && b > 50_000
	})
	start := time.Now()
	d.must("", "token", "revoke", "jti-gst")
	testutil.WaitFor(t, 5*time.Second, "the session closed", func() bool { n, _ := d.sessionBytes("portal:kim"); return n == 0 })
	t.Logf("GStreamer's token session closed %s after token revoke", time.Since(start))
	secrets := []string{raw[len(raw)-24:]}
	testutil.CheckNoSecrets(t, "daemon log", d.logs.String(), secrets)
	testutil.CheckNoSecrets(t, "GStreamer output", gstOut.String(), secrets)
}

// A directory that hangs (a socket on 127.0.0.1 that accepts and never
// answers): directory logins are booked on the per-address throttle (one
// address gets at most 5 checks in flight; the rest are answered 503 at
// once), each refused with 503 within the directory's timeout and the
// reason logged, and a local user logs in and streams meanwhile without
// waiting for any of it.
func TestHangingDirectoryNeverBlocksLocalUsers(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, h := range held {
					h.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	d := startDaemon(t, "", "--basic-auth", "always")
	d.addCamera("lobby", startCamera(t))
	d.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	d.must("", "grant", "alice", "read", "*")
	d.must("e2e-svc-Bind-Pw-3377\n", "directory", "set", "--url", "ldap://"+silent.Addr().String(), "--bind-dn", "cn=svc,dc=hang,dc=test",
		"--password-stdin", "--base-dn", "dc=hang,dc=test", "--user-filter", "(uid=%s)", "--timeout", "3s")

	type result struct {
		status int
		took   time.Duration
	}
	const logins = 8
	results := make(chan result, logins)
	start := time.Now()
	for i := 0; i < logins; i++ {
		go func(i int) {
			dl := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}
			c, err := dl.Dial("tcp", d.rtsp)
			if err != nil {
				results <- result{-1, 0}
				return
			}
			defer c.Close()
			cred := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("dir%d:e2e-gina-Dir-Pw-6604", i)))
			fmt.Fprintf(c, "DESCRIBE rtsp://%s/lobby/main RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic %s\r\n\r\n", d.rtsp, cred)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			st := -1
			if err == nil {
				fmt.Sscanf(line, "RTSP/1.0 %d", &st)
			}
			results <- result{st, time.Since(start)}
		}(i)
	}
	// a local user, meanwhile, from another address
	local := time.Now()
	d.reader("lobby/main", "alice", alicePassword)
	localTook := time.Since(local)
	fast, slow := 0, 0
	var longest time.Duration
	for i := 0; i < logins; i++ {
		r := <-results
		longest = max(longest, r.took)
		if r.status != 503 {
			t.Errorf("a directory login while the directory hangs: status %d after %s, want 503", r.status, r.took)
		}
		if r.took < time.Second {
			fast++
		} else {
			slow++
		}
	}
	t.Logf("local user streaming after %s; directory logins: %d booked (waited for the timeout), %d refused at once; the longest answered after %s",
		localTook, slow, fast, longest)
	if longest > 8*time.Second {
		t.Errorf("a directory login waited %s (the directory's timeout is 3 s)", longest)
	}
	if localTook > 2*time.Second {
		t.Errorf("the local user waited %s (the directory's timeout is 3 s)", localTook)
	}
	if slow > 5 || fast < logins-5 {
		t.Errorf("%d directory logins from one address waited for the directory (at most 5 may be booked)", slow)
	}
	testutil.WaitFor(t, 10*time.Second, "the reason in the log", func() bool {
		return strings.Contains(d.logs.String(), "directory logins refused: directory unavailable")
	})
}
