package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestMoveAndAdoptCheckDeviceIdentity: camera move onto another device
// (its serial differs, or its address is another adopted camera's) is
// refused and changes nothing; adopting an already adopted device again,
// by its address, another spelling of it, or its URN, is refused naming the
// camera it is adopted as.
func TestMoveAndAdoptCheckDeviceIdentity(t *testing.T) {
	sim := startSim(t, 2, 0)
	d := startDaemon(t, "")
	lobby, gate := sim.Cameras()[0], sim.Cameras()[1]
	gateAddr := strings.TrimSuffix(strings.TrimPrefix(gate.XAddr(), "http://"), "/onvif/device_service")
	d.must(cameraPassword+"\n", "camera", "adopt", "lobby", "--xaddr", lobby.XAddr(), "--user", "admin", "--password-stdin")
	before := d.must("", "--json", "camera", "show", "lobby")

	// gate is not adopted yet: the device answers, but with another serial.
	out, code := d.cli("", "camera", "move", "lobby", "--to", gateAddr)
	t.Logf("move onto gate (not adopted): %s", out)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("reports serial %s, camera \"lobby\" was adopted as serial %s: not moved", gate.Serial(), lobby.Serial())) ||
		!strings.Contains(out, "camera remove lobby") {
		t.Errorf("move onto another device: exit %d: %s", code, out)
	}
	if after := d.must("", "--json", "camera", "show", "lobby"); after != before {
		t.Errorf("a refused move changed the camera:\nbefore %s\nafter %s", before, after)
	}

	d.must(cameraPassword+"\n", "camera", "adopt", "gate", "--xaddr", gate.XAddr(), "--user", "admin", "--password-stdin")
	out, code = d.cli("", "camera", "move", "lobby", "--to", gateAddr)
	if code != 1 || !strings.Contains(out, "is the address of camera \"gate\", already adopted") {
		t.Errorf("move onto an adopted camera's address: exit %d: %s", code, out)
	}
	if after := d.must("", "--json", "camera", "show", "lobby"); after != before {
		t.Errorf("a refused move changed the camera:\nbefore %s\nafter %s", before, after)
	}
	// Moving to its own address still re-reads the streams there.
	d.must("", "camera", "move", "lobby", "--to", strings.TrimPrefix(strings.TrimSuffix(lobby.XAddr(), "/onvif/device_service"), "http://"))

	for _, xaddr := range []string{gate.XAddr(), strings.Replace(gate.XAddr(), "127.0.0.1", "localhost", 1)} {
		out, code = d.cli(cameraPassword+"\n", "camera", "adopt", "dup", "--xaddr", xaddr, "--user", "admin", "--password-stdin")
		t.Logf("adopt --xaddr %s: %s", xaddr, out)
		if code != 1 || !strings.Contains(out, "already adopted as camera \"gate\"") && !strings.Contains(out, "is the address of camera \"gate\"") {
			t.Errorf("adopting %s again: exit %d: %s", xaddr, code, out)
		}
	}
	d.discover(sim.DiscoveryAddr().String())
	out, code = d.cli(cameraPassword+"\n", "camera", "adopt", "dup", "--device", gate.URN(), "--user", "admin", "--password-stdin")
	if code != 1 || !strings.Contains(out, "camera \"gate\"") {
		t.Errorf("adopting gate's URN again: exit %d: %s", code, out)
	}
	if list := d.must("", "--json", "camera", "list"); strings.Contains(list, `"dup"`) {
		t.Fatalf("a refused adoption created a camera:\n%s", list)
	}
	audit := d.must("", "audit", "list")
	if strings.Count(audit, "refused: identity") < 1 || !strings.Contains(audit, "refused: address in use") || !strings.Contains(audit, "refused: already adopted") {
		t.Errorf("refusals not audited:\n%s", audit)
	}
}

// TestMoveRefusesAddressAnnouncedByAnotherURN: discovery saw only another
// device's URN at the target address, so the move is refused before any
// credential is sent there.
func TestMoveRefusesAddressAnnouncedByAnotherURN(t *testing.T) {
	sim := startSim(t, 2, 0)
	d := startDaemon(t, "")
	d.discover(sim.DiscoveryAddr().String())
	lobby, gate := sim.Cameras()[0], sim.Cameras()[1]
	d.must(cameraPassword+"\n", "camera", "adopt", "lobby", "--device", lobby.URN(), "--user", "admin", "--password-stdin")
	before := d.must("", "--json", "camera", "show", "lobby")
	out, code := d.cli("", "camera", "move", "lobby", "--to", gate.XAddr())
	want := "announces itself as " + gate.URN() + ", camera \"lobby\" was adopted as " + lobby.URN() + ": not moved; nothing was sent there"
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("move onto another URN's address: exit %d: %s\nwant %s", code, out, want)
	}
	if after := d.must("", "--json", "camera", "show", "lobby"); after != before {
		t.Errorf("a refused move changed the camera:\nbefore %s\nafter %s", before, after)
	}
	if audit := d.must("", "audit", "list"); !strings.Contains(audit, "refused: identity") {
		t.Errorf("refusal not audited:\n%s", audit)
	}
}
