package stream

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// streamData reports whether RTP data (a TCP-interleaved frame, '$')
// arrives on rc within d.
func streamData(rc *rawConn, d time.Duration) bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	b, err := rc.br.ReadByte()
	return err == nil && b == '$'
}

// TestSessionPlaysOnlyOnItsConnection: gortsplib lets any connection from
// the same source address use a session whose id it knows. A session id is
// a handle, not a credential: a session plays only on the connection that
// set it up; a stranger is refused and its connection closed, and so is the
// session's own user on a second connection (gortsplib v5.6.5 races when one
// session is used from two connections, and clients do not do it).
func TestSessionPlaysOnlyOnItsConnection(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	playURL := "rtsp://" + r.addr + "/cam1/main/"

	owner, sess := setupRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	for _, try := range []struct {
		who  string
		auth map[string]string
	}{
		{"a connection without credentials", map[string]string{}},
		{"bob, who may read the path", map[string]string{"Authorization": basicAuth("bob", "bob pw:@/")}},
		{"alice on a second connection", map[string]string{"Authorization": basicAuth("alice", "alicepw")}},
	} {
		c := dialRaw(t, r.addr, 0)
		try.auth["Session"] = sess
		if res, err := c.do("PLAY", playURL, try.auth); err == nil && res.status == 200 {
			t.Errorf("%s played the session of another connection from the same address", try.who)
		}
		if streamData(c, time.Second) {
			t.Errorf("%s received another connection's stream", try.who)
		}
	}

	// The connection that set the session up plays it, and it is listed.
	res, err := owner.do("PLAY", playURL, map[string]string{"Session": sess, "Authorization": basicAuth("alice", "alicepw")})
	if err != nil || res.status != 200 {
		t.Fatalf("owner PLAY: %v %+v", err, res)
	}
	if !streamData(owner, 5*time.Second) {
		t.Fatal("owner received no stream data")
	}
	ses := r.srv.Sessions()
	if len(ses) != 1 || ses[0].User != "alice" || ses[0].RemoteAddr != owner.c.LocalAddr().String() {
		t.Fatalf("sessions = %+v, want alice's from %s", ses, owner.c.LocalAddr())
	}
}

// TestPublisherSessionRecordsOnlyOnItsConnection: the same rule for a
// publisher: RECORD with a known session id from another connection of the
// same address does not take the path over.
func TestPublisherSessionRecordsOnlyOnItsConnection(t *testing.T) {
	r := newRig(t, nil)
	url := "rtsp://" + r.addr + "/pub/live"
	auth := basicAuth("pub", "pubpw")
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=pub\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\n" +
		"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=" +
		base64.StdEncoding.EncodeToString(testSPS) + "," + base64.StdEncoding.EncodeToString(testPPS) + "\r\n"
	owner := dialRaw(t, r.addr, 0)
	res, err := owner.doBody("ANNOUNCE", url, map[string]string{"Authorization": auth, "Content-Type": "application/sdp"}, sdp)
	if err != nil || res.status != 200 {
		t.Fatalf("ANNOUNCE: %v %+v", err, res)
	}
	res, err = owner.do("SETUP", url+"/trackID=0", map[string]string{"Authorization": auth, "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"})
	if err != nil || res.status != 200 {
		t.Fatalf("SETUP: %v %+v", err, res)
	}
	sess, _, _ := strings.Cut(res.header["session"], ";")

	thief := dialRaw(t, r.addr, 0)
	if res, err := thief.do("RECORD", url, map[string]string{"Session": sess}); err == nil && res.status == 200 {
		t.Fatal("RECORD of another connection's session without credentials answered 200")
	}
	if r.status("pub/live").State == StateLive {
		t.Fatal("path went live through the hijacking connection")
	}
	res, err = owner.do("RECORD", url, map[string]string{"Authorization": auth, "Session": sess})
	if err != nil || res.status != 200 {
		t.Fatalf("owner RECORD: %v %+v", err, res)
	}
	waitFor(t, 3*time.Second, "published path live", func() bool { return r.status("pub/live").State == StateLive })
}

// TestForeignConnectionCannotTearDownSession: TEARDOWN (which has no
// callback of ours) with a known session id from another connection of the
// same address does not end the session; the owner's own TEARDOWN does.
func TestForeignConnectionCannotTearDownSession(t *testing.T) {
	cam := startCam(t, camOpts{user: "camuser", pass: camPassword})
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), nil)})
	waitFor(t, 5*time.Second, "live", func() bool { return r.status("cam1/main").State == StateLive })
	playURL := "rtsp://" + r.addr + "/cam1/main/"

	owner, sess := setupRaw(t, r.addr, "cam1/main", "alice", "alicepw", 0)
	thief := dialRaw(t, r.addr, 0)
	if res, err := thief.do("TEARDOWN", playURL, map[string]string{"Session": sess}); err == nil && res.status == 200 {
		t.Error("TEARDOWN of another connection's session answered 200")
	}
	res, err := owner.do("PLAY", playURL, map[string]string{"Session": sess, "Authorization": basicAuth("alice", "alicepw")})
	if err != nil || res.status != 200 {
		t.Fatalf("owner PLAY after a stranger's TEARDOWN: %v %+v", err, res)
	}
	if !streamData(owner, 5*time.Second) {
		t.Fatal("owner received no stream data")
	}
	if len(r.srv.Sessions()) != 1 {
		t.Fatalf("sessions = %+v", r.srv.Sessions())
	}
	// The owner's own TEARDOWN still ends it.
	if _, err := owner.c.Write([]byte("TEARDOWN " + playURL + " RTSP/1.0\r\nCSeq: 9\r\nSession: " + sess + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the owner's TEARDOWN to end the session", func() bool { return len(r.srv.Sessions()) == 0 })
}
