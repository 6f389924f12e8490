package stream

import (
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// udpReader is an RTSP reader over UDP spoken by hand: it counts the RTP
// datagrams that reach its socket, and those after a marker datagram the
// test sends it (loopback delivers in order, so those left the server after
// the marker was sent).
type udpReader struct {
	rc          *rawConn
	rtp         *net.UDPConn
	pkts        atomic.Int64
	marked      atomic.Bool
	afterMarker atomic.Int64
}

var markerDatagram = []byte("marker: anything after this was sent late")

func playUDP(t *testing.T, r *rig, user, pass string) *udpReader {
	t.Helper()
	rtpC, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := rtpC.LocalAddr().(*net.UDPAddr).Port
	rtcpC, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
	if err != nil {
		rtpC.Close()
		return playUDP(t, r, user, pass) // the next port was taken: another pair
	}
	t.Cleanup(func() { rtpC.Close(); rtcpC.Close() })
	go func() { // RTCP is read and dropped
		b := make([]byte, 2048)
		for {
			if _, _, err := rtcpC.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	rc := dialRaw(t, r.addr, 0)
	auth := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
	url := "rtsp://" + r.addr + "/cam1/main"
	res, err := rc.do("DESCRIBE", url, auth)
	if err != nil || res.status != 200 {
		t.Fatalf("DESCRIBE %v %+v", err, res)
	}
	ctl := regexp.MustCompile(`a=control:(\S+)`).FindAllStringSubmatch(res.body, -1)
	setupURL := url + "/" + ctl[len(ctl)-1][1]
	h := map[string]string{"Transport": fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d", port, port+1)}
	for k, v := range auth {
		h[k] = v
	}
	res, err = rc.do("SETUP", setupURL, h)
	if err != nil || res.status != 200 {
		t.Fatalf("SETUP %v %+v", err, res)
	}
	sess, _, _ := strings.Cut(res.header["session"], ";")
	auth["Session"] = sess
	if res, err = rc.do("PLAY", url+"/", auth); err != nil || res.status != 200 {
		t.Fatalf("PLAY %v %+v", err, res)
	}
	u := &udpReader{rc: rc, rtp: rtpC}
	go func() {
		b := make([]byte, 2048)
		for {
			n, _, err := rtpC.ReadFrom(b)
			if err != nil {
				return
			}
			if string(b[:n]) == string(markerDatagram) {
				u.marked.Store(true)
				continue
			}
			if n >= 12 && b[0]>>6 == 2 {
				u.pkts.Add(1)
				if u.marked.Load() {
					u.afterMarker.Add(1)
				}
			}
		}
	}()
	return u
}

func (u *udpReader) mark(t *testing.T) {
	c, err := net.DialUDP("udp", nil, u.rtp.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(markerDatagram); err != nil {
		t.Fatal(err)
	}
}

func TestRevocationStopsTCPAndUDPReadersBeforeItReturns(t *testing.T) {
	r := camsimRig(t, nil)
	var keepTCP, goneTCP []*rawReader
	var keepUDP, goneUDP []*udpReader
	for i := 0; i < 3; i++ {
		keepTCP = append(keepTCP, startRawReader(t, r, 0, false, 0))
		rc := playRaw(t, r.addr, "cam1/main", "bob", "bob pw:@/", 0)
		rr := &rawReader{rc: rc, done: make(chan struct{})}
		go rr.run()
		goneTCP = append(goneTCP, rr)
		keepUDP = append(keepUDP, playUDP(t, r, "alice", "alicepw"))
		goneUDP = append(goneUDP, playUDP(t, r, "bob", "bob pw:@/"))
	}
	waitFor(t, 20*time.Second, "every reader receiving", func() bool {
		for _, x := range append(append([]*rawReader(nil), keepTCP...), goneTCP...) {
			if x.pkts.Load() < 50 {
				return false
			}
		}
		for _, x := range append(append([]*udpReader(nil), keepUDP...), goneUDP...) {
			if x.pkts.Load() < 50 {
				return false
			}
		}
		return true
	})
	// Revoke bob: the policy is swapped first, then enforced (as the daemon does).
	p := mustPolicy(t, []string{"alice", "bob", "pub"}, readGrant("alice", "*"))
	r.policy.Store(p)
	start := time.Now()
	if n := r.srv.Enforce(p); n != 6 {
		t.Fatalf("Enforce closed %d sessions, want 6", n)
	}
	took := time.Since(start)
	for _, u := range append(append([]*udpReader(nil), goneUDP...), keepUDP...) {
		u.mark(t)
	}
	for i, rr := range goneTCP {
		select {
		case <-rr.done:
		case <-time.After(3 * time.Second):
			t.Errorf("revoked TCP reader %d still connected", i)
		}
	}
	waitFor(t, 5*time.Second, "kept readers to see their markers", func() bool {
		for _, u := range append(append([]*udpReader(nil), goneUDP...), keepUDP...) {
			if !u.marked.Load() {
				return false
			}
		}
		return true
	})
	before := make([]int64, len(keepTCP))
	for i, k := range keepTCP {
		before[i] = k.pkts.Load()
	}
	waitFor(t, 10*time.Second, "kept readers to go on", func() bool {
		for i, k := range keepTCP {
			if k.pkts.Load() < before[i]+100 || keepUDP[i].afterMarker.Load() < 100 {
				return false
			}
		}
		return true
	})
	for i, u := range goneUDP {
		if n := u.afterMarker.Load(); n != 0 {
			t.Errorf("revoked UDP reader %d received %d datagrams after Enforce returned", i, n)
		}
	}
	for i, k := range keepTCP {
		if g := k.gaps.Load(); g != 0 {
			t.Errorf("kept TCP reader %d lost packets: %d gaps", i, g)
		}
	}
	if got := len(r.srv.Sessions()); got != 6 {
		t.Errorf("%d sessions left, want alice's 6", got)
	}
	t.Logf("Enforce took %v for 3 TCP + 3 UDP revoked readers among 12", took)
}
