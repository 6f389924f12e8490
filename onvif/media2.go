package onvif

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/camwarden/camwarden/internal/textutil"
	"github.com/use-go/onvif/device"
)

// ONVIF Media2 (ver20/media): H.265 cameras often describe their H.265
// profiles only here. The client prefers it when GetServices lists it and
// falls back to Media1 otherwise.

const (
	media2NS          = "http://www.onvif.org/ver20/media/wsdl"
	media2ActionBase  = media2NS + "/"
	maxServices       = 64
	maxSourceTokenLen = 256
)

// MediaServices are the media services a device offers, hosts fixed up to
// where we reached it (nil when not offered).
type MediaServices struct {
	Media1, Media2 *url.URL
}

// mediaServices asks GetServices which media services the device has. A
// device without GetServices (or without Media2 in it) falls back to
// GetCapabilities through mediaURL.
func (c *Client) mediaServices(ctx context.Context) (MediaServices, error) {
	var raw []byte
	err := c.callRaw(ctx, c.device, "GetServices", deviceActionBase+"GetServices", device.GetServices{IncludeCapability: false}, &raw)
	if err != nil {
		if IsNotAuthorized(err) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrCertMismatch) || ctx.Err() != nil {
			return MediaServices{}, err
		}
		c.log.Debug("GetServices failed; using GetCapabilities", "device", c.device.Host, "error", err)
		m1, err := c.mediaURL(ctx)
		return MediaServices{Media1: m1}, err
	}
	reported, err := parseServices(raw)
	if err != nil {
		return MediaServices{}, fmt.Errorf("onvif: GetServices on %s: %w", c.device.Host, err)
	}
	var ms MediaServices
	if r := reported[media2NS]; r != "" {
		// An unusable Media2 address (garbage, or plain HTTP on a device we
		// reached over TLS: a downgrade) is passed over for Media1.
		u, err := c.serviceURL(r)
		switch {
		case err != nil:
			c.log.Debug("ignoring the Media2 service address", "device", c.device.Host, "error", err)
		case u.Scheme != c.device.Scheme:
			c.log.Debug("ignoring a Media2 service without the device's TLS", "device", c.device.Host)
		default:
			ms.Media2 = u
		}
	}
	if r := reported[mediaNS]; r != "" {
		if ms.Media1, err = c.serviceURL(r); err != nil {
			return MediaServices{}, err
		}
		c.media.Store(ms.Media1)
	} else if ms.Media2 == nil {
		// Some devices list only a subset in GetServices.
		m1, err := c.mediaURL(ctx)
		return MediaServices{Media1: m1}, err
	}
	return ms, nil
}

// parseServices maps each namespace GetServices listed to its XAddr (the
// first one, for a namespace listed twice); at most maxServices.
func parseServices(data []byte) (map[string]string, error) {
	var r struct {
		Service []struct {
			Namespace string `xml:"Namespace"`
			XAddr     string `xml:"XAddr"`
		} `xml:"Service"`
	}
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	out := map[string]string{}
	for i, s := range r.Service {
		if i >= maxServices {
			break
		}
		ns, x := strings.TrimSpace(s.Namespace), strings.TrimSpace(s.XAddr)
		if ns != "" && x != "" && out[ns] == "" {
			out[ns] = x
		}
	}
	return out, nil
}

// serviceURL applies the security rules to a service address the device
// reported: the host is the one we reached the device at, no userinfo,
// and a device reached over https must have https services too: on first
// adoption there is no pin yet, and a plain-HTTP service would get the
// WS-Security token and Digest answer in clear.
func (c *Client) serviceURL(reported string) (*url.URL, error) {
	u, err := fixHost(reported, c.device, "http", "https")
	if err != nil {
		return nil, fmt.Errorf("onvif: service address from %s: %w", c.device.Host, err)
	}
	u.User = nil
	if c.device.Scheme == "https" && u.Scheme != "https" {
		return nil, fmt.Errorf("onvif: %s reports a plain-HTTP media service: %w", c.device.Host, ErrUnpinnedService)
	}
	return u, nil
}

type media2GetProfiles struct {
	XMLName xml.Name `xml:"tr2:GetProfiles"`
	Type    []string `xml:"tr2:Type"`
}

type media2GetStreamURI struct {
	XMLName      xml.Name `xml:"tr2:GetStreamUri"`
	Protocol     string   `xml:"tr2:Protocol"`
	ProfileToken string   `xml:"tr2:ProfileToken"`
}

// getProfiles2 is Media2 GetProfiles with Type=All (so every profile comes
// with its configurations).
func (c *Client) getProfiles2(ctx context.Context, mu *url.URL) ([]Profile, error) {
	var raw []byte
	if err := c.callRaw(ctx, mu, "GetProfiles", media2ActionBase+"GetProfiles", media2GetProfiles{Type: []string{"All"}}, &raw); err != nil {
		return nil, err
	}
	ps, err := parseProfiles2(raw)
	if err != nil {
		return nil, fmt.Errorf("onvif: Media2 GetProfiles on %s: %w", c.device.Host, err)
	}
	return ps, nil
}

type rawProfiles2 struct {
	Profiles []struct {
		Token          string `xml:"token,attr"`
		Name           string `xml:"Name"`
		Configurations struct {
			VideoSource  *rawVideoSource  `xml:"VideoSource"`
			VideoEncoder *rawVideoEncoder `xml:"VideoEncoder"`
		} `xml:"Configurations"`
	} `xml:"Profiles"`
}

// parseProfiles2 decodes a Media2 GetProfilesResponse by local names, with
// the same rules as parseProfiles.
func parseProfiles2(data []byte) ([]Profile, error) {
	var r rawProfiles2
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	raws := make([]rawProfile, 0, min(len(r.Profiles), maxProfiles))
	for _, rp := range r.Profiles {
		raws = append(raws, rawProfile{rp.Token, rp.Name, rp.Configurations.VideoSource, rp.Configurations.VideoEncoder})
	}
	return profileList(raws), nil
}

// sourceFields cleans a profile's video source token and name; an absurd
// token counts as none.
func sourceFields(token, name string) (string, string) {
	t := cleanField(token)
	if len(t) > maxSourceTokenLen {
		t = ""
	}
	return t, textutil.Prefix(cleanField(name), 128)
}

// getStreamURI2 is Media2 GetStreamUri with Protocol RTSP.
func (c *Client) getStreamURI2(ctx context.Context, mu *url.URL, profileToken string) (StreamURI, error) {
	var raw []byte
	req := media2GetStreamURI{Protocol: "RTSP", ProfileToken: profileToken}
	if err := c.callRaw(ctx, mu, "GetStreamUri", media2ActionBase+"GetStreamUri", req, &raw); err != nil {
		return StreamURI{}, err
	}
	uri, err := parseStreamURI2(raw)
	if err == nil {
		var su StreamURI
		if su, err = fixStreamURI(uri, c.device); err == nil {
			return su, nil
		}
	}
	return StreamURI{}, fmt.Errorf("onvif: Media2 GetStreamUri on %s: %w", c.device.Host, err)
}

// parseStreamURI2 takes the Uri of a Media2 GetStreamUriResponse.
func parseStreamURI2(data []byte) (string, error) {
	var r struct {
		URI string `xml:"Uri"`
	}
	if err := xml.Unmarshal(data, &r); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if u := strings.TrimSpace(r.URI); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("%w: no Uri", ErrBadResponse)
}
