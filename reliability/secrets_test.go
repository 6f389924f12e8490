package reliability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/internal/testutil"
)

// secretConsts returns the string constants of file whose names say they
// are a password or secret.
func secretConsts(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			lower := strings.ToLower(name.Name)
			if i >= len(vs.Values) || !(strings.Contains(lower, "password") || strings.Contains(lower, "secret")) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out[name.Name] = s
				}
			}
		}
		return true
	})
	return out
}

// TestSecretsList checks testdata/test-secrets.txt: well formed, and it
// holds the secrets the end-to-end suites declare.
func TestSecretsList(t *testing.T) {
	t.Parallel()
	list := testutil.TestSecrets(t)
	seen := map[string]bool{}
	for _, s := range list {
		if len(s) < 5 {
			t.Errorf("a listed secret is shorter than 5 characters (%d): it would match ordinary text", len(s))
		}
		if seen[s] {
			t.Errorf("a secret is listed twice (%d chars)", len(s))
		}
		seen[s] = true
	}
	root := testutil.RepoRoot()
	for _, file := range []string{"e2e/harness_test.go", "reliability/harness_test.go", "reliability/soak_test.go"} {
		consts := secretConsts(t, filepath.Join(root, file))
		if len(consts) == 0 {
			t.Errorf("%s declares no secret constants: has it moved?", file)
		}
		for name, v := range consts {
			if !seen[v] {
				t.Errorf("%s: %s is not in testdata/test-secrets.txt", file, name)
			}
		}
	}
}

// TestScanSecretsScript runs scripts/scan-secrets.sh on planted logs: it
// passes clean ones, fails on every spelling of a secret (as is and
// URL-escaped) in the directory or in the extra go-test output file, names
// the file and never prints the secret.
func TestScanSecretsScript(t *testing.T) {
	t.Parallel()
	script := filepath.Join(testutil.RepoRoot(), "scripts", "scan-secrets.sh")
	run := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(script, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	write := func(dir, name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	clean := t.TempDir()
	write(clean, "daemon.log", "level=info msg=\"camera stream live\" url=rtsp://admin:***@127.0.0.1:554/main\n")
	goOut := write(t.TempDir(), "go-test.out", "ok  \tgithub.com/camwarden/camwarden/e2e\t21.1s\n")
	if out, code := run(clean, goOut); code != 0 {
		t.Fatalf("clean logs: exit %d\n%s", code, out)
	}

	secrets := []string{cameraPassword, "p@ss:w/o%rd #1 ?x", "cam-S3cret:@/%# pw", "bob pw:@/"}
	for _, s := range secrets {
		for i, form := range testutil.SecretForms(s) {
			dir := t.TempDir()
			write(dir, "ok.log", "nothing here\n")
			leak := write(dir, "leaky.log", "dial rtsp://admin:"+form+"@10.0.0.1/x failed\n")
			out, code := run(dir)
			if code != 1 || !strings.Contains(out, leak) {
				t.Errorf("form %d of a secret (%d chars) planted in %s: exit %d\n%s", i, len(s), leak, code, out)
			}
			if strings.Contains(out, s) || strings.Contains(out, form) {
				t.Errorf("the scanner printed the secret it found")
			}
			if strings.Contains(out, filepath.Join(dir, "ok.log")) {
				t.Errorf("the scanner named a clean file")
			}
		}
	}
	leakyOut := write(t.TempDir(), "go-test.out", "--- FAIL: TestX\n    x_test.go:1: password "+userPassword+"\n")
	if out, code := run(clean, leakyOut); code != 1 || !strings.Contains(out, leakyOut) || strings.Contains(out, userPassword) {
		t.Errorf("a secret in the go test output: exit %d\n%s", code, out)
	}
	if _, code := run(filepath.Join(clean, "missing")); code != 2 {
		t.Errorf("a missing directory: exit %d, want 2", code)
	}
}

// TestLogFile checks the tee into $CAMWARDEN_TEST_LOGDIR.
func TestLogFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(testutil.LogDirEnv, dir)
	t.Run("sub/test", func(t *testing.T) {
		var buf testutil.SyncBuffer
		w := testutil.TeeLog(t, "camwardend", &buf)
		w.Write([]byte("line one\n"))
		testutil.LogFile(t, "camwardend").Write([]byte("second file\n"))
	})
	got, err := os.ReadFile(filepath.Join(dir, "TestLogFile_sub_test-camwardend.log"))
	if err != nil || string(got) != "line one\n" {
		t.Errorf("first log: %q %v", got, err)
	}
	got, err = os.ReadFile(filepath.Join(dir, "TestLogFile_sub_test-camwardend-2.log"))
	if err != nil || string(got) != "second file\n" {
		t.Errorf("second log with the same name: %q %v", got, err)
	}
}
