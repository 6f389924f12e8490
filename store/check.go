package store

import "context"

// DamagedSecret is a sealed blob that no longer opens: a flipped byte, a
// blob copied from another record, or a blob under an unknown key.
type DamagedSecret struct {
	Kind   string // "camera", "recorder", "user" or "directory"
	Name   string
	Field  string // "password", "digest" or "bind_password"
	Reason string // never contains key material or plaintext
}

// CheckSealed opens every sealed blob (an AEAD open is microseconds) and
// lists those that fail, so damage shows at start instead of at the next
// login or pull. Plaintexts are wiped as soon as they are opened.
func (s *Store) CheckSealed(ctx context.Context) ([]DamagedSecret, error) {
	var out []DamagedSecret
	err := s.View(ctx, func(tx *Tx) error {
		dk, err := tx.dataKey()
		if err != nil {
			return err
		}
		check := func(kind, name, field string, blob []byte) {
			if len(blob) == 0 {
				return
			}
			pt, err := openSealed(dk, kind, name, field, blob)
			clear(pt)
			if err != nil {
				out = append(out, DamagedSecret{Kind: kind, Name: name, Field: field, Reason: err.Error()})
			}
		}
		cams, err := tx.bucket(bucketCameras)
		if err != nil {
			return err
		}
		if err := cams.ForEach(func(k, v []byte) error {
			r, err := decodeCamera(k, v)
			if err == nil {
				check(kindCamera, r.Name, fieldPass, r.Password)
			}
			return err
		}); err != nil {
			return err
		}
		recs, err := tx.bucket(bucketRecorders)
		if err != nil {
			return err
		}
		if err := recs.ForEach(func(k, v []byte) error {
			r, err := decodeRecorder(k, v)
			if err == nil {
				check(kindRecorder, r.Name, fieldPass, r.Password)
			}
			return err
		}); err != nil {
			return err
		}
		users, err := tx.bucket(bucketUsers)
		if err != nil {
			return err
		}
		if err := users.ForEach(func(k, v []byte) error {
			r, err := decodeUser(k, v)
			if err == nil {
				check(kindUser, r.Name, fieldDigest, r.Digest)
			}
			return err
		}); err != nil {
			return err
		}
		dir, ok, err := tx.directoryRec()
		if ok {
			check(kindDirectory, directoryKey, fieldBindPassword, dir.BindPassword)
		}
		return err
	})
	return out, err
}
