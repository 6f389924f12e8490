package stream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// Readers from one address setting up several tracks of one path at once,
// over UDP and TCP. gortsplib's UDP SETUP reads the other readers' transport
// and media while their own later SETUPs write them (a data race, and a
// map read beside a map write); the path's setup gate keeps them apart. The
// race detector (make test runs this package under -race) fails this test
// without the gate.
func TestConcurrentMultiTrackSetupsOnOnePath(t *testing.T) {
	cam := startCam(t, camOpts{audio: true})
	r := newRig(t, func(c *Config) { c.UDPRTPAddress, c.UDPRTCPAddress = freeUDPPair(t) })
	r.srv.SetCameras(context.Background(), []CameraSpec{camSpec("cam1", "main", cam.url("live"), func(sp *StreamSpec) {
		sp.Username, sp.Password = "", nil
	})})
	waitFor(t, 10*time.Second, "cam1/main live", func() bool { return r.status("cam1/main").State == StateLive })
	u, err := base.ParseURL(r.url("alice", "alicepw", "cam1/main"))
	if err != nil {
		t.Fatal(err)
	}
	const rounds, perRound = 3, 8
	for round := 0; round < rounds; round++ {
		var wg, described sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, perRound)
		for i := 0; i < perRound; i++ {
			proto := gortsplib.ProtocolUDP
			if i%4 == 3 {
				proto = gortsplib.ProtocolTCP
			}
			wg.Add(1)
			described.Add(1)
			go func() {
				defer wg.Done()
				c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto, ReadTimeout: 5 * time.Second}
				if err := c.Start(); err != nil {
					described.Done()
					errs <- err
					return
				}
				defer c.Close()
				desc, _, err := c.Describe(u)
				described.Done()
				if err != nil {
					errs <- err
					return
				}
				if len(desc.Medias) != 3 {
					t.Errorf("%d medias described, want 3", len(desc.Medias))
				}
				<-start // every reader's SETUPs at once
				if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
					errs <- err
					return
				}
				if _, err := c.Play(nil); err != nil {
					errs <- err
				}
			}()
		}
		described.Wait()
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: reader: %v", round, err)
		}
		waitFor(t, 10*time.Second, "the round's readers gone", func() bool { return r.status("cam1/main").Readers == 0 })
	}
}
