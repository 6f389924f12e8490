package daemon

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// reload re-reads the config file on SIGHUP. Settings that can change live
// are applied; the rest need a restart and are reported. A bad file is
// rejected and the running config stays in force.
func (d *Daemon) reload() {
	notify(d.log, fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading configuration", monotonicUsec()))
	defer notify(d.log, "READY=1\nSTATUS=configuration reloaded")
	next, err := LoadConfig(d.opts.ConfigFile, d.opts.ConfigMayBeMissing, d.opts.Flags)
	if err != nil {
		d.log.Error("reload rejected; the previous configuration stays in force", "error", err)
		return
	}
	cur := d.snap.Load().cfg
	var restart []string
	if next.StateDir != cur.StateDir {
		restart = append(restart, "state_dir")
	}
	if next.Socket != cur.Socket {
		restart = append(restart, "socket")
	}
	if next.RTSPAddr != cur.RTSPAddr || next.RTSPUDP != cur.RTSPUDP {
		restart = append(restart, "rtsp_addr/rtsp_udp")
	}
	if next.RTSPSAddr != cur.RTSPSAddr || next.TLSCertFile != cur.TLSCertFile || next.TLSKeyFile != cur.TLSKeyFile {
		restart = append(restart, "rtsps_addr/tls_cert_file/tls_key_file")
	}
	if next.KeyFile != cur.KeyFile {
		restart = append(restart, "key_file")
	}
	if next.AdminGroup != cur.AdminGroup {
		restart = append(restart, "admin_group")
	}
	if next.MetricsAddr != cur.MetricsAddr {
		restart = append(restart, "metrics_addr")
	}
	if len(restart) > 0 {
		d.log.Warn("some settings change only on restart; keeping their running values", "settings", strings.Join(restart, ", "))
		next.StateDir, next.Socket, next.RTSPAddr, next.RTSPUDP = cur.StateDir, cur.Socket, cur.RTSPAddr, cur.RTSPUDP
		next.KeyFile, next.AdminGroup, next.MetricsAddr = cur.KeyFile, cur.AdminGroup, cur.MetricsAddr
		next.RTSPSAddr, next.TLSCertFile, next.TLSKeyFile = cur.RTSPSAddr, cur.TLSCertFile, cur.TLSKeyFile
	}
	// A new certificate (same files, new contents) serves new handshakes;
	// live sessions keep their connections. A bad one keeps the old.
	if d.cert != nil {
		if err := d.cert.Reload(); err != nil {
			d.log.Error("RTSPS certificate not reloaded; the previous one stays in force", "error", err)
		} else {
			d.log.Info("RTSPS certificate loaded", "sha256", d.cert.Fingerprint())
		}
	}
	d.log.SetLevel(hclog.LevelFromString(next.LogLevel))
	discoveryChanged := strings.Join(next.DiscoveryInterfaces, ",") != strings.Join(cur.DiscoveryInterfaces, ",") ||
		next.DiscoveryInterval != cur.DiscoveryInterval
	d.publish(func(s *snapshot) { s.cfg = next })
	if discoveryChanged {
		d.disc.restart(next)
	}
	d.log.Info("configuration reloaded", "log_level", next.LogLevel)
}
