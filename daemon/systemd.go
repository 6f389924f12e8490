package daemon

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/coreos/go-systemd/v22/activation"
	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// What the daemon shares with systemd: sd_notify, socket activation, and
// the ports derived from the RTSP address.

func notify(log hclog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "error", err)
	}
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}

var activationOnce sync.Once

// activatedListeners returns systemd socket-activated listeners by their
// FileDescriptorName ("rtsp", "rtsps", "admin", "metrics"). Unnamed sockets are
// refused with a clear error rather than guessed at.
func activatedListeners() (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	var err error
	activationOnce.Do(func() {
		var named map[string][]net.Listener
		named, err = activation.ListenersWithNames()
		if err != nil {
			err = fmt.Errorf("socket activation: %w", err)
			return
		}
		for name, ls := range named {
			if name != "rtsp" && name != "rtsps" && name != "admin" && name != "metrics" {
				err = fmt.Errorf("socket activation: unexpected socket name %q; name sockets rtsp, rtsps, admin or metrics with FileDescriptorName=", name)
				return
			}
			if len(ls) != 1 || ls[0] == nil {
				err = fmt.Errorf("socket activation: want exactly one stream socket named %q", name)
				return
			}
			out[name] = ls[0]
		}
	})
	return out, err
}

// udpAddrs derives the reader UDP port pair from the RTSP port P: RTP on
// the even port above P+1 and RTCP on the next (8554 -> 8556/8557, 554 ->
// 556/557). An ephemeral RTSP port (0) leaves UDP off.
func udpAddrs(rtspAddr string) (string, string) {
	host, port, err := net.SplitHostPort(rtspAddr)
	if err != nil || port == "0" {
		return "", ""
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65530 {
		return "", ""
	}
	rtp := (p + 2) &^ 1
	return net.JoinHostPort(host, strconv.Itoa(rtp)), net.JoinHostPort(host, strconv.Itoa(rtp+1))
}
