package daemon

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
	"github.com/camwarden/camwarden/internal/testutil"
	"github.com/camwarden/camwarden/onvif"
)

// TestAdoptByDeviceNeverGoesToTheReplySource: a Hello carrying the
// camera's URN and the camera's own XAddr (http://127.0.0.1:P/...), sent
// from the attacker's address 127.0.0.2, must not make camera adopt
// --device send the credentials to 127.0.0.2:P; nor may --device pick
// when the camera and a spoofer both announced the URN. Before the fix the
// adoption went to the reply's source with WS-Security and Digest.
func TestAdoptByDeviceNeverGoesToTheReplySource(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	td := startTestDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The attacker's device service records every request.
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusUnauthorized)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cameraXAddr := "http://127.0.0.1:" + port + "/onvif/device_service"
	urn := "urn:uuid:6f1c2a9e-0000-4000-8000-00000000c0de"

	sight := func(dev onvif.Device) {
		t.Helper()
		if err := td.d.do(ctx, func() { td.d.disc.merge([]onvif.Device{dev}, "hello") }); err != nil {
			t.Fatal(err)
		}
	}
	adopt := func() error {
		_, err := td.client.CameraAdopt(ctx, apitype.CameraAdoptRequest{Name: "door", DeviceURN: urn, User: "admin", Password: "camera-secret-1"})
		return err
	}

	// 1. One spoofed Hello: the camera's XAddr, from the attacker.
	sight(onvif.Device{URN: urn, XAddrs: []string{cameraXAddr}, Addr: "127.0.0.2", Addrs: []string{"127.0.0.2"}})
	err = adopt()
	if err == nil || !strings.Contains(err.Error(), "--xaddr") || !strings.Contains(err.Error(), cameraXAddr) {
		t.Errorf("adoption of a device announced from another host than its XAddr: %v; want a refusal naming --xaddr and the candidates", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the reply's source received %d requests", n)
	}

	// 2. The camera's own Hello as well: two sources, merged, not overwritten.
	sight(onvif.Device{URN: urn, XAddrs: []string{cameraXAddr}, Addr: "127.0.0.1", Addrs: []string{"127.0.0.1"}})
	var dev onvif.Device
	if err := td.d.do(ctx, func() { dev = td.d.disc.devices[urn] }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(dev.Addrs, " ") != "127.0.0.2 127.0.0.1" {
		t.Errorf("sources kept for the URN: %q, want both", dev.Addrs)
	}
	err = adopt()
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1, 127.0.0.2") && !strings.Contains(err.Error(), "127.0.0.2, 127.0.0.1") {
		t.Errorf("adoption of a device announced from two hosts: %v; want a refusal listing both", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the spoofer received %d requests", n)
	}
	res, err := td.client.Discover(ctx, clientDiscoverNoWait())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Devices {
		if d.URN == urn && (d.DeviceXAddr != "" || d.Ambiguous == "" || len(d.Addresses) != 2) {
			t.Errorf("discover shows %+v; want no --device address, the reason and both sources", d)
		}
	}

	// 3. --device goes only to the address discover showed. A device seen
	// by Hello but never listed is refused; once listed it is adopted there.
	other := "urn:uuid:6f1c2a9e-0000-4000-8000-00000000beef"
	attackerXAddr := "http://127.0.0.2:" + port + "/onvif/device_service"
	adoptOther := func() error {
		_, err := td.client.CameraAdopt(ctx, apitype.CameraAdoptRequest{Name: "gate", DeviceURN: other, User: "admin", Password: "camera-secret-1"})
		return err
	}
	sight(onvif.Device{URN: other, XAddrs: []string{cameraXAddr}, Addr: "127.0.0.1", Addrs: []string{"127.0.0.1"}, LastSeen: time.Now()})
	if err := adoptOther(); err == nil || !strings.Contains(err.Error(), "camwarden discover") {
		t.Errorf("adoption of a device discover never showed: %v", err)
	}
	if _, err := td.client.Discover(ctx, clientDiscoverNoWait()); err != nil {
		t.Fatal(err)
	}
	// The entry expires (the camera went quiet) and a spoofer announces
	// the URN consistently at its own address: not what discover showed.
	if err := td.d.do(ctx, func() {
		td.d.disc.expire(time.Now().Add(td.d.disc.ttl + time.Minute))
		td.d.disc.merge([]onvif.Device{{URN: other, XAddrs: []string{attackerXAddr}, Addr: "127.0.0.2", Addrs: []string{"127.0.0.2"}, LastSeen: time.Now()}}, "hello")
	}); err != nil {
		t.Fatal(err)
	}
	if err := adoptOther(); err == nil || !strings.Contains(err.Error(), "camwarden discover") || !strings.Contains(err.Error(), "nothing was sent") {
		t.Errorf("adoption after the shown address changed: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the spoofer received %d requests", n)
	}
	// Shown by discover, confirmed by the admin: adopted there.
	if _, err := td.client.Discover(ctx, clientDiscoverNoWait()); err != nil {
		t.Fatal(err)
	}
	if err := adoptOther(); err == nil || hits.Load() == 0 {
		t.Errorf("adoption at the address discover showed did not go there: %v, %d requests", err, hits.Load())
	}
}

func TestDeviceXAddr(t *testing.T) {
	for _, tc := range []struct {
		dev  onvif.Device
		want string // "" = refused
	}{
		{onvif.Device{XAddrs: []string{"http://10.0.0.5/onvif/device_service"}, Addr: "10.0.0.5", Addrs: []string{"10.0.0.5"}}, "http://10.0.0.5/onvif/device_service"},
		{onvif.Device{XAddrs: []string{"http://u:p@10.0.0.5:8080/x"}, Addr: "10.0.0.5"}, "http://10.0.0.5:8080/x"},
		{onvif.Device{XAddrs: []string{"http://10.0.0.5/onvif/device_service"}, Addr: "10.0.0.66"}, ""},                       // the attack
		{onvif.Device{XAddrs: []string{"http://10.0.0.5/x"}, Addr: "10.0.0.5", Addrs: []string{"10.0.0.66", "10.0.0.5"}}, ""}, // two sources
		{onvif.Device{XAddrs: []string{"http://0.0.0.0/x"}, Addr: "10.0.0.5"}, ""},                                            // says nothing: --xaddr
		{onvif.Device{XAddrs: []string{"http://10.0.0.5/x", "http://10.0.0.66/x"}, Addr: "10.0.0.5"}, ""},                     // names another host
		{onvif.Device{XAddrs: []string{"http://127.0.0.1:81/x"}, Addr: "0.0.0.0"}, "http://127.0.0.1:81/x"},                   // looped back
		{onvif.Device{XAddrs: []string{"ftp://10.0.0.5/x"}, Addr: "10.0.0.5"}, ""},
	} {
		got, why := deviceXAddr(tc.dev)
		if got != tc.want || (got == "") == (why == "") {
			t.Errorf("deviceXAddr(%+v) = %q, %q; want %q", tc.dev, got, why, tc.want)
		}
	}
}
