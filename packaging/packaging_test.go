package packaging

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon"
)

// Paths relative to this package's directory (the test's working directory).
const (
	repoRoot    = ".."
	serviceUnit = "../systemd/camwardend.service"
	socketUnit  = "../systemd/camwardend-rtsp.socket"
	confFile    = "camwardend.conf"
	buildScript = "build-deb.sh"
)

// maxExposure is the CI gate on `systemd-analyze security`: systemd 252 takes
// --threshold as the score times ten, so 15 means 1.5.
const maxExposure = 15

// binDirEnv lets a local run package prebuilt (e.g. stub) binaries while the
// commands are being written. CI leaves it unset: the test builds the real ones.
const binDirEnv = "CAMWARDEN_PACKAGING_BIN_DIR"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (mount namespaces, chroot); CI runs as root")
	}
}

// run runs a command with a deadline and returns stdout and stderr.
func run(ctx context.Context, stdin []byte, name string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ---------------------------------------------------------------- units

// unitSettings parses a unit file into section -> key -> values (in order).
func unitSettings(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: malformed line %q", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServiceUnitSettings pins what the daemon and the product contract rely
// on, so a hardening edit cannot silently drop it.
func TestServiceUnitSettings(t *testing.T) {
	s := unitSettings(t, serviceUnit)["Service"]
	want := map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"ExecStart":               "/usr/bin/camwardend",
		"ExecReload":              "/bin/sh -c 'kill -HUP $MAINPID'",
		"Restart":                 "on-failure",
		"User":                    "camwarden",
		"Group":                   "camwarden",
		"SupplementaryGroups":     "camwarden-admin",
		"StateDirectory":          "camwarden",
		"StateDirectoryMode":      "0700",
		"RuntimeDirectory":        "camwarden",
		"RuntimeDirectoryMode":    "0751",
		"ConfigurationDirectory":  "camwarden",
		"LoadCredential":          "master.key:/etc/camwarden/master.key",
		"UMask":                   "0077",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"PrivateUsers":            "", // must be absent: it would hide camwarden-admin and peer credentials
		"PrivateNetwork":          "", // must be absent: discovery and RTSP need the host network
		"RestrictAddressFamilies": "AF_UNIX AF_NETLINK AF_INET AF_INET6",
	}
	for k, v := range want {
		got, ok := s[k]
		if k == "PrivateUsers" || k == "PrivateNetwork" {
			if ok {
				t.Errorf("%s must not be set, got %q", k, got)
			}
			continue
		}
		if !ok || len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
	if w := s["WatchdogSec"]; len(w) != 1 || w[0] == "" || w[0] == "0" {
		t.Errorf("WatchdogSec = %q, want a positive interval", w)
	}
	if got := unitSettings(t, serviceUnit)["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("WantedBy = %q", got)
	}

	sock := unitSettings(t, socketUnit)["Socket"]
	for k, v := range map[string]string{
		"ListenStream":       "554",
		"FileDescriptorName": "rtsp",
		"Service":            "camwardend.service",
		"Accept":             "no",
	} {
		if got := sock[k]; len(got) != 1 || got[0] != v {
			t.Errorf("socket %s = %q, want %q", k, got, v)
		}
	}
}

// TestUnitsVerify runs `systemd-analyze verify` on the shipped units and fails
// on any complaint. verify exits 0 even on unknown keys, so stderr is the
// verdict; it also insists that ExecStart= exists, so the check runs in a
// private mount namespace where /usr/bin is an overlay holding camwardend.
func TestUnitsVerify(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t, 60*time.Second)
	bins := builtBinaries(t)

	verify := func(t *testing.T, units ...string) (string, error) {
		t.Helper()
		dir := t.TempDir()
		script := `set -e
cow=$1; bin=$2; shift 2
mount -t tmpfs tmpfs "$cow"
mkdir "$cow/up" "$cow/work"
cp "$bin" "$cow/up/camwardend"
mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$cow/up,workdir=$cow/work" /usr/bin
systemd-analyze verify --man=no "$@"`
		args := []string{"-m", "--propagation", "private", "sh", "-c", script, "sh",
			dir, filepath.Join(bins, "camwardend")}
		args = append(args, units...)
		_, stderr, err := run(ctx, nil, "unshare", args...)
		return stderr, err
	}

	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	stderr, err := verify(t, abs(serviceUnit), abs(socketUnit))
	if err != nil || strings.TrimSpace(stderr) != "" {
		t.Fatalf("systemd-analyze verify: err=%v\n%s", err, stderr)
	}

	// The gate must be able to fail: a copy with an unknown key must complain.
	bad := filepath.Join(t.TempDir(), "camwardend.service")
	unit, err := os.ReadFile(serviceUnit)
	if err != nil {
		t.Fatal(err)
	}
	unit = bytes.Replace(unit, []byte("[Service]\n"), []byte("[Service]\nNoSuchSetting=1\n"), 1)
	if err := os.WriteFile(bad, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr, _ = verify(t, bad)
	if !strings.Contains(stderr, "NoSuchSetting") {
		t.Fatalf("verify did not report an unknown key; stderr:\n%s", stderr)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for camwardend\.service: (\d+\.\d)`)

// TestServiceSecurityScore is the hardening gate: exposure 1.5 or lower.
func TestServiceSecurityScore(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	stdout, stderr, err := run(ctx, nil, "systemd-analyze", "security", "--offline=true",
		"--threshold="+strconv.Itoa(maxExposure), "--no-pager", serviceUnit)
	m := exposureRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no exposure level in output (err=%v):\n%s\n%s", err, stdout, stderr)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if err != nil || score*10 > maxExposure+0.001 {
		t.Fatalf("exposure %.1f above %.1f (err=%v):\n%s", score, float64(maxExposure)/10, err, stdout)
	}
}

// TestDefaultConfig checks the shipped conffile: every key of the format,
// each commented out (so the daemon's defaults apply), nothing else.
func TestDefaultConfig(t *testing.T) {
	data, err := os.ReadFile(confFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"state_dir", "socket", "rtsp_addr", "rtsp_udp", "key_file",
		"discovery_interfaces", "discovery_interval", "log_level", "log_format", "admin_group", "metrics_addr",
		"basic_auth", "rtsps_addr", "tls_cert_file", "tls_key_file"}
	setting := regexp.MustCompile(`^#([a-z_]+) =( .*)?$`)
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if !strings.HasPrefix(line, "#") {
			t.Errorf("line %d is not commented out: %q", i+1, line)
			continue
		}
		if m := setting.FindStringSubmatch(line); m != nil {
			seen[m[1]]++
		}
	}
	for _, k := range keys {
		if seen[k] != 1 {
			t.Errorf("key %s appears %d times as '#%s = ...', want once", k, seen[k], k)
		}
		delete(seen, k)
	}
	for k := range seen {
		t.Errorf("unknown key %s in the default config", k)
	}
}

// TestDefaultConfigMatchesDaemon: the shipped file, with every line
// uncommented, must parse and equal the daemon's built-in defaults, and name
// exactly the keys the daemon knows.
func TestDefaultConfigMatchesDaemon(t *testing.T) {
	data, err := os.ReadFile(confFile)
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`(?m)^#([a-z_]+ =.*)$`)
	uncommented := setting.ReplaceAll(data, []byte("$1"))
	path := filepath.Join(t.TempDir(), "camwardend.conf")
	if err := os.WriteFile(path, uncommented, 0o644); err != nil {
		t.Fatal(err)
	}
	kv, err := daemon.ParseConfig(uncommented)
	if err != nil {
		t.Fatalf("uncommented default config: %v", err)
	}
	got, err := daemon.LoadConfig(path, false, nil)
	if err != nil {
		t.Fatalf("uncommented default config: %v", err)
	}
	// key_file has no default value, only a default source: the example
	// line names where systemd puts the credential.
	want := daemon.DefaultConfig()
	want.KeyFile = "/run/credentials/camwardend.service/master.key"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the shipped defaults differ from the daemon's:\n got  %+v\n want %+v", got, want)
	}
	var keys []string
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := daemon.ConfigKeys(); !reflect.DeepEqual(keys, want) {
		t.Errorf("shipped keys %v, daemon keys %v", keys, want)
	}
	// As shipped (all commented out) the file must load too.
	if _, err := daemon.LoadConfig(confFile, false, nil); err != nil {
		t.Errorf("shipped config: %v", err)
	}
}

// TestSysusers checks the sysusers.d file with systemd-sysusers itself,
// against an empty root so the host's accounts are neither read nor written.
func TestSysusers(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := filepath.Abs("../systemd/camwarden.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := run(ctx, nil, "systemd-sysusers", "--dry-run", "--root="+root, conf)
	out := stdout + stderr
	if err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	for _, want := range []string{"Creating group 'camwarden-admin'", "Creating group 'camwarden'",
		"Creating user 'camwarden' (camwarden camera daemon)"} {
		if !strings.Contains(out, want) {
			t.Errorf("systemd-sysusers output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "passwd")); err == nil {
		t.Error("--dry-run wrote a passwd file")
	}
}

// ---------------------------------------------------------------- .deb

var (
	binOnce sync.Once
	binDir  string
	binErr  error

	debOnce sync.Once
	debs    map[string]string // version -> .deb path
	debErr  error
	debTmp  string
)

// TestMain removes the shared build directory after all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if debTmp != "" {
		os.RemoveAll(debTmp)
	}
	os.Exit(code)
}

func sharedTmp() (string, error) {
	if debTmp == "" {
		d, err := os.MkdirTemp("", "camwarden-packaging-test-")
		if err != nil {
			return "", err
		}
		debTmp = d
	}
	return debTmp, nil
}

// builtBinaries builds camwardend and camwarden once, with the Makefile's flags
// so that the build cache `make build` filled is reused.
func builtBinaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if d := os.Getenv(binDirEnv); d != "" {
			binDir = d
			return
		}
		tmp, err := sharedTmp()
		if err != nil {
			binErr = err
			return
		}
		binDir = filepath.Join(tmp, "bin")
		// go test puts its own toolchain first in PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			binErr = err
			return
		}
		version, err := os.ReadFile(filepath.Join(repoRoot, "VERSION"))
		if err != nil {
			binErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath",
			"-ldflags", "-s -w -X main.version="+strings.TrimSpace(string(version)),
			"-o", binDir+"/", "./cmd/camwardend", "./cmd/camwarden")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// builtDebs builds the package twice, as 0.1.0 and 0.1.1, for the upgrade test.
func builtDebs(t *testing.T) map[string]string {
	t.Helper()
	bins := builtBinaries(t)
	debOnce.Do(func() {
		tmp, err := sharedTmp()
		if err != nil {
			debErr = err
			return
		}
		debs = map[string]string{}
		// 0.1.0 is built as shipped (xz) and linted; 0.1.1 only feeds the
		// upgrade test, and gzip saves it ten seconds of xz on a busy machine.
		for _, b := range []struct{ version, compression string }{{"0.1.0", "xz"}, {"0.1.1", "gzip"}} {
			v := b.version
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // xz of the binaries is slow on a loaded 2-core box
			out, stderr, err := run(ctx, nil, "sh", buildScript, "--version", v, "--compression", b.compression,
				"--bin-dir", bins, "--out", filepath.Join(tmp, "dist"), "--arch", "amd64")
			cancel()
			if err != nil {
				debErr = fmt.Errorf("build-deb.sh --version %s: %v\n%s", v, err, stderr)
				return
			}
			debs[v] = strings.TrimSpace(out)
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debs
}

// TestDebContents checks the archive's file list, modes, owners and control data.
func TestDebContents(t *testing.T) {
	deb := builtDebs(t)["0.1.0"]
	if filepath.Base(deb) != "camwarden_0.1.0_amd64.deb" {
		t.Errorf("package file name %q", filepath.Base(deb))
	}
	ctx := testCtx(t, 30*time.Second)
	out, stderr, err := run(ctx, nil, "dpkg-deb", "--contents", deb)
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v\n%s", err, stderr)
	}
	// mode owner path, for every regular file and symlink.
	files := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("unexpected dpkg-deb line %q", line)
		}
		path := strings.TrimPrefix(f[5], ".")
		if f[1] != "root/root" {
			t.Errorf("%s owned by %s, want root/root", path, f[1])
		}
		if !strings.HasSuffix(path, "/") {
			files[path] = f[0]
		}
	}
	want := map[string]string{
		"/usr/bin/camwardend":                              "-rwxr-xr-x",
		"/usr/bin/camwarden":                               "-rwxr-xr-x",
		"/lib/systemd/system/camwardend.service":           "-rw-r--r--",
		"/lib/systemd/system/camwardend-rtsp.socket":       "-rw-r--r--",
		"/usr/lib/sysusers.d/camwarden.conf":               "-rw-r--r--",
		"/etc/camwarden/camwardend.conf":                   "-rw-r--r--",
		"/usr/share/man/man8/camwardend.8.gz":              "-rw-r--r--",
		"/usr/share/man/man1/camwarden.1.gz":               "-rw-r--r--",
		"/usr/share/bash-completion/completions/camwarden": "-rw-r--r--",
		"/usr/share/doc/camwarden/copyright":               "-rw-r--r--",
		"/usr/share/doc/camwarden/grafana-dashboard.json":  "-rw-r--r--",
		"/usr/share/doc/camwarden/prometheus-alerts.yml":   "-rw-r--r--",
		"/usr/share/doc/camwarden/changelog.gz":            "-rw-r--r--",
		"/usr/share/lintian/overrides/camwarden":           "-rw-r--r--",
	}
	for p, mode := range want {
		if got, ok := files[p]; !ok {
			t.Errorf("missing %s", p)
		} else if got != mode {
			t.Errorf("%s mode %s, want %s", p, got, mode)
		}
		delete(files, p)
	}
	for p := range files { // camsim, for one, must not be shipped
		t.Errorf("unexpected file %s in the package", p)
	}

	control, stderr, err := run(ctx, nil, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends")
	if err != nil {
		t.Fatalf("dpkg-deb --field: %v\n%s", err, stderr)
	}
	for _, f := range []string{"Package: camwarden", "Version: 0.1.0", "Architecture: amd64",
		"Depends: passwd, init-system-helpers (>= 1.54~)"} {
		if !strings.Contains(control, f+"\n") {
			t.Errorf("control lacks %q:\n%s", f, control)
		}
	}
	// The bash completion was generated by the built CLI and is valid bash.
	comp, stderr, err := run(ctx, nil, "sh", "-c",
		`dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/share/bash-completion/completions/camwarden`, "sh", deb)
	if err != nil || !strings.Contains(comp, "camwarden") {
		t.Errorf("bash completion missing or empty (%v): %s", err, stderr)
	}
	if _, stderr, err := run(ctx, []byte(comp), "bash", "-n"); err != nil {
		t.Errorf("bash completion does not parse: %v\n%s", err, stderr)
	}

	tmp := t.TempDir()
	if _, stderr, err := run(ctx, nil, "dpkg-deb", "--control", deb, tmp); err != nil {
		t.Fatalf("dpkg-deb --control: %v\n%s", err, stderr)
	}
	conffiles, err := os.ReadFile(filepath.Join(tmp, "conffiles"))
	if err != nil || string(conffiles) != "/etc/camwarden/camwardend.conf\n" {
		t.Errorf("conffiles = %q (%v)", conffiles, err)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(tmp, s))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: %v %v", s, fi.Mode(), err)
		}
	}
}

// TestLintian: no error and no warning other than initial-upload-closes-no-bugs.
func TestLintian(t *testing.T) {
	deb := builtDebs(t)["0.1.0"]
	ctx := testCtx(t, 90*time.Second)
	stdout, stderr, err := run(ctx, nil, "lintian", "--fail-on", "none", deb)
	if err != nil {
		t.Fatalf("lintian: %v\n%s\n%s", err, stdout, stderr)
	}
	var bad []string
	for _, line := range strings.Split(stdout+"\n"+stderr, "\n") {
		if !strings.HasPrefix(line, "E: ") && !strings.HasPrefix(line, "W: ") {
			continue
		}
		if strings.Contains(line, " initial-upload-closes-no-bugs") {
			continue
		}
		bad = append(bad, line)
	}
	if len(bad) > 0 {
		t.Fatalf("lintian:\n%s", strings.Join(bad, "\n"))
	}
}

// ---------------------------------------------------------------- install

// throwawayRoot is a copy-on-write view of the host (/usr, /etc, /var as
// overlays whose upper layers live on a tmpfs) inside a private mount
// namespace held open by a sleep process. Nothing written there reaches the
// host; the namespace and its mounts vanish with the holder process.
type throwawayRoot struct {
	t      *testing.T
	holder *exec.Cmd
	root   string
}

func newThrowawayRoot(t *testing.T, ctx context.Context) *throwawayRoot {
	t.Helper()
	dir := t.TempDir()
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "600")
	// If the test binary dies, the holder (and so the namespace) goes too.
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	r := &throwawayRoot{t: t, holder: holder, root: filepath.Join(dir, "root")}
	t.Cleanup(func() {
		// Killing the only process in the namespace tears down its mounts.
		_ = holder.Process.Signal(syscall.SIGKILL)
		_ = holder.Wait()
	})
	// Wait until the holder has entered its own mount namespace.
	hostNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid))
		if err == nil && ns != hostNS {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unshare holder never entered a new mount namespace (%v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	setup := `set -e
dir=$1; R=$dir/root; W=$dir/cow
mkdir -p "$R" "$W"
mount -t tmpfs -o mode=0755 tmpfs "$W"
mount -t tmpfs -o mode=0755 tmpfs "$R"
for d in usr etc var; do
	mkdir -p "$W/$d.up" "$W/$d.work" "$R/$d"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$d.up,workdir=$W/$d.work" "$R/$d"
done
# Same top-level layout as the host (merged /usr or not).
for d in bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$d" ]; then
		ln -s "$(readlink "/$d")" "$R/$d"
	elif [ -d "/$d" ]; then
		mkdir -p "$W/$d.up" "$W/$d.work" "$R/$d"
		mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$d.up,workdir=$W/$d.work" "$R/$d"
	fi
done
mkdir -p "$R/dev" "$R/proc" "$R/tmp" "$R/run" "$R/root"
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc" 2>/dev/null || mount --rbind /proc "$R/proc"
mount -t tmpfs tmpfs "$R/tmp"
# An empty /run: no /run/systemd/system, so the package must not start anything.
mount -t tmpfs tmpfs "$R/run"
chmod 1777 "$R/tmp"
# Skip man-db's trigger: it only rebuilds a cache and costs seconds.
rm -f "$R/var/lib/man-db/auto-update"
`
	if out, err := r.nsenter(ctx, nil, "sh", "-c", setup, "sh", dir); err != nil {
		t.Fatalf("setting up the throwaway root: %v\n%s", err, out)
	}
	return r
}

// nsenter runs a command in the holder's mount namespace (outside the chroot).
func (r *throwawayRoot) nsenter(ctx context.Context, stdin []byte, args ...string) (string, error) {
	a := append([]string{"-t", strconv.Itoa(r.holder.Process.Pid), "-m", "--"}, args...)
	stdout, stderr, err := run(ctx, stdin, "nsenter", a...)
	return stdout + stderr, err
}

// chroot runs a command inside the throwaway root.
func (r *throwawayRoot) chroot(ctx context.Context, args ...string) (string, error) {
	a := append([]string{"chroot", r.root, "env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}, args...)
	return r.nsenter(ctx, nil, a...)
}

// must runs a command in the chroot and fails the test on error.
func (r *throwawayRoot) must(ctx context.Context, args ...string) string {
	r.t.Helper()
	out, err := r.chroot(ctx, args...)
	if err != nil {
		r.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// exists reports whether path exists in the chroot (without following symlinks).
func (r *throwawayRoot) exists(ctx context.Context, path string) bool {
	_, err := r.chroot(ctx, "test", "-e", path, "-o", "-L", path)
	return err == nil
}

// stat returns "mode owner group type" of a path in the chroot.
func (r *throwawayRoot) stat(ctx context.Context, path string) string {
	r.t.Helper()
	return strings.TrimSpace(r.must(ctx, "stat", "-c", "%a %U %G %F", path))
}

// runDaemon starts the installed camwardend in the root the way
// camwardend.service does — user camwarden, supplementary group
// camwarden-admin, umask 0077, runtime directory 0751, state directory 0700,
// the key as a credential, the shipped config — then checks the admin socket's
// ownership and who may use it, and stops the daemon with SIGTERM.
// Only the RTSP address (127.0.0.1, any port) and discovery (off) differ.
func (r *throwawayRoot) runDaemon(ctx context.Context) {
	t := r.t
	t.Helper()
	const creds = "/run/credentials/camwardend.service"
	// Identity, modes and umask come from the unit, so the check follows it.
	unit := unitSettings(t, serviceUnit)["Service"]
	one := func(k string) string {
		t.Helper()
		if len(unit[k]) != 1 {
			t.Fatalf("unit sets %s %d times", k, len(unit[k]))
		}
		return unit[k][0]
	}
	user, group, groups := one("User"), one("Group"), one("SupplementaryGroups")
	r.must(ctx, "sh", "-c", `set -e
install -d -o $1 -g $2 -m $3 /var/lib/camwarden
install -d -o $1 -g $2 -m $4 /run/camwarden
install -d -o $1 -g $2 -m 0500 `+creds+`
install -o $1 -g $2 -m 0400 /etc/camwarden/master.key `+creds+`/master.key
useradd --no-create-home alice
usermod -a -G camwarden-admin alice
useradd --no-create-home bob`, "sh", user, group, one("StateDirectoryMode"), one("RuntimeDirectoryMode"))

	logPath := filepath.Join(t.TempDir(), "camwardend.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// nsenter, chroot, env, setpriv and sh all exec: the PID is the daemon's.
	daemonCmd := exec.Command("nsenter", "-t", strconv.Itoa(r.holder.Process.Pid), "-m", "--",
		"chroot", r.root, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CREDENTIALS_DIRECTORY="+creds,
		"setpriv", "--reuid="+user, "--regid="+group, "--groups="+strings.ReplaceAll(groups, " ", ","), "--",
		"sh", "-c", "umask "+one("UMask")+" && exec "+one("ExecStart")+" --rtsp-addr 127.0.0.1:0 --rtsps-addr 127.0.0.1:0 --discovery-interfaces none")
	daemonCmd.Stdout, daemonCmd.Stderr = logFile, logFile
	if err := daemonCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemonCmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = daemonCmd.Process.Kill()
			<-exited
		}
	}()
	logText := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}

	deadline := time.Now().Add(20 * time.Second)
	for !r.exists(ctx, "/run/camwarden/admin.sock") {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("camwardend exited (%v) before making its socket:\n%s", err, logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin socket after 20s:\n%s", logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := r.stat(ctx, "/run/camwarden/admin.sock"); got != "660 camwarden camwarden-admin socket" {
		t.Errorf("admin socket: %q", got)
	}
	// Members of camwarden-admin reach the socket through the 0751 directory;
	// others do not get in.
	cli := func(user string) (string, error) {
		return r.chroot(ctx, "setpriv", "--reuid="+user, "--regid="+user, "--init-groups", "--",
			"camwarden", "status")
	}
	if out, err := cli("alice"); err != nil || !strings.Contains(out, "version") {
		t.Errorf("camwarden status as a camwarden-admin member: %v\n%s", err, out)
	}
	if out, err := cli("bob"); err == nil {
		t.Errorf("camwarden status as a non-member succeeded:\n%s", out)
	}
	if out, err := r.chroot(ctx, "camwarden", "status"); err != nil {
		t.Errorf("camwarden status as root: %v\n%s", err, out)
	}

	if err := daemonCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("camwardend exited with %v after SIGTERM:\n%s", err, logText())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("camwardend did not stop within 30s of SIGTERM:\n%s", logText())
	}
	if got := r.stat(ctx, "/var/lib/camwarden/camwarden.db"); got != "600 camwarden camwarden regular file" {
		t.Errorf("database: %q", got)
	}
	// The key never reaches the log.
	key := r.must(ctx, "od", "-An", "-tx1", "-v", "/etc/camwarden/master.key")
	keyHex := strings.Join(strings.Fields(key), "")
	if len(keyHex) != 64 || strings.Contains(strings.ToLower(logText()), keyHex[:16]) {
		t.Errorf("master key hex %d chars, or found in the daemon log", len(keyHex))
	}
}

func hostChecksums(t *testing.T) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, p := range []string{"/var/lib/dpkg/status", "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"} {
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			sums[p] = "absent"
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		sums[p] = hex.EncodeToString(h[:])
	}
	for _, p := range []string{"/etc/camwarden", "/var/lib/camwarden", "/usr/bin/camwardend"} {
		_, err := os.Lstat(p)
		sums[p] = strconv.FormatBool(err == nil)
	}
	return sums
}

// TestMaintainerScriptsFailLoudly: with a deb-systemd-helper whose enable
// (then whose unmask) fails, installing fails with a message naming the
// step, and the package is left unconfigured rather than silently
// "installed" with a service that never starts.
func TestMaintainerScriptsFailLoudly(t *testing.T) {
	requireRoot(t)
	deb := builtDebs(t)["0.1.0"]
	ctx := testCtx(t, 2*time.Minute)
	r := newThrowawayRoot(t, ctx)
	if out, err := r.nsenter(ctx, nil, "cp", deb, filepath.Join(r.root, "tmp", "0.1.0.deb")); err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	helper := r.must(ctx, "sh", "-c", "command -v deb-systemd-helper")
	r.must(ctx, "mv", strings.TrimSpace(helper), "/tmp/real-deb-systemd-helper")
	for _, step := range []struct{ verb, want string }{
		{"enable", "could not enable camwardend.service"},
		{"unmask", "could not unmask camwardend.service"},
	} {
		fake := "#!/bin/sh\nfor a; do [ \"$a\" = " + step.verb + " ] && { echo 'simulated failure' >&2; exit 1; }; done\nexec /tmp/real-deb-systemd-helper \"$@\"\n"
		r.must(ctx, "sh", "-c", `printf '%s' "$1" >"$2" && chmod 755 "$2"`, "sh", fake, strings.TrimSpace(helper))
		out, err := r.chroot(ctx, "dpkg", "-i", "/tmp/0.1.0.deb")
		if err == nil {
			t.Errorf("%s failing: dpkg -i succeeded:\n%s", step.verb, out)
		}
		if !strings.Contains(out, step.want) {
			t.Errorf("%s failing: output lacks %q:\n%s", step.verb, step.want, out)
		}
		st, _ := r.chroot(ctx, "dpkg-query", "-W", "-f=${Status}", "camwarden")
		if strings.Contains(st, "installed") && !strings.Contains(st, "half-configured") {
			t.Errorf("%s failing: package status %q, want half-configured", step.verb, st)
		}
		r.chroot(ctx, "dpkg", "--purge", "--force-all", "camwarden")
	}
}

// TestInstallUpgradeRemovePurge installs the package into a throwaway root,
// upgrades it, removes and purges it, checking files, accounts, the master key
// and the database at each step, and proves the host was not touched.
func TestInstallUpgradeRemovePurge(t *testing.T) {
	requireRoot(t)
	pkgs := builtDebs(t)
	ctx := testCtx(t, 3*time.Minute)
	before := hostChecksums(t)
	defer func() {
		after := hostChecksums(t)
		for p, sum := range before {
			if after[p] != sum {
				t.Errorf("host %s changed (%s -> %s)", p, sum, after[p])
			}
		}
	}()

	r := newThrowawayRoot(t, ctx)
	if r.exists(ctx, "/usr/bin/camwardend") {
		t.Fatal("camwardend already present in the root copied from the host; uninstall it from the host first")
	}
	for v, deb := range pkgs {
		if out, err := r.nsenter(ctx, nil, "cp", deb, filepath.Join(r.root, "tmp", v+".deb")); err != nil {
			t.Fatalf("copy %s: %v\n%s", deb, err, out)
		}
	}
	status := func() string {
		out, _ := r.chroot(ctx, "dpkg-query", "-W", "-f=${Status} ${Version}", "camwarden")
		return strings.TrimSpace(out)
	}
	accounts := func() {
		t.Helper()
		passwd := r.must(ctx, "cat", "/etc/passwd")
		group := r.must(ctx, "cat", "/etc/group")
		users := regexp.MustCompile(`(?m)^camwarden:x:(\d+):(\d+):[^:]*:(/var/lib/camwarden):(/usr/sbin/nologin)$`).FindAllStringSubmatch(passwd, -1)
		if len(users) != 1 {
			t.Fatalf("want one system user camwarden (home /var/lib/camwarden, nologin) in /etc/passwd, got %q", users)
		}
		if uid, _ := strconv.Atoi(users[0][1]); uid == 0 || uid >= 1000 {
			t.Errorf("camwarden uid %d is not a system uid", uid)
		}
		for _, g := range []string{"camwarden", "camwarden-admin"} {
			m := regexp.MustCompile(`(?m)^`+g+`:x:(\d+):`).FindAllStringSubmatch(group, -1)
			if len(m) != 1 {
				t.Fatalf("want one group %s in /etc/group, got %d", g, len(m))
			}
			if gid, _ := strconv.Atoi(m[0][1]); gid == 0 || gid >= 1000 {
				t.Errorf("group %s gid %d is not a system gid", g, gid)
			}
			if g == "camwarden" && m[0][1] != users[0][2] {
				t.Errorf("camwarden's primary gid %s is not group camwarden (%s)", users[0][2], m[0][1])
			}
		}
	}
	keySum := func() string {
		t.Helper()
		return strings.Fields(r.must(ctx, "sha256sum", "/etc/camwarden/master.key"))[0]
	}

	// 1. Fresh install.
	r.must(ctx, "dpkg", "-i", "/tmp/0.1.0.deb")
	if got := status(); got != "install ok installed 0.1.0" {
		t.Fatalf("after install: status %q", got)
	}
	for path, want := range map[string]string{
		"/usr/bin/camwardend":                    "755 root root regular file",
		"/usr/bin/camwarden":                     "755 root root regular file",
		"/etc/camwarden":                         "755 root root directory",
		"/etc/camwarden/master.key":              "600 root root regular file",
		"/etc/camwarden/camwardend.conf":         "644 root root regular file",
		"/lib/systemd/system/camwardend.service": "644 root root regular file",
	} {
		if got := r.stat(ctx, path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if size := strings.TrimSpace(r.must(ctx, "stat", "-c", "%s", "/etc/camwarden/master.key")); size != "32" {
		t.Errorf("master.key is %s bytes, want 32", size)
	}
	accounts()
	if !strings.Contains(r.must(ctx, "dpkg-query", "-W", "-f=${Conffiles}", "camwarden"), "/etc/camwarden/camwardend.conf") {
		t.Error("camwardend.conf is not registered as a conffile")
	}
	// Enabled the way deb-systemd-helper does it without a running systemd.
	const wants = "/etc/systemd/system/multi-user.target.wants/camwardend.service"
	if !r.exists(ctx, wants) {
		t.Errorf("%s missing: service not enabled", wants)
	}
	if r.exists(ctx, "/etc/systemd/system/sockets.target.wants/camwardend-rtsp.socket") {
		t.Error("the optional rtsp socket must not be enabled by the package")
	}
	key := keySum()
	// The installed daemon runs with the shipped config and key and makes the
	// database the upgrade must keep.
	r.runDaemon(ctx)
	dbSum := func() string {
		t.Helper()
		return strings.Fields(r.must(ctx, "sha256sum", "/var/lib/camwarden/camwarden.db"))[0]
	}
	db := dbSum()
	// An admin's edit of the conffile.
	r.must(ctx, "sh", "-c", "echo 'log_level = debug' >>/etc/camwarden/camwardend.conf")

	// 2. Upgrade, then reinstall the same version: postinst must be idempotent.
	for _, v := range []string{"0.1.1", "0.1.1"} {
		r.must(ctx, "dpkg", "-i", "/tmp/"+v+".deb")
		if got := status(); got != "install ok installed "+v {
			t.Fatalf("after upgrade to %s: status %q", v, got)
		}
		if got := keySum(); got != key {
			t.Fatal("upgrade replaced the master key")
		}
		if got := dbSum(); got != db {
			t.Fatal("upgrade changed the database")
		}
		if !strings.Contains(r.must(ctx, "cat", "/etc/camwarden/camwardend.conf"), "\nlog_level = debug\n") {
			t.Fatal("upgrade lost the admin's change to camwardend.conf")
		}
		accounts()
	}

	// 3. Remove: programs go, configuration, key and state stay.
	r.must(ctx, "dpkg", "--remove", "camwarden")
	if got := status(); got != "deinstall ok config-files 0.1.1" {
		t.Fatalf("after remove: status %q", got)
	}
	for _, p := range []string{"/usr/bin/camwardend", "/usr/bin/camwarden", "/lib/systemd/system/camwardend.service"} {
		if r.exists(ctx, p) {
			t.Errorf("%s still present after remove", p)
		}
	}
	if got := keySum(); got != key {
		t.Error("remove changed the master key")
	}
	for _, p := range []string{"/var/lib/camwarden/camwarden.db", "/etc/camwarden/camwardend.conf"} {
		if !r.exists(ctx, p) {
			t.Errorf("%s gone after a plain remove", p)
		}
	}
	accounts()

	// 4. Reinstall after remove: the kept key and state are taken over.
	r.must(ctx, "dpkg", "-i", "/tmp/0.1.1.deb")
	if got := status(); got != "install ok installed 0.1.1" {
		t.Fatalf("after reinstall: status %q", got)
	}
	if got := keySum(); got != key {
		t.Fatal("reinstall after remove replaced the master key")
	}
	// A database whose key went missing gets no new (wrong) key, only a warning.
	r.must(ctx, "rm", "/etc/camwarden/master.key")
	// Run as dpkg runs it (deb-systemd-helper refuses to run outside dpkg).
	out := r.must(ctx, "env", "DPKG_MAINTSCRIPT_PACKAGE=camwarden", "DPKG_MAINTSCRIPT_NAME=postinst",
		"/var/lib/dpkg/info/camwarden.postinst", "configure", "0.1.1")
	if !strings.Contains(out, "master.key is missing but /var/lib/camwarden holds a database") {
		t.Errorf("postinst did not warn about the missing key: %q", out)
	}
	if r.exists(ctx, "/etc/camwarden/master.key") {
		t.Error("postinst made a new master key for an existing database")
	}

	// 5. Purge: configuration, key and state go; the accounts stay (policy).
	r.must(ctx, "dpkg", "--purge", "camwarden")
	if got := status(); !strings.Contains(got, "no packages found matching camwarden") && !strings.HasPrefix(got, "unknown ok not-installed") {
		t.Fatalf("after purge: status %q", got)
	}
	for _, p := range []string{"/etc/camwarden", "/var/lib/camwarden", wants,
		"/etc/systemd/system/camwardend.service", "/var/lib/systemd/deb-systemd-helper-enabled/camwardend.service.dsh-also"} {
		if r.exists(ctx, p) {
			t.Errorf("%s still present after purge", p)
		}
	}
	accounts()

	// The throwaway root really was separate: the host never saw the package.
	leaked := []string{}
	for _, p := range []string{"/etc/camwarden", "/var/lib/camwarden", "/usr/bin/camwardend"} {
		if _, err := os.Lstat(p); err == nil && before[p] == "false" {
			leaked = append(leaked, p)
		}
	}
	sort.Strings(leaked)
	if len(leaked) > 0 {
		t.Errorf("host gained %v", leaked)
	}
}
