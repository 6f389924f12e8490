package daemon

import (
	"strings"
	"testing"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

func TestMoveTarget(t *testing.T) {
	cam := store.Camera{Name: "lobby", ONVIF: &store.ONVIFIdentity{XAddr: "http://10.0.0.5:8080/onvif/dev"},
		PendingMove: &store.PendingMove{XAddr: "http://10.0.0.23:8899/onvif/device_service", Others: []string{"http://10.0.0.66:81/evil"}}}
	for _, tc := range []struct{ to, want string }{
		{"10.0.0.23:8899", "http://10.0.0.23:8899/onvif/device_service"}, // the pending one, whole
		{"10.0.0.23", "http://10.0.0.23:8899/onvif/device_service"},
		{"10.0.0.66:81", "http://10.0.0.66:81/evil"},   // another pending address, whole
		{"10.0.0.9", "http://10.0.0.9:8080/onvif/dev"}, // stored scheme, port and path
		{"10.0.0.9:81", "http://10.0.0.9:81/onvif/dev"},
		{"https://10.0.0.9", "https://10.0.0.9/onvif/device_service"},
		{"https://10.0.0.9:8443/x", "https://10.0.0.9:8443/x"},
	} {
		got, err := moveTarget(cam, tc.to)
		if err != nil || got != tc.want {
			t.Errorf("moveTarget(%q) = %q, %v; want %q", tc.to, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "http://u:secret@10.0.0.9/", "10.0.0.9/path", "ftp://10.0.0.9", "10.0.0.9:99999", "a b"} {
		if got, err := moveTarget(cam, bad); err == nil {
			t.Errorf("moveTarget(%q) = %q, want an error", bad, got)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error quotes the password: %v", err)
		} else if want := (apitype.CameraMoveRequest{Name: cam.Name, To: bad}).Validate(); want == nil || err.Error() != want.Error() {
			// one check of the form: the daemon says what the API's validation says
			t.Errorf("moveTarget(%q): %v; the request validation says %v", bad, err, want)
		}
	}
}

func TestReachableXAddrsKeepsEveryReply(t *testing.T) {
	dev := onvif.Device{Addr: "10.0.0.7", XAddrs: []string{"http://0.0.0.0:80/onvif/device_service", "http://10.0.0.66:81/x", "http://10.0.0.7/onvif/device_service"}}
	got := reachableXAddrs(dev)
	want := []string{"http://10.0.0.7:80/onvif/device_service", "http://10.0.0.7:81/x", "http://10.0.0.7/onvif/device_service"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q", got)
	}
	if got := reachableXAddrs(onvif.Device{XAddrs: []string{"http://u:p@10.0.0.9/x"}}); len(got) != 1 || got[0] != "http://10.0.0.9/x" {
		t.Errorf("userinfo kept: %q", got)
	}
}

func TestPendingMoveViewListsEveryAddress(t *testing.T) {
	v := pendingMoveView("lobby", &store.PendingMove{XAddr: "http://10.0.0.23/onvif/device_service", Others: []string{"https://10.0.0.66/x"}})
	want := "moved? seen at 10.0.0.23:80, confirm with `camwarden camera move lobby --to 10.0.0.23:80` (also announced at 10.0.0.66:443: only one of these can be the camera)"
	if v.Hint != want || v.Addr != "10.0.0.23:80" || len(v.Also) != 1 {
		t.Errorf("view %+v", v)
	}
}

func TestDeviceIdentityChecks(t *testing.T) {
	id := func(urn, xaddr, serial string) *store.ONVIFIdentity {
		return &store.ONVIFIdentity{URN: urn, XAddr: xaddr, Manufacturer: "acme", Serial: serial, HardwareID: "hw1"}
	}
	cams := []store.Camera{
		{Name: "gate", ONVIF: id("urn:uuid:g", "http://10.0.0.2/onvif/device_service", "S2")},
		{Name: "nvr-ch01", Recorder: "nvr", Channel: 1, ONVIF: id("urn:uuid:n", "http://10.0.0.3/onvif/device_service", "S3")},
		{Name: "nvr-ch02", Recorder: "nvr", Channel: 2, ONVIF: id("urn:uuid:n", "http://10.0.0.3/onvif/device_service", "S3")},
	}
	// A recorder channel moving onto its own recorder's address is no conflict.
	if c, ok := cameraUsingAddress(cams, "http://10.0.0.3:80/x", func(o store.Camera) bool { return sameDeviceRecord(o, cams[1]) }); ok {
		t.Errorf("sibling channel counted as another camera: %s", c.Name)
	}
	if c, ok := cameraUsingAddress(cams, "http://10.0.0.2:80/other", func(o store.Camera) bool { return sameDeviceRecord(o, cams[1]) }); !ok || c.Name != "gate" {
		t.Errorf("gate's address not found in use: %v %s", ok, c.Name)
	}
	for _, tc := range []struct {
		id   store.ONVIFIdentity
		want string
	}{
		{*id("urn:uuid:g", "", ""), `camera "gate"`},
		{*id("", "http://10.9.9.9/", "S3"), `recorder "nvr"`},
		{*id("", "http://10.0.0.2:80/onvif/device_service", "S9"), `address of camera "gate"`},
		{*id("urn:uuid:new", "http://10.9.9.9/", "S9"), ""},
	} {
		if got := adoptedAlready(cams, tc.id, "dup"); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("adoptedAlready(%+v) = %q, want %q", tc.id, got, tc.want)
		}
	}
	if got := identityMismatch("lobby", *id("", "", "S1"), onvif.DeviceInfo{Manufacturer: "acme", SerialNumber: "S2", HardwareID: "hw1"}); got != `serial S2, camera "lobby" was adopted as serial S1` {
		t.Errorf("mismatch %q", got)
	}
	if got := identityMismatch("lobby", *id("", "", "S1"), onvif.DeviceInfo{Manufacturer: "acme", SerialNumber: "S1", HardwareID: "hw1"}); got != "" {
		t.Errorf("same device mismatched: %q", got)
	}
}
