package camsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var npmOnce struct {
	sync.Once
	err error
	out []byte
}

// npmInstall installs the pinned client from npmtest/package-lock.json
// (npm ci), unless that exact version is already there.
func npmInstall(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("npmtest")
	if err != nil {
		t.Fatal(err)
	}
	npmOnce.Do(func() {
		var pkg struct{ Version string }
		if data, err := os.ReadFile(filepath.Join(dir, "node_modules", "onvif", "package.json")); err == nil &&
			json.Unmarshal(data, &pkg) == nil && pkg.Version == "0.8.3" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		npmOnce.out, npmOnce.err = cmd.CombinedOutput()
	})
	if npmOnce.err != nil {
		t.Fatalf("npm ci in %s (Node 20 and the npm registry are needed): %v\n%s", dir, npmOnce.err, npmOnce.out)
	}
	return dir
}

type nodeResult struct {
	Error             string
	Stage             string
	DeviceInformation struct {
		Manufacturer, Model, FirmwareVersion, SerialNumber string
	}
	Profiles []struct {
		Token, Name, Encoding, SourceToken string
		Width, Height, FPS, Bitrate        int
	}
	StreamUris   map[string]string
	MediaXAddr   string
	ActiveSource *struct {
		ProfileToken string
		Width        int
	}
}

// runNodeClient runs npmtest/onvif_client.js against camera c; the
// password goes in on stdin, not argv.
func runNodeClient(t *testing.T, dir string, c *Camera, password string) (nodeResult, string) {
	t.Helper()
	u, err := url.Parse(c.XAddr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	cfg, _ := json.Marshal(map[string]any{"host": u.Hostname(), "port": port, "username": testUser, "password": password})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "onvif_client.js")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res nodeResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("node client printed no JSON (%v): %v\nstdout: %s\nstderr: %s", runErr, err, stdout.String(), stderr.String())
	}
	if (runErr != nil) != (res.Error != "") {
		t.Fatalf("node exit %v but result error %q; stderr: %s", runErr, res.Error, stderr.String())
	}
	return res, stderr.String()
}

// TestNodeOnvifClient proves camsim speaks ONVIF as a third-party client
// (npm onvif@0.8.3) expects, in both auth modes and with a skewed clock.
func TestNodeOnvifClient(t *testing.T) {
	dir := npmInstall(t)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"wsse", Options{}},
		{"wsse clock a year ahead", Options{ClockSkew: 8760 * time.Hour}},
		{"http digest", Options{Auth: AuthDigest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startSim(t, tc.opts)
			c := s.Cameras()[0]
			res, stderr := runNodeClient(t, dir, c, testPass)
			if res.Error != "" {
				t.Fatalf("node onvif failed at %s: %s\n%s", res.Stage, res.Error, stderr)
			}
			if strings.Contains(stderr, "warning") {
				t.Errorf("node onvif warned: %s", stderr)
			}
			di := res.DeviceInformation
			if di.Manufacturer != "camwarden" || di.Model != "CamSim-1080" || di.SerialNumber != "CS00000001" {
				t.Errorf("device information %+v", di)
			}
			if len(res.Profiles) != 2 {
				t.Fatalf("profiles %+v", res.Profiles)
			}
			m, sub := res.Profiles[0], res.Profiles[1]
			if m.Token != "main" || m.Encoding != "H264" || m.Width != 1920 || m.Height != 1080 || m.FPS != 25 || m.Bitrate != 4000 || m.SourceToken != "vs0" {
				t.Errorf("main profile as the client sees it: %+v", m)
			}
			if sub.Token != "sub" || sub.Width != 640 || sub.Height != 360 || sub.Bitrate != 500 {
				t.Errorf("sub profile as the client sees it: %+v", sub)
			}
			for _, p := range []string{"main", "sub"} {
				if got := res.StreamUris[p]; got == "" || got != c.RTSPURL(p) || strings.Contains(got, "@") {
					t.Errorf("stream uri for %s: %q, want %q", p, got, c.RTSPURL(p))
				}
			}
			if !strings.HasSuffix(res.MediaXAddr, "/onvif/media_service") {
				t.Errorf("media xaddr %q", res.MediaXAddr)
			}
			if res.ActiveSource == nil || res.ActiveSource.ProfileToken != "main" || res.ActiveSource.Width != 1920 {
				t.Errorf("the client found no active source: %+v", res.ActiveSource)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		s, _ := startSim(t, Options{})
		res, _ := runNodeClient(t, dir, s.Cameras()[0], "not-the-password")
		if res.Error == "" || !strings.Contains(res.Error, "Sender not Authorized") {
			t.Fatalf("wrong password: %+v", res)
		}
	})
	t.Run("wrong password, digest", func(t *testing.T) {
		s, _ := startSim(t, Options{Auth: AuthDigest})
		res, _ := runNodeClient(t, dir, s.Cameras()[0], "not-the-password")
		if res.Error == "" || !strings.Contains(res.Error, "401") {
			t.Fatalf("wrong password: %+v", res)
		}
	})
}

// TestNodeOnvifDiscoveryInNetns: npm onvif's Discovery.probe (multicast)
// finds every camera, in a private network namespace.
func TestNodeOnvifDiscoveryInNetns(t *testing.T) {
	dir := npmInstall(t) // before unshare: npm ci needs the registry
	if reexecInNetns(t) {
		return
	}
	s, _ := startSim(t, Options{Cameras: 3, DiscoveryInterfaces: []string{"lo"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "discover.js")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node discover.js: %v\n%s", err, stderr.String())
	}
	var found []struct{ URN, XAddrs, Types, Scopes string }
	if err := json.Unmarshal(out, &found); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	byURN := map[string]int{}
	for i, f := range found {
		byURN[f.URN] = i
	}
	if len(found) != 3 || len(byURN) != 3 {
		t.Fatalf("node found %d devices: %+v\n%s", len(found), found, stderr.String())
	}
	for _, c := range s.Cameras() {
		i, ok := byURN[c.URN()]
		if !ok {
			t.Fatalf("node did not find %s", c.URN())
		}
		f := found[i]
		if f.XAddrs != c.XAddr() || !strings.Contains(f.Types, "NetworkVideoTransmitter") || !strings.Contains(f.Scopes, "/name/"+c.Name()) {
			t.Errorf("node saw %+v for %s", f, c.Name())
		}
	}
}
