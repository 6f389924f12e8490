package reliability

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// rtspConn is a bare RTSP/TCP client: it speaks just enough (Digest via
// gortsplib's auth.Sender, DESCRIBE/SETUP/PLAY) to misbehave afterwards,
// e.g. by never reading again.
type rtspConn struct {
	nc         net.Conn
	br         *bufio.Reader
	user, pass string
	cseq       int
	sender     *auth.Sender
	session    string
}

// dialRTSP connects to addr, from the loopback address local when not "".
func dialRTSP(local, addr, user, pass string) (*rtspConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rtspConn{nc: nc, br: bufio.NewReader(nc), user: user, pass: pass}, nil
}

func (c *rtspConn) Close() { c.nc.Close() }

// roundTrip sends one request and reads its answer; a first 401 with a
// challenge is answered once with credentials, as real clients do.
func (c *rtspConn) roundTrip(method base.Method, rawURL string, hdr base.Header) (*base.Response, error) {
	for {
		res, err := c.exchange(method, rawURL, hdr)
		if err != nil {
			return nil, err
		}
		if res.StatusCode == base.StatusUnauthorized && c.sender == nil && len(res.Header["WWW-Authenticate"]) > 0 {
			c.sender = &auth.Sender{WWWAuth: res.Header["WWW-Authenticate"], User: c.user, Pass: c.pass}
			if err := c.sender.Initialize(); err != nil {
				return nil, err
			}
			continue
		}
		return res, nil
	}
}

// exchange sends one request (with the session and the credentials the
// connection has) and reads its answer.
func (c *rtspConn) exchange(method base.Method, rawURL string, hdr base.Header) (*base.Response, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c.cseq++
	req := &base.Request{Method: method, URL: u, Header: base.Header{"CSeq": {strconv.Itoa(c.cseq)}}}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.session != "" {
		req.Header["Session"] = base.HeaderValue{c.session}
	}
	if c.sender != nil {
		c.sender.AddAuthorization(req)
	}
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		return nil, err
	}
	var res base.Response
	if err := res.Unmarshal(c.br); err != nil {
		return nil, err
	}
	return &res, nil
}

// play runs DESCRIBE, SETUP (TCP interleaved) and PLAY on path.
func (c *rtspConn) play(host, path string) error {
	base0 := "rtsp://" + host + "/" + path
	res, err := c.roundTrip(base.Describe, base0, base.Header{"Accept": {"application/sdp"}})
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("describe: %d", res.StatusCode)
	}
	ctrlBase := base0
	if cb := res.Header["Content-Base"]; len(cb) == 1 {
		ctrlBase = strings.TrimSuffix(cb[0], "/")
	}
	control := ""
	inMedia := false
	for _, l := range strings.Split(string(res.Body), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "m=") {
			if inMedia {
				break
			}
			inMedia = true
		}
		if v, ok := strings.CutPrefix(l, "a=control:"); ok && inMedia {
			control = v
		}
	}
	setupURL := ctrlBase
	switch {
	case strings.HasPrefix(control, "rtsp://"):
		setupURL = control
	case control != "" && control != "*":
		setupURL = ctrlBase + "/" + control
	}
	res, err = c.roundTrip(base.Setup, setupURL, base.Header{"Transport": {"RTP/AVP/TCP;unicast;interleaved=0-1"}})
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("setup %s: %d", setupURL, res.StatusCode)
	}
	if s := res.Header["Session"]; len(s) == 1 {
		c.session, _, _ = strings.Cut(s[0], ";")
	}
	res, err = c.roundTrip(base.Play, ctrlBase+"/", base.Header{"Range": {"npt=0.000-"}})
	if err != nil {
		return fmt.Errorf("play: %w", err)
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("play: %d", res.StatusCode)
	}
	return nil
}

// describeStatus is the outcome of one DESCRIBE with these credentials:
// the status code, or 0 when the server closed the connection without an
// answer (refused).
func describeStatus(local, host, path, user, pass string) (int, error) {
	c, err := dialRTSP(local, host, user, pass)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	res, err := c.roundTrip(base.Describe, "rtsp://"+host+"/"+path, base.Header{"Accept": {"application/sdp"}})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 0, err
		}
		return 0, nil // connection closed: refused
	}
	return int(res.StatusCode), nil
}
