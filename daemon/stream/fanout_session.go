package stream

import (
	"net"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
)

// startReader hands a session that just got its PLAY reply to the fan-out
// engine. It runs in the connection goroutine right after the reply was
// written, so media never precede the reply.
func (s *Server) startReader(se *session, ss *gortsplib.ServerSession, fc *fanConn) *fanReader {
	p := se.p
	if p == nil {
		return nil
	}
	tr := ss.Transport()
	if tr == nil {
		return nil
	}
	se.setupMu.Lock()
	setups := make(map[int]mediaSetup, len(se.setups))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fo == nil || ss.Stream() != p.stream || se.reader.Load() != nil {
		se.setupMu.Unlock()
		return nil
	}
	for m, st := range se.setups {
		for i, sm := range p.served {
			if sm == m {
				setups[i] = st
			}
		}
	}
	se.setupMu.Unlock()
	if len(setups) == 0 {
		return nil
	}
	r := &fanReader{w: s.fan.pick(), fo: p.fo}
	switch tr.Protocol {
	case gortsplib.ProtocolTCP:
		chans := make([]int, len(p.served))
		for i := range chans {
			chans[i] = -1
			if st, ok := setups[i]; ok {
				chans[i] = st.channel
			}
		}
		r.tcp = fc
		r.layout = p.fo.layoutFor(chans)
		fc.boundSendBuffer()
	case gortsplib.ProtocolUDP:
		d := &udpDest{e: s.fan, rtp: make([]*net.UDPAddr, len(p.served)), rtcpA: make([]*net.UDPAddr, len(p.served))}
		for i, st := range setups {
			d.rtp[i], d.rtcpA[i] = st.udpRTP, st.udpRTCP
		}
		r.udp = d
	default:
		return nil
	}
	r.onEvict = func(behindFor time.Duration, err error) {
		if err == nil {
			s.markClosing(se, CloseEvicted)
		}
		if err != nil {
			s.log.Debug("closing reader whose socket failed", "session", se.id, "user", se.user, "path", se.pathName, "remote", se.remote, "error", err)
		} else {
			s.log.Warn("evicting reader that stopped reading", "session", se.id, "user", se.user, "path", se.pathName, "remote", se.remote, "stalled_for", behindFor.Round(time.Millisecond), "skipped_to_keyframe", r.skips.Load())
		}
		// Whoever holds the session (gortsplib or a playConn); ss is
		// not captured: the closure lives as long as the reader, and
		// gortsplib's session must not once the connection is handed off.
		s.closeSessions([]*session{se})
	}
	se.reader.Store(r)
	if p.fo.attach(r) {
		// The cache starts at a keyframe: that is the first frame.
		s.cfg.Observer.FirstFrame(time.Since(se.connected))
	} else {
		p.awaitKeyframeLocked(se, se.connected)
	}
	return r
}

// detachReader stops delivery to a closed session's reader.
func (p *path) detachReader(r *fanReader) {
	r.close()
	p.mu.Lock()
	if p.fo == r.fo {
		p.fo.detach(r)
	}
	p.mu.Unlock()
}

// mediaSetup is what one SETUP answer gave a medium.
type mediaSetup struct {
	channel int // TCP: the RTP interleaved channel
	udpRTP  *net.UDPAddr
	udpRTCP *net.UDPAddr
}

// recordSetup notes the transport the SETUP answer gave the medium just set
// up (the last of the session's medias).
func (se *session) recordSetup(c *gortsplib.ServerConn, ss *gortsplib.ServerSession, tv base.HeaderValue) {
	var th headers.Transport
	if th.Unmarshal(tv) != nil {
		return
	}
	ms := ss.Medias()
	if len(ms) == 0 {
		return
	}
	var st mediaSetup
	switch {
	case th.InterleavedIDs != nil:
		st.channel = th.InterleavedIDs[0]
	case th.ClientPorts != nil:
		ip := net.ParseIP(remoteIP(c))
		if ip == nil {
			return
		}
		st.udpRTP = &net.UDPAddr{IP: ip, Port: th.ClientPorts[0]}
		st.udpRTCP = &net.UDPAddr{IP: ip, Port: th.ClientPorts[1]}
	default:
		return // multicast is not offered
	}
	se.setupMu.Lock()
	if se.setups == nil {
		se.setups = map[*description.Media]mediaSetup{}
	}
	se.setups[ms[len(ms)-1]] = st
	se.setupMu.Unlock()
}
