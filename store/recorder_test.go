package store

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const recorderSecret = "Recorder-Shared-Pw9"

func createRecorder(t *testing.T, s *Store, name string, channels ...int) {
	t.Helper()
	update(t, s, func(tx *Tx) error {
		if err := tx.CreateRecorder(name, "admin", recorderSecret); err != nil {
			return err
		}
		for _, n := range channels {
			c := Camera{Name: name + "-ch0" + string(rune('0'+n)), Username: "admin", Recorder: name, Channel: n,
				Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1:554/ch0" + string(rune('0'+n)), OnDemand: true}}}
			if err := tx.CreateCamera(c, ""); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestRecorderCredentialsAreStoredOnce: the channels of a recorder have no
// sealed password of their own; each reads the recorder's, a password
// change through any channel is the recorder's and restarts every channel.
func TestRecorderCredentialsAreStoredOnce(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, mustKey(t), Options{})
	defer s.Close()
	createRecorder(t, s, "nvr1", 1, 2, 3)
	view(t, s, func(tx *Tx) error {
		cams, err := tx.Cameras()
		if err != nil || len(cams) != 3 {
			t.Fatalf("cameras %+v %v", cams, err)
		}
		for _, c := range cams {
			if c.Recorder != "nvr1" || c.Channel < 1 || !c.HasPassword {
				t.Errorf("channel camera %+v", c)
			}
			if pw, err := tx.CameraPassword(c.Name); pw != recorderSecret || err != nil {
				t.Errorf("%s password %q %v", c.Name, pw, err)
			}
		}
		return nil
	})
	// One sealed blob in all: the recorder's.
	blobs := 0
	if err := s.db.View(func(btx *bolt.Tx) error {
		if err := btx.Bucket(bucketCameras).ForEach(func(k, v []byte) error {
			r, _ := decodeCamera(k, v)
			blobs += min(len(r.Password), 1)
			return nil
		}); err != nil {
			return err
		}
		r, err := decodeRecorder([]byte("nvr1"), btx.Bucket(bucketRecorders).Get([]byte("nvr1")))
		blobs += min(len(r.Password), 1)
		return err
	}); err != nil || blobs != 1 {
		t.Fatalf("%d sealed blobs (%v), want the recorder's only", blobs, err)
	}
	var before Camera
	view(t, s, func(tx *Tx) (err error) { before, err = tx.Camera("nvr1-ch03"); return })
	update(t, s, func(tx *Tx) error { return tx.SetCameraPassword("nvr1-ch01", "Recorder-New-Pw10") })
	view(t, s, func(tx *Tx) error {
		pw, err := tx.CameraPassword("nvr1-ch03")
		if pw != "Recorder-New-Pw10" || err != nil {
			t.Errorf("ch03 after a change through ch01: %q %v", pw, err)
		}
		c, _ := tx.Camera("nvr1-ch03")
		if c.Revision <= before.Revision {
			t.Errorf("ch03 revision %d not bumped (was %d)", c.Revision, before.Revision)
		}
		return nil
	})
	update(t, s, func(tx *Tx) error { return tx.SetRecorderUser("nvr1", "operator") })
	view(t, s, func(tx *Tx) error {
		for _, n := range []string{"nvr1-ch01", "nvr1-ch02", "nvr1-ch03"} {
			if c, _ := tx.Camera(n); c.Username != "operator" {
				t.Errorf("%s user %q after the recorder's user changed", n, c.Username)
			}
		}
		if r, _ := tx.Recorder("nvr1"); r.Username != "operator" {
			t.Errorf("recorder user %q", r.Username)
		}
		return nil
	})
	err := s.Update(context.Background(), nil, func(tx *Tx) error {
		return tx.CreateCamera(Camera{Name: "nvr1-ch09", Recorder: "nvr1", Channel: 9}, "own-password")
	})
	if err == nil {
		t.Fatal("a channel camera with a password of its own was stored")
	}
	err = s.Update(context.Background(), nil, func(tx *Tx) error {
		return tx.CreateCamera(Camera{Name: "ghost-ch01", Recorder: "ghost", Channel: 1}, "")
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("channel of a missing recorder: %v", err)
	}
}

// TestLastChannelTakesTheRecorderAlong: removing channels keeps the shared
// secret while one is left, and removes it with the last.
func TestLastChannelTakesTheRecorderAlong(t *testing.T) {
	s := openStore(t, dbPath(t), mustKey(t), Options{})
	defer s.Close()
	createRecorder(t, s, "nvr1", 1, 2)
	update(t, s, func(tx *Tx) error { return tx.DeleteCamera("nvr1-ch01") })
	view(t, s, func(tx *Tx) error {
		if r, err := tx.Recorder("nvr1"); err != nil || !r.HasPassword {
			t.Errorf("recorder with a channel left: %+v %v", r, err)
		}
		return nil
	})
	update(t, s, func(tx *Tx) error { return tx.DeleteCamera("nvr1-ch02") })
	view(t, s, func(tx *Tx) error {
		if _, err := tx.Recorder("nvr1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("recorder after its last channel: %v", err)
		}
		return nil
	})
	if !s.IsEmpty() {
		t.Error("store not empty after the last channel went")
	}
}

// TestRotateKeyAndCheckSealedCoverRecorders: key rotation reseals the
// recorder's secret (the channels still read it), and the start check
// reports a damaged recorder secret by kind and name.
func TestRotateKeyAndCheckSealedCoverRecorders(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	createRecorder(t, s, "nvr1", 1, 2)
	_, n, err := s.RotateKey(context.Background(), nil)
	if err != nil || n != 1 {
		t.Fatalf("rotate: resealed %d, %v", n, err)
	}
	view(t, s, func(tx *Tx) error {
		if pw, err := tx.CameraPassword("nvr1-ch02"); pw != recorderSecret || err != nil {
			t.Errorf("after rotation %q %v", pw, err)
		}
		return nil
	})
	if d, err := s.CheckSealed(context.Background()); err != nil || len(d) != 0 {
		t.Fatalf("intact: %+v %v", d, err)
	}
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketRecorders)
		r, err := decodeRecorder([]byte("nvr1"), b.Get([]byte("nvr1")))
		if err != nil {
			return err
		}
		r.Password[len(r.Password)-5] ^= 0x40
		v, _ := encode(r)
		return b.Put([]byte("nvr1"), v)
	})
	s = openStore(t, path, k, Options{})
	defer s.Close()
	d, err := s.CheckSealed(context.Background())
	if err != nil || len(d) != 1 || d[0].Kind != kindRecorder || d[0].Name != "nvr1" || d[0].Field != fieldPass {
		t.Fatalf("damaged recorder secret: %+v %v", d, err)
	}
}

// TestMigrateFromSchemaV5: a v5 file gains the recorders bucket; its
// cameras keep their own passwords.
func TestMigrateFromSchemaV5(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	update(t, s, func(tx *Tx) error { return tx.CreateCamera(Camera{Name: "cam1", Username: "u"}, "v5-cam-secret") })
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		if err := btx.DeleteBucket(bucketRecorders); err != nil {
			return err
		}
		return btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, 5))
	})
	s = openStore(t, path, k, Options{})
	s.Close()
	if got := schemaOf(t, path); got != 6 {
		t.Fatalf("schema %d", got)
	}
	if got := schemaOf(t, path+".schema-v5.bak"); got != 5 {
		t.Errorf("backup schema %d", got)
	}
	s = openStore(t, path, k, Options{})
	defer s.Close()
	view(t, s, func(tx *Tx) error {
		if pw, err := tx.CameraPassword("cam1"); pw != "v5-cam-secret" || err != nil {
			t.Errorf("cam1 %q %v", pw, err)
		}
		return nil
	})
	createRecorder(t, s, "nvr1", 1)
}
