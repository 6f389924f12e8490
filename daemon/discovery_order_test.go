package daemon

import (
	"testing"

	"github.com/camwarden/camwarden/onvif"
)

// Discovered devices are listed in the order of the names they report
// (numbers compared as numbers), not by their random URNs, so cameras
// adopted in list order get the names an operator expects.
func TestDevicesListedByReportedName(t *testing.T) {
	devs := map[string]onvif.Device{}
	for urn, name := range map[string]string{
		"urn:uuid:0000": "camsim-10", "urn:uuid:1111": "camsim-2", "urn:uuid:2222": "camsim-1",
		"urn:uuid:3333": "", "urn:uuid:0001": "", "urn:uuid:4444": "Lobby",
	} {
		devs[urn] = onvif.Device{URN: urn, Name: name}
	}
	var got []string
	for _, d := range sortedDevices(devs) {
		got = append(got, d.Name+"@"+d.URN)
	}
	want := []string{"@urn:uuid:0001", "@urn:uuid:3333", "Lobby@urn:uuid:4444",
		"camsim-1@urn:uuid:2222", "camsim-2@urn:uuid:1111", "camsim-10@urn:uuid:0000"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}
