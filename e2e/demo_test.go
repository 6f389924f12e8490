package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/internal/testutil"
)

// TestDemoScript runs `make demo`'s script on free ports, runs the ffprobe
// command it prints, then stops it the way a user does (SIGINT to the
// foreground process group) and checks everything it started is gone.
func TestDemoScript(t *testing.T) {
	root := testutil.RepoRoot()
	binDir := filepath.Dir(testutil.Binary(t, "camwardend"))
	state := filepath.Join(t.TempDir(), "demo-state")
	cmd := exec.Command(filepath.Join(root, "scripts", "demo.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BIN="+binDir, "DEMO_STATE="+state,
		fmt.Sprintf("DEMO_RTSP_PORT=%d", testutil.FreePort(t)), fmt.Sprintf("DEMO_DISCOVERY_PORT=%d", testutil.FreePort(t)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })

	lines := make(chan string, 256)
	var all strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var probe string
	deadline := time.After(90 * time.Second)
	for probe == "" || !strings.Contains(all.String(), "Press Ctrl-C") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo exited early:\n%s", all.String())
			}
			all.WriteString(l + "\n")
			if strings.HasPrefix(strings.TrimSpace(l), "ffprobe ") {
				probe = strings.TrimSpace(l)
			}
		case <-deadline:
			t.Fatalf("demo not ready in 90 s:\n%s", all.String())
		}
	}
	out, err := exec.Command("sh", "-c", "timeout 20 "+probe+" -v error -show_entries stream=codec_name,width -of compact").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "codec_name=h264") {
		t.Fatalf("the printed ffprobe command failed: %v\n%s\ndemo output:\n%s", err, out, all.String())
	}
	pw := regexp.MustCompile(`shown once\): (\S+)`).FindStringSubmatch(all.String())
	if pw == nil {
		t.Fatal("no viewer password printed")
	}
	// The password is printed once on purpose; it must not reach the logs.
	for _, f := range []string{"camwardend.log", "camsim.log"} {
		b, _ := os.ReadFile(filepath.Join(state, f))
		camPW, _ := os.ReadFile(filepath.Join(state, "camera.password"))
		if strings.Contains(string(b), pw[1]) || strings.Contains(string(b), strings.TrimSpace(string(camPW))) {
			t.Errorf("%s contains a password", f)
		}
	}

	syscall.Kill(-pgid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, stdout)
		done <- cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop on SIGINT")
	}
	// Every process of the demo's group is gone.
	if err := syscall.Kill(-pgid, 0); err == nil {
		t.Fatal("processes of the demo are still running after Ctrl-C")
	}
}
