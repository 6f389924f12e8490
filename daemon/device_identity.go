// Which adopted camera a device is: one device (URN, serial and hardware
// id, device address) is adopted under one name (a recorder's channels all
// share their recorder's), and a camera moves only to the device it was
// adopted as.
package daemon

import (
	"fmt"
	"strings"

	"github.com/camwarden/camwarden/onvif"
	"github.com/camwarden/camwarden/store"
)

// replaceHint says how a real device replacement is done: moves never
// change which device a camera is.
func replaceHint(name string) string {
	return fmt.Sprintf("To replace the device on purpose: camwarden camera remove %s, then camwarden camera adopt %s with the new device", name, name)
}

// sameHostPort reports whether two device service URLs reach the same
// HOST:PORT (one device answers there whatever the path).
func sameHostPort(a, b string) bool {
	ha := hostPort(a)
	return ha != "" && ha == hostPort(b)
}

// sameDeviceRecord reports whether two camera records are the same
// adoption: the camera itself or a channel of the same recorder.
func sameDeviceRecord(a, b store.Camera) bool {
	return a.Name == b.Name || (a.Recorder != "" && a.Recorder == b.Recorder)
}

// adoptedName is how a refusal names an existing camera: a recorder's
// channel by its recorder, since the recorder is what was adopted.
func adoptedName(c store.Camera) string {
	if c.Recorder != "" {
		return fmt.Sprintf("recorder %q (camera %q is its channel %d)", c.Recorder, c.Name, c.Channel)
	}
	return fmt.Sprintf("camera %q", c.Name)
}

// cameraUsingAddress is the adopted camera, other than the ones skip
// accepts, whose device address is at xaddr's HOST:PORT.
func cameraUsingAddress(cams []store.Camera, xaddr string, skip func(store.Camera) bool) (store.Camera, bool) {
	for _, c := range cams {
		if c.ONVIF != nil && c.ONVIF.XAddr != "" && !skip(c) && sameHostPort(c.ONVIF.XAddr, xaddr) {
			return c, true
		}
	}
	return store.Camera{}, false
}

// cameraWithIdentity is the adopted camera, other than the ones skip
// accepts, that is the device id describes: the same URN, or the same
// serial number and hardware id from the same manufacturer. why says which.
func cameraWithIdentity(cams []store.Camera, id store.ONVIFIdentity, skip func(store.Camera) bool) (c store.Camera, why string, found bool) {
	for _, c := range cams {
		if c.ONVIF == nil || skip(c) {
			continue
		}
		o := c.ONVIF
		if id.URN != "" && o.URN == id.URN {
			return c, "URN " + id.URN, true
		}
		if id.Serial != "" && o.Serial == id.Serial && o.HardwareID == id.HardwareID && o.Manufacturer == id.Manufacturer {
			return c, fmt.Sprintf("serial %s, hardware %s", id.Serial, orNone(id.HardwareID)), true
		}
	}
	return store.Camera{}, "", false
}

// identityMismatch says how the device information read at a new address
// differs from what the camera was adopted as ("" when it matches). A
// field the camera was adopted without cannot be compared.
func identityMismatch(name string, adopted store.ONVIFIdentity, got onvif.DeviceInfo) string {
	var diffs []string
	if adopted.Serial != "" && got.SerialNumber != adopted.Serial {
		diffs = append(diffs, fmt.Sprintf("serial %s, camera %q was adopted as serial %s", orNone(got.SerialNumber), name, adopted.Serial))
	}
	if adopted.HardwareID != "" && got.HardwareID != adopted.HardwareID {
		diffs = append(diffs, fmt.Sprintf("hardware id %s, camera %q was adopted as hardware id %s", orNone(got.HardwareID), name, adopted.HardwareID))
	}
	if adopted.Manufacturer != "" && got.Manufacturer != adopted.Manufacturer {
		diffs = append(diffs, fmt.Sprintf("manufacturer %s, camera %q was adopted as manufacturer %s", orNone(got.Manufacturer), name, adopted.Manufacturer))
	}
	return strings.Join(diffs, "; ")
}

// discoveredURNsAt are the URNs discovery last saw announced at xaddr's
// HOST:PORT (unauthenticated hints).
func discoveredURNsAt(devices map[string]onvif.Device, xaddr string) []string {
	var urns []string
	for _, dev := range devices {
		for _, xa := range reachableXAddrs(dev) {
			if sameHostPort(xa, xaddr) {
				urns = append(urns, dev.URN)
				break
			}
		}
	}
	return urns
}

// adoptedAlready refuses adopting a device that is adopted under another
// name (its URN, serial and hardware id, or its address); "" when it is not.
func adoptedAlready(cams []store.Camera, id store.ONVIFIdentity, name string) string {
	notSelf := func(store.Camera) bool { return false }
	if other, why, ok := cameraWithIdentity(cams, id, notSelf); ok {
		return fmt.Sprintf("this device (%s) is already adopted as %s: %q not adopted; one device is adopted once", why, adoptedName(other), name)
	}
	if id.XAddr != "" {
		if other, ok := cameraUsingAddress(cams, id.XAddr, notSelf); ok {
			return fmt.Sprintf("%s is the address of %s, already adopted: %q not adopted; one device is adopted once", hostPort(id.XAddr), adoptedName(other), name)
		}
	}
	return ""
}
