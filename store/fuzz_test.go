package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecodeRecords feeds arbitrary stored values to every record decoder and
// the conversions the Tx methods apply afterwards.
func FuzzDecodeRecords(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, v := range []any{
		cameraRec{Name: "cam1", Username: "u", Password: []byte{1, 2, 3}, ONVIF: &onvifRec{URN: "urn:uuid:x"},
			Streams: []streamRec{{Name: "main", URL: "rtsp://127.0.0.1/x", Transport: "tcp", OnDemand: true}}, Created: now, Revision: 3},
		userRec{Name: "cam1", CredentialVersion: 2, PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", Digest: []byte{9}},
		groupRec{Name: "cam1", Members: []string{"a", "b"}},
		grantRec{Subject: "cam1", Action: "read", Pattern: "*"},
		auditRec{Seq: 1, Time: now, Args: map[string]string{"a": "b"}, Hash: "00"},
		cameraRecV1{Name: "cam1", URL: "rtsp://127.0.0.1/"},
	} {
		b, err := encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte("cam1"), b)
	}
	f.Add([]byte(""), []byte(`{"name":`))
	f.Add([]byte("x"), []byte(`{"name":"x","members":null,"streams":[null],"onvif":null,"created":"bogus"}`))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","args":{"":""}}`))
	f.Fuzz(func(t *testing.T, key, val []byte) {
		if r, err := decodeCamera(key, val); err == nil {
			c := r.public()
			var r2 cameraRec
			r2.applyPublic(c)
		}
		if r, err := decodeUser(key, val); err == nil {
			_ = r.public()
		}
		if r, err := decodeGroup(key, val); err == nil {
			_ = r.public()
		}
		_, _ = decodeGrant(key, val)
		_, _ = decodeIssuer(key, val)
		if r, err := decodeDirectory(key, val); err == nil {
			_ = r.public()
		}
		_, _ = decodeGroupMap(key, val)
		_, _ = decodeRevokedToken(key, val)
		if r, err := decodeAudit(key, val); err == nil {
			_ = legacyAuditHash(r)
			_ = capAudit(r)
			_ = r.public()
		}
	})
}

// FuzzOpenSealed: arbitrary bytes as a sealed blob never panic and never
// open (forging one would need the key).
func FuzzOpenSealed(f *testing.F) {
	k := keyFromBytes([]byte("0123456789abcdef0123456789abcdef"))
	good, err := seal(k, "camera", "cam1", "password", []byte("secret"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "camera", "cam1", "password")
	f.Add(good[:sealMinLen], "camera", "cam1", "password")
	f.Add([]byte{1}, "user", "", "digest")
	f.Add([]byte{}, "", "", "")
	f.Fuzz(func(t *testing.T, blob []byte, kind, name, field string) {
		_, _ = blobKeyID(blob)
		pt, err := openSealed(k, kind, name, field, blob)
		if err == nil && (kind != "camera" || name != "cam1" || field != "password" || string(pt) != "secret") {
			t.Fatalf("forged blob opened: %q", pt)
		}
		_, _ = openSealed(Key{}, kind, name, field, blob)
	})
}

// FuzzParsePHC: stored password hashes are parsed with bounds; a parse that
// succeeds re-encodes to the same string.
func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=1,t=1,p=1$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.memory > maxArgonMemoryKiB || p.time > maxArgonTime || p.threads > maxArgonThreads || p.threads == 0 {
			t.Fatalf("out-of-bounds parameters accepted: %+v", p)
		}
		if p2, err := parsePHC(p.String()); err != nil || p2.String() != p.String() {
			t.Fatalf("re-encoding differs: %q -> %q (%v)", s, p.String(), err)
		}
	})
}

// FuzzParseKey: key file contents.
func FuzzParseKey(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"))
	f.Add([]byte("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"))
	f.Add([]byte("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseKey(data)
		if err == nil && (k.IsZero() || len(k.ID()) != 2*keyIDLen) {
			t.Fatalf("accepted key without id")
		}
	})
}

// FuzzPreflight: the hand-written bbolt meta page reader, on arbitrary file
// contents (seeded with a real database's first pages).
func FuzzPreflight(f *testing.F) {
	if b, err := os.ReadFile(v1Fixture); err == nil {
		f.Add(b[:8192])
		f.Add(b[:4096+100])
	}
	f.Add([]byte("SQLite format 3\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = preflight(p)
	})
}
