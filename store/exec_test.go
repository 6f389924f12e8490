package store

import (
	"encoding/binary"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// An exec stream's command is stored as written and read back; a schema-4
// file (no exec field anywhere) migrates to 5 with its streams unchanged.
func TestExecStreamAndMigrateFromSchemaV4(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	const cmd = `ffmpeg -i 'rtsp://10.0.0.9/odd stream' -c copy -f rtsp {output}`
	update(t, s, func(tx *Tx) error {
		if err := tx.CreateCamera(Camera{Name: "odd", Streams: []Stream{{Name: "main", Exec: cmd, Transport: "auto"}}}, "Exec-Cam-Secret-1"); err != nil {
			return err
		}
		return tx.CreateCamera(Camera{Name: "plain", Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1:1/x", Transport: "tcp"}}}, "")
	})
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		return btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, 4))
	})
	s = openStore(t, path, k, Options{})
	defer s.Close()
	if got := schemaOf(t, path+".schema-v4.bak"); got != 4 {
		t.Errorf("backup schema %d", got)
	}
	update(t, s, func(tx *Tx) error {
		c, err := tx.Camera("odd")
		if err != nil {
			return err
		}
		if len(c.Streams) != 1 || c.Streams[0].Exec != cmd || c.Streams[0].URL != "" {
			t.Errorf("exec stream read back as %+v", c.Streams)
		}
		p, err := tx.Camera("plain")
		if err != nil {
			return err
		}
		if p.Streams[0].Exec != "" || p.Streams[0].URL != "rtsp://127.0.0.1:1/x" {
			t.Errorf("rtsp stream read back as %+v", p.Streams)
		}
		return nil
	})
	s.Close()
	if got := schemaOf(t, path); got != schemaVersion || schemaVersion < 5 {
		t.Fatalf("schema after migration %d (build %d)", got, schemaVersion)
	}
}
