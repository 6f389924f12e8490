package onvif

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// EventKind says whether a device announced itself or left.
type EventKind int

// Watcher events.
const (
	Hello EventKind = iota + 1
	Bye
)

func (k EventKind) String() string {
	switch k {
	case Hello:
		return "hello"
	case Bye:
		return "bye"
	}
	return "unknown"
}

// Event is a Hello or Bye heard on the WS-Discovery group. For Bye, Device
// usually carries only the URN.
type Event struct {
	Kind   EventKind
	Device Device
}

// Watcher listens for WS-Discovery Hello and Bye on the multicast group so
// the daemon's list stays current between its periodic probes. It keeps no
// device state of its own.
type Watcher struct {
	opts ProbeOptions
	port int // 3702; tests in a namespace use the real port too
}

// ErrDiscoveryDisabled is returned by Watcher.Run when the interface list
// is ["none"].
var ErrDiscoveryDisabled = errors.New("onvif: multicast discovery is disabled")

// NewWatcher validates opts; it does no network I/O.
func NewWatcher(opts ProbeOptions) (*Watcher, error) {
	opts = opts.withDefaults()
	for _, name := range opts.Interfaces {
		if name == "" {
			return nil, errors.New("onvif: empty interface name in discovery allow-list")
		}
	}
	return &Watcher{opts: opts, port: wsdPort}, nil
}

// Run binds UDP :3702 (SO_REUSEADDR+SO_REUSEPORT, so it coexists with other
// WS-Discovery listeners), joins 239.255.255.250 on each selected interface
// and delivers Hello/Bye events until ctx ends, when it returns nil. It
// returns an error if it cannot listen at all. Sending on events blocks
// (with ctx), so a slow consumer makes the kernel drop datagrams rather
// than this process grow.
func (w *Watcher) Run(ctx context.Context, events chan<- Event) error {
	if w.opts.multicastDisabled() {
		return ErrDiscoveryDisabled
	}
	log := w.opts.Logger
	ifaces, err := selectInterfaces(w.opts.Interfaces, log)
	if err != nil {
		return err
	}
	if len(ifaces) == 0 {
		return errors.New("onvif: no usable multicast interface to watch for Hello/Bye")
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pconn, err := lc.ListenPacket(ctx, "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(w.port)))
	if err != nil {
		return fmt.Errorf("onvif: listen for WS-Discovery Hello/Bye on :%d: %w", w.port, err)
	}
	defer pconn.Close()
	_ = pconn.(*net.UDPConn).SetReadBuffer(1 << 20)
	pc := ipv4.NewPacketConn(pconn)
	names := map[int]string{}
	for _, mi := range ifaces {
		ifi := mi.ifi
		if err := pc.JoinGroup(&ifi, &net.UDPAddr{IP: wsdGroupIP}); err != nil {
			log.Warn("cannot join WS-Discovery group", "interface", ifi.Name, "error", err)
			continue
		}
		names[ifi.Index] = ifi.Name
	}
	if len(names) == 0 {
		return errors.New("onvif: could not join the WS-Discovery group on any interface")
	}
	if err := pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("onvif: WS-Discovery listener: %w", err)
	}

	stop := context.AfterFunc(ctx, func() { pconn.Close() })
	defer stop()

	buf := make([]byte, maxDatagramRead)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Transient errors (e.g. ICMP-induced) must not end the watch.
			log.Debug("WS-Discovery read failed", "error", err)
			continue
		}
		label := ""
		if cm != nil {
			var ok bool
			if label, ok = names[cm.IfIndex]; !ok {
				continue // arrived on an interface we were not asked to watch
			}
		}
		msg, err := ParseMessage(buf[:n])
		if err != nil || (msg.Kind != KindHello && msg.Kind != KindBye) {
			continue
		}
		addr := ""
		if ua, ok := src.(*net.UDPAddr); ok {
			addr = ua.IP.String()
		}
		ev := Event{Kind: Hello, Device: deviceFromMatch(msg.Matches[0], label, addr, time.Now())}
		if msg.Kind == KindBye {
			ev.Kind = Bye
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return nil
		}
	}
}
