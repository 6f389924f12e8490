package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config is the daemon's settings after the config file and the flags have
// been merged (flags win). Every field has one config-file key; see
// configKeys and packaging/camwardend.conf.
type Config struct {
	StateDir            string
	Socket              string
	RTSPAddr            string
	RTSPUDP             bool
	RTSPSAddr           string // "" = no RTSPS listener
	TLSCertFile         string // RTSPS certificate and key; both empty: a self-signed one in StateDir
	TLSKeyFile          string
	KeyFile             string
	DiscoveryInterfaces []string // nil = all; ["none"] = off
	DiscoveryInterval   time.Duration
	LogLevel            string
	LogFormat           string
	AdminGroup          string
	MetricsAddr         string // "" = no metrics listener; an empty host means loopback
	// BasicAuth says where readers may send a password or token in clear
	// form (Basic, a token as the password or in ?token=): BasicTLSOnly,
	// BasicAlways or BasicNever. Digest works everywhere.
	BasicAuth string
}

// basic_auth values.
const (
	BasicTLSOnly = "tls-only"
	BasicAlways  = "always"
	BasicNever   = "never"
)

// Defaults for a packaged install.
const (
	DefaultConfigFile = "/etc/camwarden/camwardend.conf"
	DefaultStateDir   = "/var/lib/camwarden"
	DefaultSocket     = "/run/camwarden/admin.sock"
	DefaultRTSPAddr   = ":8554"
	DefaultRTSPSAddr  = ":8322"
	DefaultAdminGroup = "camwarden-admin"
)

// DefaultConfig is the configuration with nothing set.
func DefaultConfig() Config {
	return Config{
		StateDir:          DefaultStateDir,
		Socket:            DefaultSocket,
		RTSPAddr:          DefaultRTSPAddr,
		RTSPSAddr:         DefaultRTSPSAddr,
		RTSPUDP:           true,
		DiscoveryInterval: 5 * time.Minute,
		LogLevel:          "info",
		LogFormat:         "text",
		AdminGroup:        DefaultAdminGroup,
		BasicAuth:         BasicTLSOnly,
	}
}

// configKeys maps each config-file key (and flag, with '_' as '-') to the
// setter that parses and validates it.
var configKeys = map[string]func(c *Config, v string) error{
	"state_dir": func(c *Config, v string) error { return setPath(&c.StateDir, v) },
	"socket":    func(c *Config, v string) error { return setPath(&c.Socket, v) },
	// An empty key_file means the default ($CREDENTIALS_DIRECTORY/master.key).
	"key_file": func(c *Config, v string) error {
		c.KeyFile = v
		return nil
	},
	"admin_group": func(c *Config, v string) error {
		c.AdminGroup = v
		return nil
	},
	"rtsp_addr": func(c *Config, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("want HOST:PORT such as :8554 or 127.0.0.1:8554: %v", err)
		}
		c.RTSPAddr = v
		return nil
	},
	// The monitoring listener (/metrics, /healthz). Off when empty. An empty
	// host means loopback, so ":9108" never opens it to the network by
	// accident; 0.0.0.0:9108 does, on purpose.
	"metrics_addr": func(c *Config, v string) error {
		if v == "" {
			c.MetricsAddr = ""
			return nil
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return fmt.Errorf("want HOST:PORT such as 127.0.0.1:9108, or empty for off: %v", err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("want a port number, such as 127.0.0.1:9108")
		}
		if host == "" {
			host = "127.0.0.1"
		}
		c.MetricsAddr = net.JoinHostPort(host, port)
		return nil
	},
	// RTSPS for readers; empty turns it off.
	"rtsps_addr": func(c *Config, v string) error {
		if v != "" {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("want HOST:PORT such as :8322, or empty for off: %v", err)
			}
		}
		c.RTSPSAddr = v
		return nil
	},
	"tls_cert_file": func(c *Config, v string) error { return setOptionalPath(&c.TLSCertFile, v) },
	"tls_key_file":  func(c *Config, v string) error { return setOptionalPath(&c.TLSKeyFile, v) },
	"basic_auth": func(c *Config, v string) error {
		switch v {
		case BasicTLSOnly, BasicAlways, BasicNever:
			c.BasicAuth = v
			return nil
		}
		return fmt.Errorf("want tls-only, always or never")
	},
	"rtsp_udp": func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		c.RTSPUDP = b
		return nil
	},
	"discovery_interfaces": func(c *Config, v string) error {
		c.DiscoveryInterfaces = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.DiscoveryInterfaces = append(c.DiscoveryInterfaces, s)
			}
		}
		for _, s := range c.DiscoveryInterfaces {
			if s == "none" && len(c.DiscoveryInterfaces) > 1 {
				return fmt.Errorf("'none' cannot be combined with interface names")
			}
		}
		return nil
	},
	"discovery_interval": func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			return fmt.Errorf("want a duration of at least 10s, such as 5m")
		}
		c.DiscoveryInterval = d
		return nil
	},
	"log_level": func(c *Config, v string) error {
		if hclog.LevelFromString(v) == hclog.NoLevel {
			return fmt.Errorf("want trace, debug, info, warn or error")
		}
		c.LogLevel = strings.ToLower(v)
		return nil
	},
	"log_format": func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("want text or json")
		}
		c.LogFormat = v
		return nil
	},
}

// ConfigKeys lists the keys the config file accepts, sorted.
func ConfigKeys() []string {
	keys := make([]string, 0, len(configKeys))
	for k := range configKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// setOptionalPath is setPath that also takes "" (unset).
func setOptionalPath(dst *string, v string) error {
	if v == "" {
		*dst = ""
		return nil
	}
	return setPath(dst, v)
}

func setPath(dst *string, v string) error {
	if v == "" {
		return fmt.Errorf("empty path")
	}
	*dst = v
	return nil
}

// Set applies one key=value setting.
func (c *Config) Set(key, value string) error {
	set, ok := configKeys[key]
	if !ok {
		return fmt.Errorf("unknown setting %q (known: %s)", key, strings.Join(ConfigKeys(), ", "))
	}
	if err := set(c, value); err != nil {
		return fmt.Errorf("%s = %q: %w", key, value, err)
	}
	return nil
}

// ParseConfig reads the config-file format: one `key = value` per line,
// blank lines and lines starting with '#' ignored, values optionally in
// double quotes. Unknown keys and repeated keys are errors.
func ParseConfig(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want key = value", n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			uq, err := strconv.Unquote(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad quoted value: %v", n, err)
			}
			v = uq
		}
		if _, known := configKeys[k]; !known {
			return nil, fmt.Errorf("line %d: unknown setting %q (known: %s)", n, k, strings.Join(ConfigKeys(), ", "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("line %d: %q set twice", n, k)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadConfig builds the effective config: defaults, then the file (if
// path is not empty; a missing file is fine only when mayBeMissing), then
// flags, which win.
func LoadConfig(path string, mayBeMissing bool, flags map[string]string) (Config, error) {
	c := DefaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			kv, err := ParseConfig(data)
			if err != nil {
				return Config{}, fmt.Errorf("config %s: %w", path, err)
			}
			for _, k := range sortedKeys(kv) {
				if err := c.Set(k, kv[k]); err != nil {
					return Config{}, fmt.Errorf("config %s: %w", path, err)
				}
			}
		case os.IsNotExist(err) && mayBeMissing:
		default:
			return Config{}, fmt.Errorf("cannot read config: %w", err)
		}
	}
	for _, k := range sortedKeys(flags) {
		if err := c.Set(k, flags[k]); err != nil {
			return Config{}, fmt.Errorf("flag --%s: %w", strings.ReplaceAll(k, "_", "-"), err)
		}
	}
	return c, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
