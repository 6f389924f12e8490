package stream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmjpeg"

	"github.com/pion/rtp"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// MJPEG over HTTP: cameras that serve multipart/x-mixed-replace JPEG
// frames (video.mjpg, video.cgi) are pulled with HTTP Digest (or Basic when
// the camera allows it) and served as RTP/JPEG (RFC 2435).

// maxJPEGFrame bounds one multipart part: a 4K JPEG is a few MB.
const maxJPEGFrame = 16 << 20

// isHTTPSource reports whether a stream URL is an HTTP(S) MJPEG source.
func isHTTPSource(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// mjpegReader reads JPEG frames from a multipart body.
type mjpegReader struct {
	mr    *multipart.Reader
	first []byte // the body's first bytes, for error messages
}

// newMJPEGReader checks the response's Content-Type and wraps its body.
func newMJPEGReader(contentType string, body io.Reader) (*mjpegReader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("not multipart MJPEG: Content-Type %q", truncate(contentType, 100))
	}
	boundary := strings.TrimPrefix(params["boundary"], "--") // some cameras repeat the dashes here
	if boundary == "" {
		return nil, fmt.Errorf("multipart Content-Type %q has no boundary", truncate(contentType, 100))
	}
	br := bufio.NewReaderSize(body, 64<<10)
	first, _ := br.Peek(32)
	return &mjpegReader{mr: multipart.NewReader(br, boundary), first: bytes.Clone(first)}, nil
}

// next returns the next JPEG frame.
func (r *mjpegReader) next() ([]byte, error) {
	for {
		part, err := r.mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("broken multipart stream: %v (first bytes: %q)", err, r.first)
		}
		b, err := io.ReadAll(io.LimitReader(part, maxJPEGFrame+1))
		if err != nil {
			return nil, fmt.Errorf("broken multipart part: %v", err)
		}
		if len(b) > maxJPEGFrame {
			return nil, fmt.Errorf("multipart part larger than %d bytes", maxJPEGFrame)
		}
		if len(b) == 0 {
			continue // some cameras send empty keep-alive parts
		}
		if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
			return nil, fmt.Errorf("multipart part is not a JPEG image (first bytes: %x)", b[:min(len(b), 16)])
		}
		return b, nil
	}
}

// credentials returns the camera user and password (URL userinfo, then the sealed password).
func (sp StreamSpec) credentials(ctx context.Context, u *url.URL) (user, pass string, err error) {
	user = sp.Username
	if u.User != nil {
		if user == "" {
			user = u.User.Username()
		}
		if pw, ok := u.User.Password(); ok {
			pass = pw
		}
	}
	if sp.Password != nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		pw, perr := sp.Password(pctx)
		cancel()
		if perr != nil {
			return "", "", fmt.Errorf("cannot unseal camera password: %s", scrub(perr.Error(), pw))
		}
		pass = pw
	}
	return user, pass, nil
}

// pullMJPEGOnce is pullOnce for an HTTP MJPEG camera.
func (p *path) pullMJPEGOnce(ctx context.Context) (liveAt time.Time, err error) {
	sp := p.spec
	u, err := url.Parse(sp.URL)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid camera URL %s", apitype.RedactURL(sp.URL))
	}
	user, pass, err := sp.credentials(ctx, u)
	if err != nil {
		return time.Time{}, err
	}
	defer func() {
		if err != nil && !errors.Is(err, errIdle) { // errIdle is no failure: keep it recognisable
			err = errors.New(scrub(err.Error(), pass))
		}
	}()
	u.User = nil
	parent := ctx
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: p.s.cfg.ReadTimeout, TLSHandshakeTimeout: p.s.cfg.ReadTimeout},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the camera redirects; give its final URL")
		},
	}
	get := func(authz string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		return client.Do(req)
	}
	res, err := get("")
	if err != nil {
		return time.Time{}, fmt.Errorf("connect %s: %v", apitype.RedactURL(sp.URL), unwrapURLError(err))
	}
	if res.StatusCode == http.StatusUnauthorized && user != "" {
		challenges := res.Header.Values("WWW-Authenticate")
		res.Body.Close()
		authz, aerr := p.httpAuthorization(challenges, u, user, pass)
		if aerr != nil {
			return time.Time{}, aerr
		}
		if res, err = get(authz); err != nil {
			return time.Time{}, fmt.Errorf("connect %s: %v", apitype.RedactURL(sp.URL), unwrapURLError(err))
		}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("camera answered %s", res.Status)
	}
	frames, err := newMJPEGReader(res.Header.Get("Content-Type"), res.Body)
	if err != nil {
		return time.Time{}, err
	}

	media := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.MJPEG{}}}
	if err := p.goLive(&description.Session{Title: "MJPEG over HTTP", Medias: []*description.Media{media}}); err != nil {
		return time.Time{}, err
	}
	enc := &rtpmjpeg.Encoder{PayloadMaxSize: p.s.rtsp.MaxPacketSize - 12}
	if err := enc.Init(); err != nil {
		return time.Time{}, err
	}
	// A camera that stops sending keeps the connection open: a watchdog
	// ends it after ReadTimeout without a frame.
	errNoFrame := fmt.Errorf("no complete JPEG frame in %v: the camera stalled or its multipart boundary never came (first bytes: %q)", p.s.cfg.ReadTimeout, frames.first)
	watchdog := time.AfterFunc(p.s.cfg.ReadTimeout, func() { cancel(errNoFrame) })
	defer watchdog.Stop()
	start := time.Now()
	var idleSince time.Time
	for n := 0; ; n++ {
		jpeg, err := frames.next()
		if parent.Err() != nil {
			return liveAt, parent.Err()
		}
		if ctx.Err() != nil {
			return liveAt, context.Cause(ctx)
		}
		if err != nil {
			return liveAt, err
		}
		watchdog.Reset(p.s.cfg.ReadTimeout)
		pkts, err := encodeJPEG(enc, jpeg)
		if err != nil {
			return liveAt, fmt.Errorf("frame %d is not a JPEG that RTP/JPEG can carry (baseline, 8-bit, 4:2:0 or 4:2:2): %v", n, err)
		}
		ts := uint32(time.Since(start).Seconds() * 90000)
		for _, pkt := range pkts {
			pkt.Timestamp = ts
			p.ingest(media, pkt)
		}
		if liveAt.IsZero() {
			liveAt = time.Now()
			p.markLive()
			p.s.log.Info("camera stream live", "path", p.name, "url", displayURL(sp), "transport", "http mjpeg")
		}
		if p.spec.OnDemand {
			switch {
			case p.demand():
				idleSince = time.Time{}
			case idleSince.IsZero():
				idleSince = time.Now()
			case time.Since(idleSince) >= p.s.cfg.OnDemandCloseAfter:
				return liveAt, errIdle
			}
		}
	}
}

// httpAuthorization answers an HTTP 401 with Digest, or Basic only when
// the camera's spec allows it (the password would travel in clear).
func (p *path) httpAuthorization(challenges []string, u *url.URL, user, pass string) (string, error) {
	var digest []string
	basic := false
	for _, c := range challenges {
		switch scheme, _, _ := strings.Cut(strings.TrimSpace(c), " "); strings.ToLower(scheme) {
		case "digest":
			digest = append(digest, c)
		case "basic":
			basic = true
		}
	}
	wwwAuth := base.HeaderValue(digest)
	if len(digest) == 0 {
		if !basic {
			return "", fmt.Errorf("camera asks for an authentication scheme we do not speak: %q", truncate(strings.Join(challenges, "; "), 200))
		}
		if !p.spec.AllowBasic {
			return "", errors.New("camera asks for HTTP Basic (password in clear); allow it with camera set NAME --allow-basic=true")
		}
		wwwAuth = base.HeaderValue{`Basic realm="camera"`}
	}
	se := &auth.Sender{WWWAuth: wwwAuth, User: user, Pass: pass}
	if err := se.Initialize(); err != nil {
		return "", fmt.Errorf("camera authentication challenge not understood: %v", err)
	}
	req := &base.Request{Method: base.Method(http.MethodGet), URL: &base.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}}
	if u.Path == "" {
		req.URL.Path = "/"
	}
	se.AddAuthorization(req)
	if v := req.Header["Authorization"]; len(v) == 1 {
		return v[0], nil
	}
	return "", errors.New("cannot build the Authorization header")
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// encodeJPEG checks a JPEG's segment structure (gortsplib's encoder trusts
// it and panics on a malformed one), gives a single quantisation table
// to the chroma components too (RTP/JPEG readers such as ffmpeg need one
// table per component class; ffmpeg's own encoder writes one for both), and
// packetises it.
func encodeJPEG(enc *rtpmjpeg.Encoder, img []byte) (pkts []*rtp.Packet, err error) {
	tables, ok := jpegQTables(img)
	if !ok {
		return nil, errors.New("malformed JPEG segments")
	}
	if t0, ok := tables[0]; ok && len(tables) == 1 {
		// Insert DQT table 1 = table 0 after SOI.
		dqt := append([]byte{0xff, 0xdb, 0, byte(2 + 1 + len(t0)), 0x01}, t0...)
		img = append(append(append([]byte{}, img[:2]...), dqt...), img[2:]...)
	}
	defer func() {
		if r := recover(); r != nil {
			pkts, err = nil, fmt.Errorf("JPEG not accepted by the RTP/JPEG packetiser: %v", r)
		}
	}()
	return enc.Encode(img)
}

// jpegQTables walks a baseline JPEG's segments up to its scan and returns
// its 8-bit quantisation tables by id; ok is false when the segments do not
// add up or a frame header or scan is missing.
func jpegQTables(b []byte) (map[uint8][]byte, bool) {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return nil, false
	}
	tables := map[uint8][]byte{}
	sof := false
	for i := 2; ; {
		if i+4 > len(b) || b[i] != 0xff {
			return nil, false
		}
		marker := b[i+1]
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return nil, false
		}
		seg := b[i+4 : i+2+n]
		switch marker {
		case 0xdb: // DQT
			for len(seg) > 0 {
				pq, tq := seg[0]>>4, seg[0]&0x0f
				if pq != 0 || len(seg) < 65 {
					return nil, false // 16-bit tables: RTP/JPEG carries 8-bit ones
				}
				tables[tq] = seg[1:65]
				seg = seg[65:]
			}
		case 0xc0: // SOF0, baseline
			if len(seg) < 6 {
				return nil, false
			}
			sof = true
		case 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf:
			return nil, false // not baseline
		case 0xdd: // DRI
			if len(seg) < 2 {
				return nil, false
			}
		case 0xda: // SOS
			return tables, sof && len(tables) > 0 && len(seg) >= 1
		}
		i += 2 + n
	}
}
