package store

import (
	bolt "go.etcd.io/bbolt"
)

// --- recorders (schema 6) ---

func (tx *Tx) recorderRec(name string) (*bolt.Bucket, recorderRec, error) {
	b, err := tx.bucket(bucketRecorders)
	if err != nil {
		return nil, recorderRec{}, err
	}
	val := b.Get([]byte(name))
	if val == nil {
		return b, recorderRec{}, notFound(kindRecorder, name)
	}
	r, err := decodeRecorder([]byte(name), val)
	return b, r, err
}

func (r recorderRec) public() Recorder {
	return Recorder{Name: r.Name, Username: r.Username, HasPassword: len(r.Password) > 0, Created: r.Created, Changed: r.Changed}
}

// Recorder returns one recorder.
func (tx *Tx) Recorder(name string) (Recorder, error) {
	_, r, err := tx.recorderRec(name)
	return r.public(), err
}

// CreateRecorder adds a recorder with its credentials (ErrExists if the
// name is taken). Its channel cameras are created next, in the same
// transaction, with CreateCamera and Camera.Recorder set.
func (tx *Tx) CreateRecorder(name, username, password string) error {
	b, err := tx.bucket(bucketRecorders)
	if err != nil {
		return err
	}
	if b.Get([]byte(name)) != nil {
		return exists(kindRecorder, name)
	}
	r := recorderRec{Name: name, Username: username, Created: tx.now, Changed: tx.now}
	if password != "" {
		if r.Password, err = tx.sealSecret(kindRecorder, name, fieldPass, password); err != nil {
			return err
		}
	}
	return tx.put(b, kindRecorder, name, []byte(name), r)
}

// SetRecorderPassword seals the recorder's new password ("" clears it) and
// bumps the Revision of every channel camera, so their pullers reconnect.
func (tx *Tx) SetRecorderPassword(name, password string) error {
	b, r, err := tx.recorderRec(name)
	if err != nil {
		return err
	}
	r.Password = nil
	if password != "" {
		if r.Password, err = tx.sealSecret(kindRecorder, name, fieldPass, password); err != nil {
			return err
		}
	}
	r.Changed = tx.now
	if err := tx.put(b, kindRecorder, name, []byte(name), r); err != nil {
		return err
	}
	chans, err := tx.recorderChannels(name)
	if err != nil {
		return err
	}
	cb, err := tx.bucket(bucketCameras)
	if err != nil {
		return err
	}
	for _, c := range chans {
		c.Revision++
		c.Changed = tx.now
		if err := tx.put(cb, kindCamera, c.Name, []byte(c.Name), c); err != nil {
			return err
		}
	}
	return nil
}

// RecorderPassword unseals a recorder's password ("" if none is set).
func (tx *Tx) RecorderPassword(name string) (string, error) {
	_, r, err := tx.recorderRec(name)
	if err != nil || len(r.Password) == 0 {
		return "", err
	}
	return tx.openSecret(kindRecorder, name, fieldPass, r.Password)
}

// recorderChannels lists the camera records that are channels of name.
func (tx *Tx) recorderChannels(name string) ([]cameraRec, error) {
	b, err := tx.bucket(bucketCameras)
	if err != nil {
		return nil, err
	}
	var out []cameraRec
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeCamera(k, v)
		if err == nil && r.Recorder == name {
			out = append(out, r)
		}
		return err
	})
	return out, err
}

// SetRecorderUser changes the recorder's user name, shared by every
// channel camera (each gets it, with its Revision bumped).
func (tx *Tx) SetRecorderUser(name, username string) error {
	b, r, err := tx.recorderRec(name)
	if err != nil {
		return err
	}
	r.Username = username
	r.Changed = tx.now
	if err := tx.put(b, kindRecorder, name, []byte(name), r); err != nil {
		return err
	}
	chans, err := tx.recorderChannels(name)
	if err != nil {
		return err
	}
	cb, err := tx.bucket(bucketCameras)
	if err != nil {
		return err
	}
	for _, c := range chans {
		if c.Username == username {
			continue
		}
		c.Username = username
		c.Revision++
		c.Changed = tx.now
		if err := tx.put(cb, kindCamera, c.Name, []byte(c.Name), c); err != nil {
			return err
		}
	}
	return nil
}
