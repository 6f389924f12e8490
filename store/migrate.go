package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	bolt "go.etcd.io/bbolt"
)

// Ordered migrations: migrations[i] takes schema i+1 to i+2. All pending
// migrations and the schema bump run in one transaction, after a backup copy
// of the file has been written next to it.
var migrations = []struct {
	desc  string
	apply func(btx *bolt.Tx, now time.Time) error
}{
	{"v1 -> v2: camera url becomes a streams list; revisions and credential versions start at 1", migrateV1toV2},
	{"v2 -> v3: cameras gain allow_basic, a pinned TLS certificate and a pending move (absent: Basic refused, no pin, no move); the audit chain is keyed (keyedAuditSchema, done by migrate)", migrateV2toV3},
	{"v3 -> v4: empty identity buckets (token issuers, directory, group mappings, revoked tokens)", migrateV3toV4},
	{"v4 -> v5: streams gain an exec source command (absent: the URL's scheme says the source)", migrateV4toV5},
	{"v5 -> v6: empty recorders bucket (cameras gain an optional recorder and channel; absent: a camera of its own)", migrateV5toV6},
}

func init() {
	if len(migrations) != int(schemaVersion)-1 {
		panic("store: migrations do not cover every schema version")
	}
}

func (s *Store) migrate(from uint64) error {
	backup, err := s.backup(from)
	if err != nil {
		return fmt.Errorf("migrate %s from schema %d: backup first: %w", s.path, from, err)
	}
	var keyed keyChainResult
	err = s.db.Update(func(btx *bolt.Tx) error {
		now := s.now().UTC()
		for v := from; v < schemaVersion; v++ {
			m := migrations[v-1]
			if err := m.apply(btx, now); err != nil {
				return fmt.Errorf("%s: %w", m.desc, err)
			}
			s.log.Info("migrated database", "path", s.path, "step", m.desc)
		}
		// Keying needs the master key, which the steps above do not get;
		// it commits with them, so no database of a keyed schema ever
		// holds an unkeyed chain camwarden wrote.
		if from < keyedAuditSchema {
			tx := &Tx{s: s, btx: btx, now: now}
			var err error
			if keyed, err = tx.keyChain(context.Background(), from, backup); err != nil {
				return fmt.Errorf("key the audit chain: %w", err)
			}
		}
		if err := btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, schemaVersion)); err != nil {
			return err
		}
		if err := decodeAll(btx); err != nil {
			return fmt.Errorf("after migration: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate %s from schema %d to %d (unchanged; backup at %s): %w", s.path, from, schemaVersion, backup, err)
	}
	s.log.Info("database migrated", "path", s.path, "from", from, "to", schemaVersion, "backup", backup)
	s.reportKeyChain(keyed, backup)
	return nil
}

// backup writes a consistent copy of the database (0600, fsynced) next to it
// and returns its path. It never overwrites a file.
func (s *Store) backup(schema uint64) (string, error) {
	name := fmt.Sprintf("%s.schema-v%d.bak", s.path, schema)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if os.IsExist(err) {
		name = fmt.Sprintf("%s.schema-v%d.%d.bak", s.path, schema, s.now().Unix())
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return "", err
	}
	err = s.db.View(func(btx *bolt.Tx) error {
		_, err := btx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, syncDir(dirOf(name))
}

// Schema v1 records (before streams, ONVIF identity, revisions and
// credential versions existed).
type cameraRecV1 struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	Transport string    `json:"transport,omitempty"`
	Username  string    `json:"username,omitempty"`
	Password  []byte    `json:"password,omitempty"`
	Created   time.Time `json:"created"`
	Changed   time.Time `json:"changed"`
}

func migrateV1toV2(btx *bolt.Tx, now time.Time) error {
	type kv struct{ k, v []byte }
	collect := func(bucket []byte, conv func(k, v []byte) ([]byte, error)) error {
		b := btx.Bucket(bucket)
		var out []kv
		if err := b.ForEach(func(k, v []byte) error {
			nv, err := conv(k, v)
			if err != nil {
				return err
			}
			out = append(out, kv{append([]byte{}, k...), nv})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range out {
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := collect(bucketCameras, func(k, v []byte) ([]byte, error) {
		var old cameraRecV1
		if err := json.Unmarshal(v, &old); err != nil {
			return nil, fmt.Errorf("%w: v1 camera %q: %v", ErrCorrupt, textutil.Shorten(string(k), 64), err)
		}
		r := cameraRec{Name: old.Name, Username: old.Username, Password: old.Password,
			Created: old.Created, Changed: old.Changed, Revision: 1, Streams: []streamRec{}}
		if old.URL != "" {
			r.Streams = append(r.Streams, streamRec{Name: "main", URL: old.URL, Transport: old.Transport})
		}
		return encode(r)
	}); err != nil {
		return err
	}
	return collect(bucketUsers, func(k, v []byte) ([]byte, error) {
		r, err := decodeUser(k, v)
		if err != nil {
			return nil, err
		}
		if r.CredentialVersion == 0 {
			r.CredentialVersion = 1
		}
		return encode(r)
	})
}

// migrateV2toV3 adds no data: v2 camera records are valid v3 records whose
// new fields are absent (Basic refused, no pinned certificate, no pending
// move). The version still moves so that a v2 build, which would drop those
// fields on its next write (re-allowing what an admin refused), refuses the
// file instead. Every camera record is decoded to prove that.
func migrateV2toV3(btx *bolt.Tx, _ time.Time) error {
	return btx.Bucket(bucketCameras).ForEach(func(k, v []byte) error {
		_, err := decodeCamera(k, v)
		return err
	})
}

// migrateV3toV4 creates the identity buckets, empty: a v3 database has no
// issuers, no directory, no mappings and no revocations.
func migrateV3toV4(btx *bolt.Tx, _ time.Time) error {
	for _, name := range identityBuckets {
		if _, err := btx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// migrateV4toV5 changes no record: a v4 stream has no exec command, and an
// absent one means "pulled from its URL". The bump keeps an older build,
// which would pull an exec stream's empty URL, from opening the file.
func migrateV4toV5(btx *bolt.Tx, _ time.Time) error {
	return btx.Bucket(bucketCameras).ForEach(func(k, v []byte) error {
		_, err := decodeCamera(k, v)
		return err
	})
}

// migrateV5toV6 creates the recorders bucket, empty: every v5 camera keeps
// its own credentials. The version moves so that a v5 build, which would
// drop a channel camera's recorder reference on its next write (leaving it
// without credentials and the recorder's secret dangling), refuses the file.
func migrateV5toV6(btx *bolt.Tx, _ time.Time) error {
	_, err := btx.CreateBucketIfNotExists(bucketRecorders)
	return err
}
