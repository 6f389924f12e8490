package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Readers and writers keep working while the data key is rotated and the
// master key re-wrapped underneath them: every transaction unseals with the
// keys of its own snapshot.
func TestConcurrentUseDuringRotation(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	defer s.Close()
	populate(t, s)
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				err := s.View(ctx, func(tx *Tx) error {
					pw, err := tx.CameraPassword("cam1")
					if err == nil && pw != "Cam1-Plaintext-Secret" {
						err = fmt.Errorf("cam1 = %q", pw)
					}
					return err
				})
				if err == nil && r == 0 {
					name := fmt.Sprintf("w%05d", i)
					err = s.Update(ctx, &AuditEntry{Action: "camera.add", Target: name, Outcome: "ok"}, func(tx *Tx) error {
						return tx.CreateCamera(Camera{Name: name}, "pw-"+name)
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 6 {
		if i%3 == 2 {
			nk := mustKey(t)
			if err := s.RewrapMasterKey(ctx, nk); err != nil {
				t.Fatal(err)
			}
			k = nk
		} else if _, _, err := s.RotateKey(ctx, &AuditEntry{Action: "key.rotate", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v, err := s.VerifyAudit(ctx); err != nil || !v.OK {
		t.Errorf("audit: %+v %v", v, err)
	}
	s.Close()
	s2 := openStore(t, path, k, Options{})
	defer s2.Close()
	view(t, s2, func(tx *Tx) error {
		cams, err := tx.Cameras()
		for _, c := range cams[3:] {
			if pw, err := tx.CameraPassword(c.Name); err != nil || pw != "pw-"+c.Name {
				t.Errorf("%s: %q %v", c.Name, pw, err)
			}
		}
		return err
	})
}
