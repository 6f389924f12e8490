package camsim

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

type operation struct {
	needsAuth bool
	run       func(*soapRequest) (string, *soapFault)
}

// operation maps a request to its implementation.
func (c *Camera) operation(req *soapRequest) (operation, bool) {
	auth := func(f func(*soapRequest) (string, *soapFault)) operation { return operation{true, f} }
	switch req.NS {
	case nsTDS:
		switch req.Action {
		case "GetSystemDateAndTime":
			// ONVIF lets clients learn the clock before they can sign a token.
			return operation{false, c.getSystemDateAndTime}, true
		case "GetDeviceInformation":
			return auth(c.getDeviceInformation), true
		case "GetCapabilities":
			return auth(c.getCapabilities), true
		case "GetServices":
			return auth(c.getServices), true
		case "GetScopes":
			return auth(c.getScopes), true
		case "GetHostname":
			return auth(c.getHostname), true
		case "GetNetworkInterfaces":
			return auth(c.getNetworkInterfaces), true
		}
	case nsTR2:
		if !c.sim.offersMedia2() {
			break
		}
		switch req.Action {
		case "GetProfiles":
			return auth(c.media2GetProfiles), true
		case "GetStreamUri":
			return auth(c.media2GetStreamURI), true
		}
	case nsTRT:
		if !c.sim.offersMedia1() {
			break
		}
		switch req.Action {
		case "GetProfiles":
			return auth(c.getProfiles), true
		case "GetProfile":
			return auth(c.getProfile), true
		case "GetStreamUri":
			return auth(c.getStreamURI), true
		case "GetVideoSources":
			return auth(c.getVideoSources), true
		case "GetVideoSourceConfigurations":
			return auth(c.getVideoSourceConfigurations), true
		case "GetVideoEncoderConfigurations":
			return auth(c.getVideoEncoderConfigurations), true
		}
	}
	return operation{}, false
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func dateTimeXML(tag string, t time.Time) string {
	return fmt.Sprintf(`<tt:%s><tt:Time><tt:Hour>%d</tt:Hour><tt:Minute>%d</tt:Minute><tt:Second>%d</tt:Second></tt:Time>`+
		`<tt:Date><tt:Year>%d</tt:Year><tt:Month>%d</tt:Month><tt:Day>%d</tt:Day></tt:Date></tt:%s>`,
		tag, t.Hour(), t.Minute(), t.Second(), t.Year(), int(t.Month()), t.Day(), tag)
}

func (c *Camera) getSystemDateAndTime(*soapRequest) (string, *soapFault) {
	now := c.Now()
	return `<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>` +
		`<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>` +
		`<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>` +
		dateTimeXML("UTCDateTime", now) + dateTimeXML("LocalDateTime", now) +
		`</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>`, nil
}

func (c *Camera) getDeviceInformation(*soapRequest) (string, *soapFault) {
	return `<tds:GetDeviceInformationResponse>` +
		`<tds:Manufacturer>camwarden</tds:Manufacturer>` +
		`<tds:Model>` + esc(c.Model()) + `</tds:Model>` +
		`<tds:FirmwareVersion>1.0.0</tds:FirmwareVersion>` +
		`<tds:SerialNumber>` + esc(c.serial) + `</tds:SerialNumber>` +
		`<tds:HardwareId>camsim</tds:HardwareId>` +
		`</tds:GetDeviceInformationResponse>`, nil
}

// mediaXAddr is the media service URL; same port, its own path, as most cameras.
func (ep *endpoints) mediaXAddr() string {
	return strings.TrimSuffix(ep.xaddr, "/onvif/device_service") + "/onvif/media_service"
}

// media2XAddr is the Media2 service URL.
func (ep *endpoints) media2XAddr() string {
	return strings.TrimSuffix(ep.xaddr, "/onvif/device_service") + "/onvif/media2_service"
}

func (c *Camera) snapshot() *endpoints {
	if ep := c.ep.Load(); ep != nil {
		return ep
	}
	return &endpoints{}
}

func (c *Camera) getCapabilities(req *soapRequest) (string, *soapFault) {
	ep := c.snapshot()
	want := map[string]bool{}
	for _, cat := range req.Category {
		switch cat {
		case "All", "":
			want["Device"], want["Media"] = true, true
		case "Device", "Media":
			want[cat] = true
		default:
			return "", &faultNoService
		}
	}
	if len(want) == 0 {
		want["Device"], want["Media"] = true, true
	}
	var b strings.Builder
	b.WriteString(`<tds:GetCapabilitiesResponse><tds:Capabilities>`)
	if want["Device"] {
		b.WriteString(`<tt:Device><tt:XAddr>` + esc(ep.xaddr) + `</tt:XAddr>` +
			`<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>` +
			`<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>` +
			`<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>true</tt:DiscoveryBye>` +
			`<tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup>` +
			`<tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>` +
			`<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions></tt:System>` +
			`<tt:IO><tt:InputConnectors>0</tt:InputConnectors><tt:RelayOutputs>0</tt:RelayOutputs></tt:IO>` +
			`<tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>` +
			`<tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration><tt:AccessPolicyConfig>false</tt:AccessPolicyConfig>` +
			`<tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>` +
			`<tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken></tt:Security>` +
			`</tt:Device>`)
	}
	if want["Media"] && c.sim.offersMedia1() {
		b.WriteString(`<tt:Media><tt:XAddr>` + esc(ep.mediaXAddr()) + `</tt:XAddr>` +
			`<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>` +
			`<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities>` +
			`</tt:Media>`)
	}
	b.WriteString(`</tds:Capabilities></tds:GetCapabilitiesResponse>`)
	return b.String(), nil
}

func (c *Camera) getServices(req *soapRequest) (string, *soapFault) {
	ep := c.snapshot()
	var b strings.Builder
	b.WriteString(`<tds:GetServicesResponse>`)
	b.WriteString(`<tds:Service><tds:Namespace>` + nsTDS + `</tds:Namespace><tds:XAddr>` + esc(ep.xaddr) + `</tds:XAddr>`)
	if req.IncludeCapability {
		b.WriteString(`<tds:Capabilities><tds:Capabilities>` +
			`<tds:Network IPFilter="false" ZeroConfiguration="false" IPVersion6="false" DynDNS="false"/>` +
			`<tds:Security UsernameToken="true" HttpDigest="` + fmt.Sprint(c.sim.opts.Auth == AuthDigest) + `"/>` +
			`<tds:System DiscoveryResolve="false" DiscoveryBye="true" RemoteDiscovery="false" SystemBackup="false" SystemLogging="false" FirmwareUpgrade="false"/>` +
			`</tds:Capabilities></tds:Capabilities>`)
	}
	b.WriteString(`<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>`)
	if c.sim.offersMedia1() {
		b.WriteString(`<tds:Service><tds:Namespace>` + nsTRT + `</tds:Namespace><tds:XAddr>` + esc(ep.mediaXAddr()) + `</tds:XAddr>`)
		if req.IncludeCapability {
			b.WriteString(`<tds:Capabilities><trt:Capabilities SnapshotUri="false" Rotation="false">` +
				`<trt:ProfileCapabilities MaximumNumberOfProfiles="` + fmt.Sprint(len(c.media1Profiles())) + `"/>` +
				`<trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true"/>` +
				`</trt:Capabilities></tds:Capabilities>`)
		}
		b.WriteString(`<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>`)
	}
	if c.sim.offersMedia2() {
		b.WriteString(`<tds:Service><tds:Namespace>` + nsTR2 + `</tds:Namespace><tds:XAddr>` + esc(ep.media2XAddr()) + `</tds:XAddr>`)
		b.WriteString(`<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>`)
	}
	b.WriteString(`</tds:GetServicesResponse>`)
	return b.String(), nil
}

func (c *Camera) getScopes(*soapRequest) (string, *soapFault) {
	var b strings.Builder
	b.WriteString(`<tds:GetScopesResponse>`)
	for i, s := range c.scopes() {
		def := "Fixed"
		if i >= 2 { // name, hardware and location are configurable on real cameras
			def = "Configurable"
		}
		b.WriteString(`<tds:Scopes><tt:ScopeDef>` + def + `</tt:ScopeDef><tt:ScopeItem>` + esc(s) + `</tt:ScopeItem></tds:Scopes>`)
	}
	b.WriteString(`</tds:GetScopesResponse>`)
	return b.String(), nil
}

func (c *Camera) getHostname(*soapRequest) (string, *soapFault) {
	return `<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP>` +
		`<tt:Name>` + esc(c.name) + `</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>`, nil
}

func (c *Camera) getNetworkInterfaces(*soapRequest) (string, *soapFault) {
	return `<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">` +
		`<tt:Enabled>true</tt:Enabled>` +
		`<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>` + c.mac + `</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info>` +
		`<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config>` +
		`<tt:Manual><tt:Address>` + esc(c.sim.opts.Addr) + `</tt:Address><tt:PrefixLength>24</tt:PrefixLength></tt:Manual>` +
		`<tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>` +
		`</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>`, nil
}

// Media service. Each channel has one video source ("vs0" for a camera,
// "vsN" for a recorder's channel N) with one source configuration, and
// each profile its own encoder configuration.

func (ch *channel) maxResolution() (w, h, fps int) {
	for _, p := range ch.profiles {
		if p.media.Width*p.media.Height > w*h {
			w, h = p.media.Width, p.media.Height
		}
		if p.media.FPS > fps {
			fps = p.media.FPS
		}
	}
	return
}

func (ch *channel) sourceConfigToken() string { return "vsc" + strings.TrimPrefix(ch.token, "vs") }

func (ch *channel) videoSourceConfigXML(tag string) string {
	w, h, _ := ch.maxResolution()
	return fmt.Sprintf(`<%s token="%s"><tt:Name>%s</tt:Name><tt:UseCount>%d</tt:UseCount>`+
		`<tt:SourceToken>%s</tt:SourceToken><tt:Bounds x="0" y="0" width="%d" height="%d"/></%s>`,
		tag, ch.sourceConfigToken(), esc(ch.name), len(ch.profiles), ch.token, w, h, tag)
}

func encoderToken(p *simProfile) string { return "vec_" + p.token }

func (p *simProfile) fpsAndGov() (fps, gov int) {
	fps = p.media.FPS
	if fps <= 0 {
		fps = 25
	}
	gov = int(p.media.GOP.Seconds() * float64(fps))
	if gov <= 0 {
		gov = 2 * fps
	}
	return fps, gov
}

func (p *simProfile) encoding() string {
	if p.h265 {
		return "H265"
	}
	return "H264"
}

func videoEncoderConfigXML(tag string, p *simProfile) string {
	fps, gov := p.fpsAndGov()
	return fmt.Sprintf(`<%s token="%s"><tt:Name>%s</tt:Name><tt:UseCount>1</tt:UseCount>`+
		`<tt:Encoding>H264</tt:Encoding>`+
		`<tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution>`+
		`<tt:Quality>5</tt:Quality>`+
		`<tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval>`+
		`<tt:BitrateLimit>%d</tt:BitrateLimit></tt:RateControl>`+
		`<tt:H264><tt:GovLength>%d</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>`+
		`<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>`+
		`<tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>`+
		`<tt:SessionTimeout>PT60S</tt:SessionTimeout></%s>`,
		tag, encoderToken(p), esc(p.name), p.media.Width, p.media.Height, fps, p.media.BitrateKbps, gov, tag)
}

func profileXML(tag string, p *simProfile) string {
	return fmt.Sprintf(`<%s token="%s" fixed="true"><tt:Name>%s</tt:Name>`, tag, esc(p.token), esc(p.name)) +
		p.ch.videoSourceConfigXML("tt:VideoSourceConfiguration") +
		videoEncoderConfigXML("tt:VideoEncoderConfiguration", p) +
		`</` + tag + `>`
}

// media1Profiles are the profiles Media1 can describe (not H.265 ones).
func (c *Camera) media1Profiles() []*simProfile {
	var out []*simProfile
	for _, ch := range c.sim.channels {
		for _, p := range ch.profiles {
			if !p.h265 {
				out = append(out, p)
			}
		}
	}
	return out
}

func (c *Camera) media1Profile(token string) *simProfile {
	p := c.sim.profileByToken(token)
	if p == nil || p.h265 {
		return nil
	}
	return p
}

func (c *Camera) getProfiles(*soapRequest) (string, *soapFault) {
	var b strings.Builder
	b.WriteString(`<trt:GetProfilesResponse>`)
	for _, p := range c.media1Profiles() {
		b.WriteString(profileXML("trt:Profiles", p))
	}
	b.WriteString(`</trt:GetProfilesResponse>`)
	return b.String(), nil
}

func (c *Camera) getProfile(req *soapRequest) (string, *soapFault) {
	p := c.media1Profile(req.ProfileToken)
	if p == nil {
		return "", &faultNoProfile
	}
	return `<trt:GetProfileResponse>` + profileXML("trt:Profile", p) + `</trt:GetProfileResponse>`, nil
}

func (c *Camera) getStreamURI(req *soapRequest) (string, *soapFault) {
	p := c.media1Profile(req.ProfileToken)
	if p == nil {
		return "", &faultNoProfile
	}
	uri := c.RTSPURL(p.token)
	return `<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>` + esc(uri) + `</tt:Uri>` +
		`<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>true</tt:InvalidAfterReboot>` +
		`<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>`, nil
}

func (c *Camera) getVideoSources(*soapRequest) (string, *soapFault) {
	var b strings.Builder
	b.WriteString(`<trt:GetVideoSourcesResponse>`)
	for _, ch := range c.sim.channels {
		w, h, fps := ch.maxResolution()
		fmt.Fprintf(&b, `<trt:VideoSources token="%s">`+
			`<tt:Framerate>%d</tt:Framerate><tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution>`+
			`</trt:VideoSources>`, ch.token, fps, w, h)
	}
	b.WriteString(`</trt:GetVideoSourcesResponse>`)
	return b.String(), nil
}

func (c *Camera) getVideoSourceConfigurations(*soapRequest) (string, *soapFault) {
	var b strings.Builder
	b.WriteString(`<trt:GetVideoSourceConfigurationsResponse>`)
	for _, ch := range c.sim.channels {
		b.WriteString(ch.videoSourceConfigXML("trt:Configurations"))
	}
	b.WriteString(`</trt:GetVideoSourceConfigurationsResponse>`)
	return b.String(), nil
}

func (c *Camera) getVideoEncoderConfigurations(*soapRequest) (string, *soapFault) {
	var b strings.Builder
	b.WriteString(`<trt:GetVideoEncoderConfigurationsResponse>`)
	for _, p := range c.media1Profiles() {
		b.WriteString(videoEncoderConfigXML("trt:Configurations", p))
	}
	b.WriteString(`</trt:GetVideoEncoderConfigurationsResponse>`)
	return b.String(), nil
}

// Media2 (ver20/media): profiles carry their configurations by type, and
// encoders may be H.265.

func media2ProfileXML(p *simProfile) string {
	fps, gov := p.fpsAndGov()
	w, h, _ := p.ch.maxResolution()
	return fmt.Sprintf(`<tr2:Profiles token="%s" fixed="true"><tr2:Name>%s</tr2:Name><tr2:Configurations>`, esc(p.token), esc(p.name)) +
		fmt.Sprintf(`<tr2:VideoSource token="%s"><tt:Name>%s</tt:Name><tt:UseCount>%d</tt:UseCount>`+
			`<tt:SourceToken>%s</tt:SourceToken><tt:Bounds x="0" y="0" width="%d" height="%d"/></tr2:VideoSource>`,
			p.ch.sourceConfigToken(), esc(p.ch.name), len(p.ch.profiles), p.ch.token, w, h) +
		fmt.Sprintf(`<tr2:VideoEncoder token="%s" GovLength="%d" Profile="Main"><tt:Name>%s</tt:Name><tt:UseCount>1</tt:UseCount>`+
			`<tt:Encoding>%s</tt:Encoding><tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution>`+
			`<tt:RateControl ConstantBitRate="false"><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:BitrateLimit>%d</tt:BitrateLimit></tt:RateControl>`+
			`<tt:Quality>5</tt:Quality></tr2:VideoEncoder>`,
			encoderToken(p), gov, esc(p.name), p.encoding(), p.media.Width, p.media.Height, fps, p.media.BitrateKbps) +
		`</tr2:Configurations></tr2:Profiles>`
}

func (c *Camera) media2GetProfiles(req *soapRequest) (string, *soapFault) {
	var b strings.Builder
	b.WriteString(`<tr2:GetProfilesResponse>`)
	for _, ch := range c.sim.channels {
		for _, p := range ch.profiles {
			if req.ProfileToken != "" && req.ProfileToken != p.token {
				continue
			}
			b.WriteString(media2ProfileXML(p))
		}
	}
	b.WriteString(`</tr2:GetProfilesResponse>`)
	return b.String(), nil
}

func (c *Camera) media2GetStreamURI(req *soapRequest) (string, *soapFault) {
	p := c.sim.profileByToken(req.ProfileToken)
	if p == nil {
		return "", &faultNoProfile
	}
	if req.Protocol != "" && req.Protocol != "RTSP" && req.Protocol != "RtspUnicast" {
		return "", &faultNoService
	}
	return `<tr2:GetStreamUriResponse><tr2:Uri>` + esc(c.RTSPURL(p.token)) + `</tr2:Uri></tr2:GetStreamUriResponse>`, nil
}
