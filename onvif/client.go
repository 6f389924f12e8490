package onvif

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	"github.com/hashicorp/go-hclog"
	"github.com/use-go/onvif/device"
	"github.com/use-go/onvif/media"
	"github.com/use-go/onvif/xsd/onvif"
)

const (
	defaultTimeout   = 5 * time.Second
	maxResponseBytes = 4 << 20
	// maxProfiles bounds what one GetProfiles answer may list (a 32-channel
	// recorder with three profiles each is 96); more are ignored.
	maxProfiles      = 512
	mediaNS          = "http://www.onvif.org/ver10/media/wsdl"
	deviceActionBase = "http://www.onvif.org/ver10/device/wsdl/"
	mediaActionBase  = "http://www.onvif.org/ver10/media/wsdl/"
)

// ClientOptions configures a device client.
type ClientOptions struct {
	Username, Password string
	Timeout            time.Duration // per call; default 5s
	// HTTPClient is copied; redirects are never followed whatever it says,
	// so a camera cannot send us to a host the caller did not name.
	HTTPClient *http.Client
	Logger     hclog.Logger
	// CertSHA256 pins an https device's TLS leaf certificate (hex SHA-256):
	// a handshake presenting another one fails before any request is sent.
	// Empty: the first certificate seen is learnt (CertSHA256 method) and
	// every later connection of this client must present it too.
	CertSHA256 string
}

// Client talks to one camera's device service and, through it, its media
// service. It is safe for concurrent use.
type Client struct {
	device   *url.URL
	user     string
	password string
	timeout  time.Duration
	hc       *http.Client
	log      hclog.Logger
	pin      *certPin // https only

	offset      atomic.Int64 // camera clock minus ours, ns
	offsetKnown atomic.Bool
	media       atomic.Pointer[url.URL]
}

// DeviceInfo is GetDeviceInformation's answer.
type DeviceInfo struct {
	Manufacturer, Model, FirmwareVersion, SerialNumber, HardwareID string
}

// Profile is a media profile with its video encoder settings (zero values
// when the profile has no video encoder).
type Profile struct {
	Token, Name, Encoding string
	// SourceToken is the video source (a recorder's channel) the profile
	// encodes, SourceName its source configuration's name ("" when the
	// device does not say).
	SourceToken, SourceName string
	Width, Height           int
	FrameRate               int // frames/s (FrameRateLimit)
	BitrateKbps             int // BitrateLimit
	HasVideo                bool
}

// StreamURI is a profile's RTSP URI with the host fixed up and any
// credentials the camera embedded moved out of the URI.
type StreamURI struct {
	URI                string
	Username, Password string
}

// NewClient validates the device service URL (http or https, a host, no
// embedded credentials); it does no network I/O.
func NewClient(xaddr string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(xaddr))
	if err != nil {
		return nil, errors.New("onvif: device address is not a valid URL")
	}
	if u.User != nil {
		return nil, errors.New("onvif: device address must not contain credentials; pass them as options")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("onvif: device address %q: scheme must be http or https", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("onvif: device address %q has no host", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, ok := atoiSmall(p); !ok || n < 1 || n > 65535 {
			return nil, fmt.Errorf("onvif: device address %q: invalid port", u.Redacted())
		}
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/onvif/device_service"
	}
	u.Fragment = ""
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	var hc http.Client
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	if hc.Timeout <= 0 || hc.Timeout > opts.Timeout {
		hc.Timeout = opts.Timeout
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var pin *certPin
	if u.Scheme == "https" {
		pin = &certPin{want: strings.ToLower(strings.TrimSpace(opts.CertSHA256))}
		if hc.Transport, err = pinnedTransport(hc.Transport, pin); err != nil {
			return nil, err
		}
	} else if opts.CertSHA256 != "" {
		return nil, fmt.Errorf("onvif: device address %q is plain http but a certificate is pinned: refusing to downgrade", u.Redacted())
	} else if hc.Transport == nil {
		// Never through an environment proxy: the request carries credentials
		// and goes only to the address named.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		hc.Transport = t
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Client{
		device:   u,
		user:     opts.Username,
		password: opts.Password,
		timeout:  opts.Timeout,
		hc:       &hc,
		log:      log,
		pin:      pin,
	}, nil
}

// CertSHA256 is the fingerprint of the TLS certificate the device presented
// ("" for http, or before the first call).
func (c *Client) CertSHA256() string {
	if c.pin == nil {
		return ""
	}
	return c.pin.fingerprint()
}

// XAddr is the device service URL the client talks to.
func (c *Client) XAddr() string { return c.device.String() }

// ClockOffset is the camera's clock minus ours, as last learnt (zero
// before GetSystemDateAndTime succeeded).
func (c *Client) ClockOffset() time.Duration { return time.Duration(c.offset.Load()) }

// GetSystemDateAndTime asks the camera for its UTC clock (without
// authentication, falling back to authenticated if the camera insists) and
// learns the clock offset used in WS-UsernameToken Created.
func (c *Client) GetSystemDateAndTime(ctx context.Context) (time.Time, error) {
	var resp struct {
		SDT struct {
			UTC   *xmlDateTime `xml:"UTCDateTime"`
			Local *xmlDateTime `xml:"LocalDateTime"`
		} `xml:"SystemDateAndTime"`
	}
	t0 := time.Now()
	err := c.do(ctx, c.device, "GetSystemDateAndTime", deviceActionBase+"GetSystemDateAndTime", device.GetSystemDateAndTime{}, false, &resp)
	if IsNotAuthorized(err) && c.user != "" {
		t0 = time.Now()
		err = c.do(ctx, c.device, "GetSystemDateAndTime", deviceActionBase+"GetSystemDateAndTime", device.GetSystemDateAndTime{}, true, &resp)
	}
	t1 := time.Now()
	if err != nil {
		return time.Time{}, err
	}
	dt := resp.SDT.UTC
	if dt == nil {
		// Without UTC the local time is the best we have; a wrong zone is
		// an offset of hours, which the NotAuthorized retry cannot fix but
		// which is still better than nothing.
		dt = resp.SDT.Local
	}
	if dt == nil {
		return time.Time{}, fmt.Errorf("onvif: GetSystemDateAndTime on %s: %w: no date and time", c.device.Host, ErrBadResponse)
	}
	cam, ok := dt.time()
	if !ok {
		return time.Time{}, fmt.Errorf("onvif: GetSystemDateAndTime on %s: %w: invalid date or time", c.device.Host, ErrBadResponse)
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	off := cam.Sub(mid)
	c.offset.Store(int64(off))
	c.offsetKnown.Store(true)
	c.log.Debug("learnt camera clock offset", "device", c.device.Host, "offset", off)
	return cam, nil
}

type xmlDateTime struct {
	Time struct {
		Hour   string `xml:"Hour"`
		Minute string `xml:"Minute"`
		Second string `xml:"Second"`
	} `xml:"Time"`
	Date struct {
		Year  string `xml:"Year"`
		Month string `xml:"Month"`
		Day   string `xml:"Day"`
	} `xml:"Date"`
}

func (d *xmlDateTime) time() (time.Time, bool) {
	var v [6]int
	for i, s := range []string{d.Date.Year, d.Date.Month, d.Date.Day, d.Time.Hour, d.Time.Minute, d.Time.Second} {
		n, ok := atoiSmall(strings.TrimSpace(s))
		if !ok {
			return time.Time{}, false
		}
		v[i] = n
	}
	if v[0] < 1970 || v[0] > 9999 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 ||
		v[3] > 23 || v[4] > 59 || v[5] > 60 {
		return time.Time{}, false
	}
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], 0, time.UTC), true
}

// GetDeviceInformation returns manufacturer, model, firmware and serial.
func (c *Client) GetDeviceInformation(ctx context.Context) (DeviceInfo, error) {
	var resp struct {
		Manufacturer, Model, FirmwareVersion, SerialNumber, HardwareId string
	}
	if err := c.call(ctx, c.device, "GetDeviceInformation", deviceActionBase+"GetDeviceInformation", device.GetDeviceInformation{}, &resp); err != nil {
		return DeviceInfo{}, err
	}
	return DeviceInfo{
		Manufacturer:    cleanField(resp.Manufacturer),
		Model:           cleanField(resp.Model),
		FirmwareVersion: cleanField(resp.FirmwareVersion),
		SerialNumber:    cleanField(resp.SerialNumber),
		HardwareID:      cleanField(resp.HardwareId),
	}, nil
}

// GetNetworkAddresses returns the IPv4 addresses the camera says its
// enabled interfaces have (manual, DHCP and link-local). Asked over a
// pinned TLS channel it is the camera's own word on where it lives, which a
// relay at another address cannot forge.
func (c *Client) GetNetworkAddresses(ctx context.Context) ([]string, error) {
	var raw []byte
	if err := c.callRaw(ctx, c.device, "GetNetworkInterfaces", deviceActionBase+"GetNetworkInterfaces", device.GetNetworkInterfaces{}, &raw); err != nil {
		return nil, err
	}
	addrs, err := parseNetworkAddresses(raw)
	if err != nil {
		return nil, fmt.Errorf("onvif: GetNetworkInterfaces on %s: %w", c.device.Host, err)
	}
	return addrs, nil
}

// parseNetworkAddresses decodes a GetNetworkInterfacesResponse by local
// names: the IPv4 addresses of enabled interfaces, at most 64.
func parseNetworkAddresses(data []byte) ([]string, error) {
	type addr struct {
		Address string `xml:"Address"`
	}
	var resp struct {
		NICs []struct {
			Enabled string `xml:"Enabled"`
			IPv4    struct {
				Enabled string `xml:"Enabled"`
				Config  struct {
					Manual    []addr `xml:"Manual"`
					LinkLocal addr   `xml:"LinkLocal"`
					FromDHCP  addr   `xml:"FromDHCP"`
				} `xml:"Config"`
			} `xml:"IPv4"`
		} `xml:"NetworkInterfaces"`
	}
	if err := xml.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	var out []string
	for _, n := range resp.NICs {
		if strings.TrimSpace(n.Enabled) == "false" || strings.TrimSpace(n.IPv4.Enabled) == "false" {
			continue
		}
		cfg := n.IPv4.Config
		for _, a := range append(append([]addr{}, cfg.Manual...), cfg.LinkLocal, cfg.FromDHCP) {
			if ip := net.ParseIP(strings.TrimSpace(a.Address)); ip != nil && ip.To4() != nil && len(out) < 64 {
				out = append(out, ip.String())
			}
		}
	}
	return out, nil
}

// MediaXAddr finds the media service (GetCapabilities, falling back to
// GetServices), with its host replaced by the one we reached the device at.
// The answer is cached.
func (c *Client) MediaXAddr(ctx context.Context) (string, error) {
	u, err := c.mediaURL(ctx)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func (c *Client) mediaURL(ctx context.Context) (*url.URL, error) {
	if u := c.media.Load(); u != nil {
		return u, nil
	}
	var caps struct {
		Capabilities struct {
			Media struct {
				XAddr string `xml:"XAddr"`
			} `xml:"Media"`
		} `xml:"Capabilities"`
	}
	reported := ""
	err := c.call(ctx, c.device, "GetCapabilities", deviceActionBase+"GetCapabilities",
		device.GetCapabilities{Category: onvif.CapabilityCategory("All")}, &caps)
	if err == nil {
		reported = strings.TrimSpace(caps.Capabilities.Media.XAddr)
	} else if IsNotAuthorized(err) || errors.Is(err, ErrUnreachable) || ctx.Err() != nil {
		return nil, err
	} else {
		c.log.Debug("GetCapabilities failed; trying GetServices", "device", c.device.Host, "error", err)
	}
	if reported == "" {
		var svcs struct {
			Service []struct {
				Namespace string `xml:"Namespace"`
				XAddr     string `xml:"XAddr"`
			} `xml:"Service"`
		}
		serr := c.call(ctx, c.device, "GetServices", deviceActionBase+"GetServices",
			device.GetServices{IncludeCapability: false}, &svcs)
		if serr != nil {
			if err != nil && !IsActionNotSupported(serr) {
				return nil, serr
			}
			if err == nil {
				err = serr
			}
			return nil, fmt.Errorf("onvif: no media service on %s: %w", c.device.Host, err)
		}
		for _, s := range svcs.Service {
			if strings.TrimSpace(s.Namespace) == mediaNS {
				reported = strings.TrimSpace(s.XAddr)
				break
			}
		}
	}
	if reported == "" {
		return nil, fmt.Errorf("onvif: %s reports no media service: %w", c.device.Host, ErrNoProfiles)
	}
	u, err := c.serviceURL(reported)
	if err != nil {
		return nil, err
	}
	if u.String() != reported {
		c.log.Debug("media service address fixed up", "device", c.device.Host, "using", u.String())
	}
	c.media.Store(u)
	return u, nil
}

// GetProfiles lists the media profiles with their video encoder settings.
func (c *Client) GetProfiles(ctx context.Context) ([]Profile, error) {
	mu, err := c.mediaURL(ctx)
	if err != nil {
		return nil, err
	}
	var raw []byte
	err = c.callRaw(ctx, mu, "GetProfiles", mediaActionBase+"GetProfiles", media.GetProfiles{}, &raw)
	if err != nil {
		return nil, err
	}
	ps, err := parseProfiles(raw)
	if err != nil {
		return nil, fmt.Errorf("onvif: GetProfiles on %s: %w", c.device.Host, err)
	}
	return ps, nil
}

// rawVideoSource and rawVideoEncoder are the configuration elements Media1
// and Media2 profiles share; only where they sit in the profile differs.
type rawVideoSource struct {
	Name        string `xml:"Name"`
	SourceToken string `xml:"SourceToken"`
}

type rawVideoEncoder struct {
	Encoding   string `xml:"Encoding"`
	Resolution struct {
		Width  string `xml:"Width"`
		Height string `xml:"Height"`
	} `xml:"Resolution"`
	RateControl struct {
		FrameRateLimit string `xml:"FrameRateLimit"`
		BitrateLimit   string `xml:"BitrateLimit"`
	} `xml:"RateControl"`
}

// rawProfile is one profile of either version, as profileList takes it.
type rawProfile struct {
	token, name string
	source      *rawVideoSource
	encoder     *rawVideoEncoder
}

type rawProfiles struct {
	Profiles []struct {
		Token string           `xml:"token,attr"`
		Name  string           `xml:"Name"`
		VSC   *rawVideoSource  `xml:"VideoSourceConfiguration"`
		VEC   *rawVideoEncoder `xml:"VideoEncoderConfiguration"`
	} `xml:"Profiles"`
}

// parseProfiles decodes a GetProfilesResponse element by local names, so
// tt:, trt: or any other prefixes work.
func parseProfiles(data []byte) ([]Profile, error) {
	var r rawProfiles
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	raws := make([]rawProfile, 0, min(len(r.Profiles), maxProfiles))
	for _, rp := range r.Profiles {
		raws = append(raws, rawProfile{rp.Token, rp.Name, rp.VSC, rp.VEC})
	}
	return profileList(raws), nil
}

// profileList applies the rules both versions share. Numbers are parsed
// leniently ("25.000000" is 25); a profile without a token is skipped, and
// of duplicate tokens the first wins (a duplicate would make GetStreamUri
// ambiguous); at most maxProfiles.
func profileList(raws []rawProfile) []Profile {
	var out []Profile
	seen := map[string]bool{}
	for _, rp := range raws {
		if len(out) >= maxProfiles {
			break
		}
		tok := cleanField(rp.token)
		if tok == "" || len(tok) > 256 || seen[tok] {
			continue
		}
		seen[tok] = true
		p := Profile{Token: tok, Name: textutil.Prefix(cleanField(rp.name), 256)}
		if v := rp.source; v != nil {
			p.SourceToken, p.SourceName = sourceFields(v.SourceToken, v.Name)
		}
		if v := rp.encoder; v != nil {
			p.HasVideo = true
			p.Encoding = normaliseEncoding(v.Encoding)
			p.Width = lenientInt(v.Resolution.Width)
			p.Height = lenientInt(v.Resolution.Height)
			p.FrameRate = lenientInt(v.RateControl.FrameRateLimit)
			p.BitrateKbps = lenientInt(v.RateControl.BitrateLimit)
		}
		out = append(out, p)
	}
	return out
}

func normaliseEncoding(s string) string {
	s = strings.ToUpper(cleanField(s))
	switch s {
	case "H.264", "AVC":
		return "H264"
	case "H.265", "HEVC":
		return "H265"
	}
	return textutil.Prefix(s, 32)
}

// lenientInt parses an integer or a decimal, rounding; garbage, negative
// and absurd values become 0.
func lenientInt(s string) int {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f > 1e9 || f != f {
		return 0
	}
	return int(f + 0.5)
}

// GetStreamURI asks for the RTSP (RTP-Unicast) URI of a profile, fixes up
// its host and moves embedded credentials out of it.
func (c *Client) GetStreamURI(ctx context.Context, profileToken string) (StreamURI, error) {
	mu, err := c.mediaURL(ctx)
	if err != nil {
		return StreamURI{}, err
	}
	req := media.GetStreamUri{
		StreamSetup: onvif.StreamSetup{
			Stream:    onvif.StreamType("RTP-Unicast"),
			Transport: onvif.Transport{Protocol: onvif.TransportProtocol("RTSP")},
		},
		ProfileToken: onvif.ReferenceToken(profileToken),
	}
	var resp struct {
		MediaUri struct {
			Uri string `xml:"Uri"`
		} `xml:"MediaUri"`
	}
	if err := c.call(ctx, mu, "GetStreamUri", mediaActionBase+"GetStreamUri", req, &resp); err != nil {
		return StreamURI{}, err
	}
	su, err := fixStreamURI(resp.MediaUri.Uri, c.device)
	if err != nil {
		return StreamURI{}, fmt.Errorf("onvif: GetStreamUri on %s: %w", c.device.Host, err)
	}
	return su, nil
}

// fixStreamURI applies the host fix-up to an rtsp(s) URI and strips the
// credentials some cameras embed, returning them separately.
func fixStreamURI(raw string, reached *url.URL) (StreamURI, error) {
	u, err := fixHost(raw, reached, "rtsp", "rtsps")
	if err != nil {
		return StreamURI{}, err
	}
	var su StreamURI
	if u.User != nil {
		su.Username = u.User.Username()
		su.Password, _ = u.User.Password()
		u.User = nil
	}
	su.URI = u.String()
	return su, nil
}

// fixHost replaces the host of a service or stream address reported by
// the camera with the host we reached the device at, keeping the reported
// scheme, port and path: cameras report 0.0.0.0, NAT-internal or stale
// addresses, and we never connect to a host the caller did not name. An
// explicit port is honoured; an address with the reached scheme and no port
// takes the reached port (the camera rarely knows a forwarded port); a
// relative address ("/onvif/media") takes the reached scheme and port.
// Errors never quote the address (it may hold credentials).
func fixHost(reported string, reached *url.URL, schemes ...string) (*url.URL, error) {
	reported = strings.TrimSpace(reported)
	if reported == "" {
		return nil, fmt.Errorf("%w: empty address", ErrBadResponse)
	}
	u, err := url.Parse(reported)
	if err != nil {
		return nil, fmt.Errorf("%w: address is not a valid URL", ErrBadResponse)
	}
	u.Fragment = ""
	u.RawFragment = ""
	if u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/") && contains(schemes, reached.Scheme) {
		u.Scheme = reached.Scheme
		u.Host = reached.Host
		return u, nil
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if !contains(schemes, u.Scheme) {
		return nil, fmt.Errorf("%w: address scheme %q is not %s", ErrBadResponse, textutil.Prefix(u.Scheme, 16), strings.Join(schemes, " or "))
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("%w: address has no host", ErrBadResponse)
	}
	host := reached.Hostname()
	if u.Port() == "" && u.Scheme == reached.Scheme {
		// No port named: the service shares the device service's server,
		// which we know answers at the reached port (behind NAT too).
		u.Host = reached.Host
		return u, nil
	}
	if p := u.Port(); p != "" {
		n, ok := atoiSmall(p)
		if !ok || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: address has an invalid port", ErrBadResponse)
		}
		u.Host = net.JoinHostPort(host, p)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	} else {
		u.Host = host
	}
	return u, nil
}

// call is an authenticated request that learns the clock offset first and,
// on a NotAuthorized fault, refreshes it and retries once (cameras reject
// tokens whose Created is outside their window, and clocks drift or jump).
func (c *Client) call(ctx context.Context, endpoint *url.URL, op, action string, body, out any) error {
	var raw []byte
	if err := c.callRaw(ctx, endpoint, op, action, body, &raw); err != nil {
		return err
	}
	if err := xml.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("onvif: %s on %s: %w: %v", op, c.device.Host, ErrBadResponse, err)
	}
	return nil
}

func (c *Client) callRaw(ctx context.Context, endpoint *url.URL, op, action string, body any, raw *[]byte) error {
	auth := c.user != ""
	if auth && !c.offsetKnown.Load() {
		if _, err := c.GetSystemDateAndTime(ctx); err != nil {
			if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrCertMismatch) || ctx.Err() != nil {
				return err
			}
			c.log.Debug("cannot learn camera clock; using ours", "device", c.device.Host, "error", err)
		}
	}
	err := c.do(ctx, endpoint, op, action, body, auth, raw)
	var f *Fault
	if auth && errors.As(err, &f) && f.notAuthorized() {
		if _, terr := c.GetSystemDateAndTime(ctx); terr == nil {
			c.log.Debug("NotAuthorized; retrying with refreshed clock offset", "device", c.device.Host, "op", op)
			err = c.do(ctx, endpoint, op, action, body, auth, raw)
		}
	}
	return err
}

// do sends one SOAP request and decodes the first Body element into out
// (a *[]byte receives the raw element). A SOAP fault becomes *Fault, HTTP
// 401 is answered once with Digest if challenged, any other non-200 is an
// error, transport failures wrap ErrUnreachable.
func (c *Client) do(ctx context.Context, endpoint *url.URL, op, action string, body any, auth bool, out any) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	where := c.device.Host

	var tok *usernameToken
	if auth {
		t := newUsernameToken(c.user, c.password, time.Now().Add(c.ClockOffset()))
		tok = &t
	}
	payload, err := buildEnvelope(body, tok)
	if err != nil {
		return err
	}
	resp, err := c.post(ctx, endpoint, action, payload, "")
	if err != nil {
		return c.transportErr(parent, op, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		ch, ok := findDigestChallenge(resp.Header)
		drain(resp)
		if !ok || c.user == "" {
			return fmt.Errorf("onvif: %s on %s: %w (HTTP 401, no usable Digest challenge)", op, where, ErrUnauthorized)
		}
		authz := ch.authorization(http.MethodPost, endpoint.RequestURI(), c.user, c.password, 1)
		resp, err = c.post(ctx, endpoint, action, payload, authz)
		if err != nil {
			return c.transportErr(parent, op, err)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			drain(resp)
			return fmt.Errorf("onvif: %s on %s: %w (HTTP Digest rejected)", op, where, ErrUnauthorized)
		}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return c.transportErr(parent, op, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("onvif: %s on %s: %w: response larger than %d bytes", op, where, ErrBadResponse, maxResponseBytes)
	}
	inner, perr := parseEnvelope(data)
	var f *Fault
	if errors.As(perr, &f) {
		return fmt.Errorf("onvif: %s on %s: %w", op, where, f)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("onvif: %s on %s: %w: HTTP %d", op, where, ErrBadResponse, resp.StatusCode)
	}
	if perr != nil {
		return fmt.Errorf("onvif: %s on %s: %w", op, where, perr)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = inner
		return nil
	}
	if err := xml.Unmarshal(inner, out); err != nil {
		return fmt.Errorf("onvif: %s on %s: %w: %v", op, where, ErrBadResponse, err)
	}
	return nil
}

func (c *Client) post(ctx context.Context, endpoint *url.URL, action string, payload []byte, authz string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="`+action+`"`)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return c.hc.Do(req)
}

// transportErr wraps a failed exchange: ErrUnreachable unless the caller's
// own context ended.
func (c *Client) transportErr(parent context.Context, op string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("onvif: %s on %s: %w", op, c.device.Host, perr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in our message, without credentials
	}
	if errors.Is(err, ErrCertMismatch) {
		return fmt.Errorf("onvif: %s on %s: %w", op, c.device.Host, err)
	}
	return fmt.Errorf("onvif: %s on %s: %w: %w", op, c.device.Host, ErrUnreachable, err)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
