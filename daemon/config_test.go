package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	kv, err := ParseConfig([]byte("# comment\n\nrtsp_addr = 127.0.0.1:9554\nlog_level=\"debug\"\n  discovery_interfaces = eth0, eth1 \n"))
	if err != nil {
		t.Fatal(err)
	}
	if kv["rtsp_addr"] != "127.0.0.1:9554" || kv["log_level"] != "debug" || kv["discovery_interfaces"] != "eth0, eth1" {
		t.Fatalf("parsed %v", kv)
	}
	bad := map[string]string{
		"unknown key":   "colour = blue\n",
		"no equals":     "rtsp_addr\n",
		"duplicate key": "log_level = info\nlog_level = debug\n",
		"bad quoting":   "socket = \"abc\\q\"\n",
	}
	for name, text := range bad {
		if _, err := ParseConfig([]byte(text)); err == nil {
			t.Errorf("%s: accepted %q", name, text)
		}
	}
}

func TestLoadConfigFlagsWinAndValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.conf")
	os.WriteFile(path, []byte("log_level = debug\nrtsp_addr = :9000\ndiscovery_interval = 1m\nkey_file =\n"), 0o600)
	c, err := LoadConfig(path, false, map[string]string{"rtsp_addr": "127.0.0.1:7000", "discovery_interfaces": "none"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RTSPAddr != "127.0.0.1:7000" || c.LogLevel != "debug" || c.DiscoveryInterval != time.Minute || !discoveryOff(c) {
		t.Fatalf("config %+v", c)
	}
	if c.StateDir != DefaultStateDir || c.KeyFile != "" {
		t.Fatalf("defaults not kept: %+v", c)
	}
	for key, value := range map[string]string{
		"rtsp_addr": "nonsense", "rtsp_udp": "maybe", "log_level": "loud", "log_format": "xml",
		"discovery_interval": "1s", "discovery_interfaces": "none,eth0", "state_dir": "",
	} {
		_, err := LoadConfig("", true, map[string]string{key: value})
		if err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(key, "_", "-")) {
			t.Errorf("%s=%q: error %v should name the flag", key, value, err)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "absent"), false, nil); err == nil {
		t.Error("a missing explicit config file was accepted")
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "absent"), true, nil); err != nil {
		t.Errorf("a missing default config file was refused: %v", err)
	}
}

func TestUDPAddrs(t *testing.T) {
	for in, want := range map[string][2]string{
		":8554":          {":8556", ":8557"},
		"127.0.0.1:554":  {"127.0.0.1:556", "127.0.0.1:557"},
		"127.0.0.1:8555": {"127.0.0.1:8556", "127.0.0.1:8557"},
		"127.0.0.1:0":    {"", ""},
	} {
		rtp, rtcp := udpAddrs(in)
		if rtp != want[0] || rtcp != want[1] {
			t.Errorf("udpAddrs(%q) = %q %q, want %v", in, rtp, rtcp, want)
		}
	}
}

// TestMetricsAddr: off by default; an empty host means loopback; a bad
// address is refused with an example.
func TestMetricsAddr(t *testing.T) {
	if DefaultConfig().MetricsAddr != "" {
		t.Fatal("metrics listener on by default")
	}
	for in, want := range map[string]string{"": "", ":9108": "127.0.0.1:9108", "127.0.0.1:9108": "127.0.0.1:9108",
		"0.0.0.0:9108": "0.0.0.0:9108", "[::1]:9108": "[::1]:9108"} {
		var c Config
		if err := c.Set("metrics_addr", in); err != nil || c.MetricsAddr != want {
			t.Errorf("metrics_addr %q -> %q, %v; want %q", in, c.MetricsAddr, err, want)
		}
	}
	for _, bad := range []string{"9108", "localhost", "127.0.0.1:http", "127.0.0.1:70000"} {
		var c Config
		if err := c.Set("metrics_addr", bad); err == nil || !strings.Contains(err.Error(), "127.0.0.1:9108") {
			t.Errorf("metrics_addr %q: %v, want a refusal with an example", bad, err)
		}
	}
}
