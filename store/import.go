package store

import "fmt"

// ImportUser adds a user whose argon2id hash was computed beforehand (bulk
// import, benchmarks): one HashPassword can serve many users that share a
// password, instead of one deliberately slow hash each. The hash must be of
// password; only its format is checked here. The Digest secret is sealed as
// in CreateUser.
func (tx *Tx) ImportUser(name, encodedHash, password string) error {
	if _, err := parsePHC(encodedHash); err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	if password == "" {
		return fmt.Errorf("user %q: empty password", name)
	}
	b, err := tx.bucket(bucketUsers)
	if err != nil {
		return err
	}
	if b.Get([]byte(name)) != nil {
		return exists(kindUser, name)
	}
	r := userRec{Name: name, Created: tx.now, Changed: tx.now, CredentialVersion: 1}
	d, err := tx.sealSecret(kindUser, name, fieldDigest, password)
	if err != nil {
		return err
	}
	r.PasswordHash, r.Digest = encodedHash, d
	return tx.put(b, kindUser, name, []byte(name), r)
}
