package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of master and data keys.
const KeySize = 32

// Key is a 32-byte symmetric key. The zero Key means "no key". Its String and
// GoString show only the key ID, so printing a Key never leaks it.
type Key struct {
	b  [KeySize]byte
	ok bool
}

// keyIDLen is the length in bytes of a key ID (hex-encoded: twice that).
const keyIDLen = 8

func keyFromBytes(b []byte) Key {
	var k Key
	copy(k.b[:], b)
	k.ok = true
	return k
}

// NewKey returns a fresh random key.
func NewKey() (Key, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	return keyFromBytes(b[:]), nil
}

// IsZero reports whether k is the zero Key (no key).
func (k Key) IsZero() bool { return !k.ok }

// ID is a short hex id derived from the key (the first 8 bytes of SHA-256 over
// a domain-separated encoding). It is safe to log and identifies which key
// sealed a blob. The zero Key has ID "".
func (k Key) ID() string {
	if !k.ok {
		return ""
	}
	return hex.EncodeToString(k.rawID())
}

func (k Key) rawID() []byte {
	h := sha256.New()
	h.Write([]byte("camwarden key id v1\x00"))
	h.Write(k.b[:])
	return h.Sum(nil)[:keyIDLen]
}

func (k Key) String() string   { return "store.Key(" + k.ID() + ")" }
func (k Key) GoString() string { return k.String() }

// LoadKey reads a master key file. Accepted contents: exactly 32 raw bytes, or
// exactly 64 hex characters optionally followed by one "\n" (or "\r\n").
// Anything else is refused with an error that names the file and the expected
// format but never echoes the contents. A missing file wraps os.ErrNotExist.
func LoadKey(path string) (Key, error) {
	// Read at most a little more than the largest accepted size, so a wrong
	// path (say, a disk image) is not read whole.
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("master key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return Key{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	defer clear(data)
	k, err := parseKey(data)
	if err != nil {
		return Key{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

func parseKey(data []byte) (Key, error) {
	var raw []byte
	switch {
	case len(data) == KeySize:
		raw = data
	case len(data) >= 2*KeySize && len(data) <= 2*KeySize+2:
		text := data[:2*KeySize]
		rest := string(data[2*KeySize:])
		if rest != "" && rest != "\n" && rest != "\r\n" {
			return Key{}, errKeyFormat(len(data))
		}
		raw = make([]byte, KeySize)
		defer clear(raw)
		if _, err := hex.Decode(raw, text); err != nil {
			return Key{}, fmt.Errorf("64 characters but not hex; expected exactly 32 raw bytes or 64 hex characters (optionally followed by a newline)")
		}
	default:
		return Key{}, errKeyFormat(len(data))
	}
	if subtle.ConstantTimeCompare(raw, make([]byte, KeySize)) == 1 {
		return Key{}, errors.New("key is all zero bytes (a placeholder?); generate a real key")
	}
	return keyFromBytes(raw), nil
}

// maxKeyFile is the longest accepted key file: 64 hex characters and "\r\n".
const maxKeyFile = 2*KeySize + 2

func errKeyFormat(n int) error {
	if n > maxKeyFile {
		return fmt.Errorf("wrong length (more than %d bytes): expected exactly 32 raw bytes or 64 hex characters (optionally followed by a newline)", maxKeyFile)
	}
	return fmt.Errorf("wrong length (%d bytes): expected exactly 32 raw bytes or 64 hex characters (optionally followed by a newline)", n)
}

// KeyFileWorldReadable reports whether others (not owner, not group) may read
// the key file. The caller warns; false if the file cannot be inspected.
func KeyFileWorldReadable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	return fi.Mode().Perm()&0o004 != 0
}

// CheckKeyFileMode refuses a master key file that users other than its
// owner and group may read or write, or that its group may write (as ssh
// refuses an open private key): 0600, 0400, 0640 and 0440 pass; 0644, 0666,
// 0660 do not. The error names the file and its mode.
func CheckKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("master key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return fmt.Errorf("master key file %s has mode %04o, open to users other than its owner and group; "+
			"refusing to use it: chmod 600 %s (0640 with a trusted group is fine)", path, perm, path)
	}
	return nil
}

// WriteNewKeyFile creates path (O_EXCL, mode 0600) holding a fresh key as 64
// hex characters and a newline, fsyncs the file and its directory, and returns
// the key. It never overwrites an existing file.
func WriteNewKeyFile(path string) (Key, error) {
	k, err := NewKey()
	if err != nil {
		return Key{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Key{}, fmt.Errorf("create master key file: %w", err)
	}
	text := make([]byte, 2*KeySize+1)
	defer clear(text)
	hex.Encode(text, k.b[:])
	text[2*KeySize] = '\n'
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(path)
		return Key{}, fmt.Errorf("write master key file %s: %w", path, err)
	}
	return k, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Sealed blob format (version 1):
//
//	[0]      format version (1)
//	[1:9]    raw id of the key that sealed it
//	[9:33]   XChaCha20-Poly1305 nonce (random per seal)
//	[33:]    ciphertext and 16-byte tag
//
// The associated data is a domain tag, the 9-byte header and the
// length-prefixed (kind, name, field), so a blob copied to another record or
// field, or relabelled with another key id, fails to open.
const (
	sealVersion   = 1
	sealHeaderLen = 1 + keyIDLen
	sealMinLen    = sealHeaderLen + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

func sealAD(header []byte, kind, name, field string) []byte {
	ad := make([]byte, 0, 32+len(header)+len(kind)+len(name)+len(field)+3*binary.MaxVarintLen64)
	ad = append(ad, "camwarden-seal-v1"...)
	ad = append(ad, header...)
	for _, s := range []string{kind, name, field} {
		ad = binary.AppendUvarint(ad, uint64(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// seal encrypts plaintext under k, bound to (kind, name, field).
func seal(k Key, kind, name, field string, plaintext []byte) ([]byte, error) {
	if !k.ok {
		return nil, ErrNoKey
	}
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, sealHeaderLen+chacha20poly1305.NonceSizeX, sealMinLen+len(plaintext))
	out[0] = sealVersion
	copy(out[1:sealHeaderLen], k.rawID())
	if _, err := io.ReadFull(rand.Reader, out[sealHeaderLen:]); err != nil {
		return nil, fmt.Errorf("seal: random nonce: %w", err)
	}
	nonce := out[sealHeaderLen:]
	return aead.Seal(out, nonce, plaintext, sealAD(out[:sealHeaderLen], kind, name, field)), nil
}

// blobKeyID returns the hex id of the key a blob claims to be sealed with.
func blobKeyID(blob []byte) (string, error) {
	if len(blob) < sealMinLen {
		return "", fmt.Errorf("%w: blob too short (%d bytes)", ErrSealed, len(blob))
	}
	if blob[0] != sealVersion {
		return "", fmt.Errorf("%w: unknown blob format %d", ErrSealed, blob[0])
	}
	return hex.EncodeToString(blob[1:sealHeaderLen]), nil
}

// openSealed decrypts a blob sealed for (kind, name, field). A blob sealed
// with another key is reported with both key IDs; a blob that does not
// authenticate (tampered, or copied from another record) says so.
func openSealed(k Key, kind, name, field string, blob []byte) ([]byte, error) {
	id, err := blobKeyID(blob)
	if err != nil {
		return nil, fmt.Errorf("%s %q %s: %w", kind, name, field, err)
	}
	if !k.ok {
		return nil, fmt.Errorf("%s %q %s: %w: sealed with key %s and no key is loaded", kind, name, field, ErrSealed, id)
	}
	if !bytes.Equal(blob[1:sealHeaderLen], k.rawID()) {
		return nil, fmt.Errorf("%s %q %s: %w: sealed with key %s, the loaded key is %s", kind, name, field, ErrSealed, id, k.ID())
	}
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		return nil, err
	}
	nonce := blob[sealHeaderLen : sealHeaderLen+chacha20poly1305.NonceSizeX]
	ct := blob[sealHeaderLen+chacha20poly1305.NonceSizeX:]
	pt, err := aead.Open(nil, nonce, ct, sealAD(blob[:sealHeaderLen], kind, name, field))
	if err != nil {
		return nil, fmt.Errorf("%s %q %s: %w: authentication failed (the blob was altered or belongs to another record)", kind, name, field, ErrSealed)
	}
	return pt, nil
}
