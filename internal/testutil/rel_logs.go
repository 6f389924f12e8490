package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// LogDirEnv names the directory where tests keep every log they capture, so
// that scripts/scan-secrets.sh can scan the whole suite's output for the
// strings in testdata/test-secrets.txt. Unset: logs are not kept.
const LogDirEnv = "CAMWARDEN_TEST_LOGDIR"

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// logFile is an io.Writer over one file; writes after the test ended (a
// process still flushing) are dropped rather than failing.
type logFile struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	if _, err := l.f.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.f.Close()
	}
}

// LogFile returns a writer that keeps what a test captured (a daemon's log,
// a CLI's output) in $CAMWARDEN_TEST_LOGDIR/<test>-<name>.log when that
// variable is set, and discards it otherwise. Use it as the second half of
// a tee: io.MultiWriter(buf, testutil.LogFile(t, "daemon")), or TeeLog.
// The file is closed when the test ends; it is safe for concurrent writers.
func LogFile(t testing.TB, name string) io.Writer {
	t.Helper()
	dir := os.Getenv(LogDirEnv)
	if dir == "" {
		return io.Discard
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("%s: %v", LogDirEnv, err)
	}
	base := unsafeName.ReplaceAllString(t.Name(), "_") + "-" + unsafeName.ReplaceAllString(name, "_")
	for i := 1; ; i++ {
		p := filepath.Join(dir, base+".log")
		if i > 1 {
			p = filepath.Join(dir, fmt.Sprintf("%s-%d.log", base, i))
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if os.IsExist(err) {
			continue
		}
		if err != nil {
			t.Fatalf("keeping test log: %v", err)
		}
		lf := &logFile{f: f}
		t.Cleanup(lf.close)
		return lf
	}
}

// TeeLog returns a writer that writes to w and to LogFile(t, name).
func TeeLog(t testing.TB, name string, w io.Writer) io.Writer {
	t.Helper()
	lf := LogFile(t, name)
	if lf == io.Discard {
		return w
	}
	return io.MultiWriter(w, lf)
}

// SecretsFile is testdata/test-secrets.txt: every password and key the
// repository's tests use, one a line ('#' comments and blank lines aside).
func SecretsFile() string { return filepath.Join(RepoRoot(), "testdata", "test-secrets.txt") }

// TestSecrets reads SecretsFile.
func TestSecrets(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(SecretsFile())
	if err != nil {
		t.Fatalf("test secrets: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("test secrets: %v", err)
	}
	return out
}

// SecretForms lists the spellings under which a secret may leak into text:
// as is, query-escaped, path-escaped and userinfo-escaped (as in a URL).
func SecretForms(secret string) []string {
	forms := []string{secret}
	for _, f := range []string{url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("u", secret).String()[2:]} {
		dup := false
		for _, g := range forms {
			dup = dup || g == f
		}
		if !dup {
			forms = append(forms, f)
		}
	}
	return forms
}

// CheckNoSecrets fails t if text holds any of secrets in any SecretForms
// spelling. what names the text in the failure, which never shows the
// secret itself.
func CheckNoSecrets(t testing.TB, what, text string, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		for _, f := range SecretForms(s) {
			if strings.Contains(text, f) {
				t.Errorf("%s holds test secret #%d (%d chars)", what, i+1, len(s))
				break
			}
		}
	}
}
