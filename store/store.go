// Package store is camwarden's single source of truth: one bbolt file holding
// cameras (with sealed credentials), users (argon2id hashes and sealed digest
// secrets), groups, grants and a hash-chained audit log.
//
// Every mutation commits in its own fsynced bbolt transaction before the
// method returns. Secrets are sealed with XChaCha20-Poly1305 under a data
// key; the data key is stored wrapped under the master key, which lives in a
// file outside the database. bbolt types never leave the package.
//
// Open never writes to a file it has not validated: an existing file is first
// inspected read-only (bbolt meta pages, size, consistency check, camwarden
// meta, schema version, master key), and only then opened for writing.
package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultTimeout is how long Open waits for the file lock.
const DefaultTimeout = 2 * time.Second

// Options tune Open. The zero value is usable.
type Options struct {
	Timeout time.Duration    // bbolt lock timeout, default 2s
	Now     func() time.Time // default time.Now
	Logger  hclog.Logger     // default: discard

	// AuditMirror, if set, is given the chain's head after every committed
	// append, in sequence order, and once at Open. The daemon writes it to
	// the journal, outside the database, so that a rollback of the whole
	// file to an older copy shows (VerifyAuditHead). It must not block.
	AuditMirror func(AuditHead)
	// Committed, if set, hears of every write transaction that tried to
	// commit (not those fn rolled back): how long it took, fsync included,
	// how many audit entries it appended, and why it failed. For metrics:
	// it runs on the writer's goroutine and must be cheap.
	Committed func(took time.Duration, auditEntries int, err error)
}

// Store is an open camwarden database. Its methods are safe for concurrent use.
type Store struct {
	path string
	db   *bolt.DB
	log  hclog.Logger
	now  func() time.Time

	committed func(took time.Duration, auditEntries int, err error)

	// masters: the current master key first, then any this process replaced
	// (RewrapMasterKey), so a read transaction that started before a rewrap
	// can still unwrap its snapshot's data key.
	masters   atomic.Pointer[[]Key]
	dataKeyID atomic.Pointer[string]
	// auditKeyPtr: the chain's HMAC key, derived from the current master.
	auditKeyPtr atomic.Pointer[Key]
	auditMirror func(AuditHead)

	// writeMu serialises write transactions with the master-key swap in
	// RewrapMasterKey, so no writer wraps a new data key under a master
	// that is being replaced. (bbolt serialises writers anyway.)
	writeMu sync.Mutex
}

// Open opens (or creates, mode 0600) the database at path with master key
// master. A file that is locked, foreign, truncated, corrupt, has a newer
// schema, or whose secrets are sealed under another master key is refused
// without being modified.
func Open(path string, master Key, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		if master.IsZero() {
			return nil, fmt.Errorf("create database %s: %w", path, ErrNoKey)
		}
		if err := create(path, master, opts); err != nil {
			return nil, err
		}
		opts.Logger.Info("created database", "path", path, "schema", schemaVersion)
	} else if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}

	// Inspect read-only first: nothing below writes until this passed.
	info, err := inspectFile(path, []Key{master}, opts.Timeout, true)
	if err != nil {
		return nil, err
	}
	if master.IsZero() {
		return nil, fmt.Errorf("open database %s: %w", path, ErrNoKey)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("database file is accessible to group or others; it should be mode 0600", "path", path, "mode", fi.Mode().Perm().String())
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		return nil, openErr(path, opts.Timeout, err)
	}
	s := &Store{path: path, db: db, log: opts.Logger, now: opts.Now, auditMirror: opts.AuditMirror, committed: opts.Committed}
	s.masters.Store(&[]Key{master})
	ak := deriveAuditKey(master)
	s.auditKeyPtr.Store(&ak)
	// Re-check under the write lock: the file may have changed between the
	// read-only inspection and taking the lock.
	if err := db.View(func(btx *bolt.Tx) error {
		var err error
		info, err = inspectTx(path, btx, []Key{master}, false)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	if info.schema < schemaVersion {
		if err := s.migrate(info.schema); err != nil {
			db.Close()
			return nil, err
		}
	}
	s.dataKeyID.Store(&info.dataKeyID)
	// A migration above already wrote a backup of the file as it was.
	if err := s.rekeyAuditChain(context.Background(), info.schema, info.schema == schemaVersion); err != nil {
		db.Close()
		return nil, err
	}
	if s.auditMirror != nil {
		if h, err := s.AuditHead(context.Background()); err == nil {
			s.auditMirror(h)
		}
	}
	s.log.Debug("opened database", "path", path, "master_key", master.ID(), "data_key", info.dataKeyID)
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// KeyID is the id of the current data key; "" until the first secret is
// sealed (the data key is created with it).
func (s *Store) KeyID() string { return *s.dataKeyID.Load() }

// MasterKeyID is the id of the loaded master key.
func (s *Store) MasterKeyID() string { return s.master().ID() }

func (s *Store) master() Key { return (*s.masters.Load())[0] }

func (s *Store) knownMasters() []Key { return *s.masters.Load() }

// IsEmpty reports whether the database holds no cameras, users, groups or
// grants. On a read error it answers false (the cautious answer).
func (s *Store) IsEmpty() bool {
	empty := true
	err := s.db.View(func(btx *bolt.Tx) error {
		for _, name := range policyBuckets {
			b := btx.Bucket(name)
			if b == nil {
				return ErrCorrupt
			}
			if k, _ := b.Cursor().First(); k != nil {
				empty = false
			}
		}
		return nil
	})
	return err == nil && empty
}

// Update runs fn in one read-write transaction. If audit is not nil the entry
// is appended to the audit chain in the same transaction and, on success,
// *audit is updated with its Seq, Time, PrevHash and Hash. fn returning an
// error (or ctx being cancelled before the commit) rolls everything back.
// When Update returns nil the transaction is on disk (fsynced).
func (s *Store) Update(ctx context.Context, audit *AuditEntry, fn func(tx *Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.update(ctx, audit, fn)
}

func (s *Store) update(ctx context.Context, audit *AuditEntry, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var filled AuditEntry
	var committing time.Time // set once fn and the audit entry are in: bbolt commits next
	start := time.Now()
	err := s.db.Update(func(btx *bolt.Tx) error {
		tx := &Tx{s: s, btx: btx, now: s.now().UTC()}
		defer func() { tx.closed = true }()
		if err := fn(tx); err != nil {
			return err
		}
		if audit != nil {
			var err error
			if filled, err = tx.appendAudit(*audit); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		committing = time.Now()
		return nil
	})
	if s.committed != nil && !committing.IsZero() {
		n := 0
		if audit != nil {
			n = 1
		}
		s.committed(time.Since(start), n, err)
	}
	if err != nil {
		return s.noSpace(err)
	}
	if audit != nil {
		*audit = filled
		s.mirrorHead(filled.Seq, filled.Hash)
	}
	return nil
}

// noSpace turns a write that failed because the file system is full into
// an error naming the directory whose device is full. bbolt rolled the
// transaction back: the file holds every earlier commit and nothing of this
// one.
func (s *Store) noSpace(err error) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	return fmt.Errorf("%w holding %s: nothing was changed; free space there and retry", ErrNoSpace, dirOf(s.path))
}

// View runs fn in one read-only transaction (a consistent snapshot).
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error {
		tx := &Tx{s: s, btx: btx, now: s.now().UTC()}
		defer func() { tx.closed = true }()
		return fn(tx)
	})
}

// RotateKey creates a new data key and re-seals every secret under it in one
// transaction (with audit, if given). The master key file is not touched.
func (s *Store) RotateKey(ctx context.Context, audit *AuditEntry) (newKeyID string, resealed int, err error) {
	err = s.Update(ctx, audit, func(tx *Tx) error {
		old, err := tx.dataKey()
		if err != nil {
			return err
		}
		nk, err := NewKey()
		if err != nil {
			return err
		}
		resealed = 0
		reseal := func(kind, name, field string, blob []byte) ([]byte, error) {
			pt, err := openSealed(old, kind, name, field, blob)
			if err != nil {
				return nil, err
			}
			defer clear(pt)
			resealed++
			return seal(nk, kind, name, field, pt)
		}
		cams, err := tx.bucket(bucketCameras)
		if err != nil {
			return err
		}
		var camRecs []cameraRec
		if err := cams.ForEach(func(k, v []byte) error {
			r, err := decodeCamera(k, v)
			if err == nil && len(r.Password) > 0 {
				camRecs = append(camRecs, r)
			}
			return err
		}); err != nil {
			return err
		}
		for _, r := range camRecs {
			if r.Password, err = reseal(kindCamera, r.Name, fieldPass, r.Password); err != nil {
				return err
			}
			if err := tx.put(cams, kindCamera, r.Name, []byte(r.Name), r); err != nil {
				return err
			}
		}
		recs, err := tx.bucket(bucketRecorders)
		if err != nil {
			return err
		}
		var recRecs []recorderRec
		if err := recs.ForEach(func(k, v []byte) error {
			r, err := decodeRecorder(k, v)
			if err == nil && len(r.Password) > 0 {
				recRecs = append(recRecs, r)
			}
			return err
		}); err != nil {
			return err
		}
		for _, r := range recRecs {
			if r.Password, err = reseal(kindRecorder, r.Name, fieldPass, r.Password); err != nil {
				return err
			}
			if err := tx.put(recs, kindRecorder, r.Name, []byte(r.Name), r); err != nil {
				return err
			}
		}
		users, err := tx.bucket(bucketUsers)
		if err != nil {
			return err
		}
		var userRecs []userRec
		if err := users.ForEach(func(k, v []byte) error {
			r, err := decodeUser(k, v)
			if err == nil && len(r.Digest) > 0 {
				userRecs = append(userRecs, r)
			}
			return err
		}); err != nil {
			return err
		}
		for _, r := range userRecs {
			if r.Digest, err = reseal(kindUser, r.Name, fieldDigest, r.Digest); err != nil {
				return err
			}
			if err := tx.put(users, kindUser, r.Name, []byte(r.Name), r); err != nil {
				return err
			}
		}
		if dir, ok, err := tx.directoryRec(); err != nil {
			return err
		} else if ok && len(dir.BindPassword) > 0 {
			if dir.BindPassword, err = reseal(kindDirectory, directoryKey, fieldBindPassword, dir.BindPassword); err != nil {
				return err
			}
			db, err := tx.bucket(bucketDirectory)
			if err != nil {
				return err
			}
			if err := tx.put(db, kindDirectory, directoryKey, []byte(directoryKey), dir); err != nil {
				return err
			}
		}
		newKeyID = nk.ID()
		return tx.putDataKey(nk, s.master())
	})
	if err != nil {
		return "", 0, fmt.Errorf("rotate data key: %w", err)
	}
	s.log.Info("rotated data key", "data_key", newKeyID, "resealed", resealed)
	return newKeyID, resealed, nil
}

// RewrapMasterKey re-wraps the data key under newMaster (sealed secrets are
// unchanged). Afterwards the database opens only with newMaster.
func (s *Store) RewrapMasterKey(ctx context.Context, newMaster Key) error {
	if newMaster.IsZero() {
		return fmt.Errorf("rewrap master key: %w", ErrNoKey)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Readers that start after the commit must find newMaster among the
	// known keys before it becomes current.
	old := s.knownMasters()
	pending := append(append([]Key{}, old...), newMaster)
	s.masters.Store(&pending)
	newAudit := deriveAuditKey(newMaster)
	err := s.update(ctx, nil, func(tx *Tx) error {
		if err := tx.rekeyChainTo(ctx, newAudit, newMaster.ID()); err != nil {
			return err
		}
		dk, err := tx.dataKey()
		if err != nil || dk.IsZero() {
			return err
		}
		return tx.putDataKey(dk, newMaster)
	})
	if err != nil {
		s.masters.Store(&old)
		return fmt.Errorf("rewrap master key: %w", err)
	}
	s.auditKeyPtr.Store(&newAudit)
	// Keep the previous masters known (a handful at most) so transactions
	// still reading an older snapshot can unwrap its data key.
	next := append([]Key{newMaster}, old...)
	s.masters.Store(&next)
	s.log.Info("re-wrapped data key", "master_key", newMaster.ID())
	return nil
}

// ProbeSealed peeks at the database read-only, without needing a key and
// without modifying it: whether it holds sealed data (a wrapped data key
// exists), and the id of the master key that wraps it. A missing file is not
// an error (false, "", nil). Foreign, corrupt, newer or locked files give the
// same errors as Open.
func ProbeSealed(path string) (hasSealedData bool, masterKeyID string, err error) {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return false, "", nil
	}
	info, err := inspectFile(path, nil, DefaultTimeout, false)
	if err != nil {
		return false, "", err
	}
	return info.masterKeyID != "", info.masterKeyID, nil
}

// --- creation ---

// create builds a complete new database under a temporary name and links it
// into place only when it is whole, so a crash never leaves a half-made file
// at path. If path appeared meanwhile (another process), that file wins.
func create(path string, master Key, opts Options) error {
	var rnd [6]byte
	if _, err := io.ReadFull(rand.Reader, rnd[:]); err != nil {
		return err
	}
	tmp := path + ".new-" + hex.EncodeToString(rnd[:])
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
		}
		meta := btx.Bucket(bucketMeta)
		if err := meta.Put(metaFormat, []byte(formatMagic)); err != nil {
			return err
		}
		if err := meta.Put(metaSchema, binary.BigEndian.AppendUint64(nil, schemaVersion)); err != nil {
			return err
		}
		if err := meta.Put(metaCreated, []byte(opts.Now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		// A new chain is keyed from the start, and its empty head signed
		// so that deleting every entry and the head shows too.
		ak := deriveAuditKey(master)
		mark, err := encode(auditKeyMark{KeyID: ak.ID(), MasterKeyID: master.ID()})
		if err != nil {
			return err
		}
		head, err := encode(auditHead{MAC: headMAC(ak, 0, "")})
		if err != nil {
			return err
		}
		if err := meta.Put(metaAuditHead, head); err != nil {
			return err
		}
		return meta.Put(metaAuditKey, mark)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	// link(2) never replaces an existing file; if the filesystem cannot
	// hard-link, fall back to rename after re-checking (a small race only on
	// such filesystems).
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Lstat(path); !errors.Is(serr, os.ErrNotExist) {
			return fmt.Errorf("create database %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("create database %s: %w", path, err)
		}
		return syncDir(dirOf(path))
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	return syncDir(dirOf(path))
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			if i == 0 {
				return "/"
			}
			return path[:i]
		}
	}
	return "."
}

// --- inspection (never writes) ---

type dbInfo struct {
	schema      uint64
	masterKeyID string // "" if no data key yet
	dataKeyID   string // "" if no data key yet, or not unwrapped (no key given)
}

func openErr(path string, timeout time.Duration, err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%w: %s (gave up after %s); is another camwardend or camwarden tool using it?", ErrLocked, path, timeout)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
}

// inspectFile validates path without writing: the bbolt header and size by
// hand, then a read-only bbolt open and inspectTx. masters nil means "no key
// check" (ProbeSealed).
func inspectFile(path string, masters []Key, timeout time.Duration, check bool) (info dbInfo, err error) {
	if err := preflight(path); err != nil {
		return dbInfo{}, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return dbInfo{}, openErr(path, timeout, err)
	}
	defer db.Close()
	err = db.View(func(btx *bolt.Tx) error {
		var err error
		info, err = inspectTx(path, btx, masters, check)
		return err
	})
	return info, err
}

// inspectTx checks a snapshot: consistency (if check), camwarden meta,
// schema version, that the data key opens with one of masters, and that
// every policy record decodes. A fault or panic while reading a damaged
// file is reported as ErrCorrupt.
func inspectTx(path string, btx *bolt.Tx, masters []Key, check bool) (info dbInfo, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	meta := btx.Bucket(bucketMeta)
	if meta == nil || string(meta.Get(metaFormat)) != formatMagic {
		return info, fmt.Errorf("%w: %s is a bbolt file without camwarden metadata; refusing to touch it", ErrNotCamwarden, path)
	}
	sv := meta.Get(metaSchema)
	if len(sv) != 8 {
		return info, fmt.Errorf("%w: %s: schema version unreadable", ErrCorrupt, path)
	}
	info.schema = binary.BigEndian.Uint64(sv)
	if info.schema > schemaVersion {
		return info, fmt.Errorf("%w: %s has schema version %d, this build supports up to %d; "+
			"run a newer camwarden (or restore a backup made by this version)", ErrNewerSchema, path, info.schema, schemaVersion)
	}
	if info.schema == 0 {
		return info, fmt.Errorf("%w: %s: schema version 0", ErrCorrupt, path)
	}
	for _, name := range allBuckets {
		if info.schema < 4 && slices.ContainsFunc(identityBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
			continue // migrateV3toV4 creates it
		}
		if info.schema < 6 && bytes.Equal(name, bucketRecorders) {
			continue // migrateV5toV6 creates it
		}
		if btx.Bucket(name) == nil {
			return info, fmt.Errorf("%w: %s: bucket %q missing", ErrCorrupt, path, name)
		}
	}
	if blob := meta.Get(metaDataKey); blob != nil {
		id, err := blobKeyID(blob)
		if err != nil {
			return info, fmt.Errorf("%w: %s: wrapped data key: %v", ErrCorrupt, path, err)
		}
		info.masterKeyID = id
		if masters != nil {
			dk, err := unwrapDataKey(path, masters, blob)
			if err != nil {
				return info, err
			}
			info.dataKeyID = dk.ID()
		}
	}
	if info.schema == schemaVersion {
		if err := decodeAll(btx); err != nil {
			return info, fmt.Errorf("%s: %w", path, err)
		}
	}
	if check {
		var first error
		n := 0
		for err := range btx.Check() {
			if first == nil {
				first = err
			}
			n++
		}
		if first != nil {
			return info, fmt.Errorf("%w: %s: consistency check found %d problem(s), first: %v", ErrCorrupt, path, n, first)
		}
	}
	return info, nil
}

// unwrapDataKey opens the wrapped data key with the master key that sealed it.
func unwrapDataKey(path string, masters []Key, blob []byte) (Key, error) {
	id, err := blobKeyID(blob)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %s: wrapped data key: %v", ErrCorrupt, path, err)
	}
	for _, m := range masters {
		if m.ID() != id {
			continue
		}
		raw, err := openSealed(m, kindMeta, fieldDataKey, fieldDataKey, blob)
		if err != nil || len(raw) != KeySize {
			return Key{}, fmt.Errorf("%w: %s: the wrapped data key does not authenticate under master key %s", ErrCorrupt, path, id)
		}
		defer clear(raw)
		return keyFromBytes(raw), nil
	}
	got := ""
	if len(masters) > 0 {
		got = masters[0].ID()
	}
	return Key{}, &KeyMismatchError{Path: path, Expected: id, Got: got}
}

// decodeAll decodes every policy record (not the audit log: VerifyAudit
// covers that and it can be long).
func decodeAll(btx *bolt.Tx) error {
	steps := []struct {
		bucket []byte
		dec    func(k, v []byte) error
	}{
		{bucketCameras, func(k, v []byte) error { _, err := decodeCamera(k, v); return err }},
		{bucketUsers, func(k, v []byte) error { _, err := decodeUser(k, v); return err }},
		{bucketGroups, func(k, v []byte) error { _, err := decodeGroup(k, v); return err }},
		{bucketGrants, func(k, v []byte) error { _, err := decodeGrant(k, v); return err }},
		{bucketIssuers, func(k, v []byte) error { _, err := decodeIssuer(k, v); return err }},
		{bucketDirectory, func(k, v []byte) error { _, err := decodeDirectory(k, v); return err }},
		{bucketGroupMaps, func(k, v []byte) error { _, err := decodeGroupMap(k, v); return err }},
		{bucketRevokedTokens, func(k, v []byte) error { _, err := decodeRevokedToken(k, v); return err }},
		{bucketRecorders, func(k, v []byte) error { _, err := decodeRecorder(k, v); return err }},
	}
	for _, st := range steps {
		if err := btx.Bucket(st.bucket).ForEach(st.dec); err != nil {
			return err
		}
	}
	return nil
}

// preflight reads the bbolt meta pages by hand, before bbolt maps the file:
// it tells a foreign file from a damaged camwarden one and refuses a file
// shorter than its own meta page says (bbolt would fault reading past EOF).
func preflight(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrNotCamwarden, path)
	}
	size := fi.Size()
	if size == 0 {
		return fmt.Errorf("%w: %s is empty; remove it to create a new database", ErrNotCamwarden, path)
	}
	var metas []bboltMeta
	sawMagic := false
	offsets := []int64{0}
	for i := 0; i <= 14; i++ {
		offsets = append(offsets, 1024<<i)
	}
	for _, off := range offsets {
		if off >= size {
			break
		}
		m, magic := readMeta(f, off)
		sawMagic = sawMagic || magic
		if m != nil && (off == 0 || int64(m.pageSize) == off) {
			metas = append(metas, *m)
		}
	}
	if len(metas) == 0 {
		if sawMagic {
			return fmt.Errorf("%w: %s: both bbolt meta pages are damaged", ErrCorrupt, path)
		}
		return fmt.Errorf("%w: %s is not a bbolt database file; refusing to touch it", ErrNotCamwarden, path)
	}
	best := metas[0]
	for _, m := range metas[1:] {
		if m.txid > best.txid {
			best = m
		}
	}
	if best.pageSize < 512 || best.pageSize > 1<<24 {
		return fmt.Errorf("%w: %s: implausible page size %d", ErrCorrupt, path, best.pageSize)
	}
	if need := int64(best.pgid) * int64(best.pageSize); best.pgid > 1<<40 || size < need {
		return fmt.Errorf("%w: %s is truncated (%d bytes, the database needs %d); restore a backup", ErrCorrupt, path, size, need)
	}
	if err := checkFreelist(f, best); err != nil {
		return fmt.Errorf("%w: %s: freelist: %v", ErrCorrupt, path, err)
	}
	return nil
}

// checkFreelist bounds-checks the freelist page. bbolt reads it in a
// goroutine of its own (tx.Check), where a count pointing past the mapping
// would crash the process instead of returning an error.
func checkFreelist(f *os.File, m bboltMeta) error {
	const noFreelist = ^uint64(0)
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("page %d outside the database (%d pages)", m.freelist, m.pgid)
	}
	var hdr [pageHeader + 8]byte
	off := int64(m.freelist) * int64(m.pageSize)
	if n, _ := f.ReadAt(hdr[:], off); n < len(hdr) {
		return fmt.Errorf("page %d unreadable", m.freelist)
	}
	ne := binary.NativeEndian
	id, flags, count, overflow := ne.Uint64(hdr[0:]), ne.Uint16(hdr[8:]), uint64(ne.Uint16(hdr[10:])), uint64(ne.Uint32(hdr[12:]))
	if id != m.freelist || flags != 0x10 {
		return fmt.Errorf("page %d is not a freelist page", m.freelist)
	}
	if m.freelist+overflow >= m.pgid {
		return fmt.Errorf("page %d overflows the database", m.freelist)
	}
	words := count
	if count == 0xFFFF {
		words = ne.Uint64(hdr[pageHeader:]) + 1
	}
	if words > (overflow+1)*uint64(m.pageSize)/8 {
		return fmt.Errorf("page %d claims %d entries, more than it holds", m.freelist, words)
	}
	return nil
}

type bboltMeta struct {
	pageSize uint32
	freelist uint64
	pgid     uint64
	txid     uint64
}

const (
	bboltMagic   = 0xED0CDAED
	bboltVersion = 2
	pageHeader   = 16
	metaSumLen   = 56
)

// readMeta parses a bbolt meta page at off. It returns nil if there is no
// valid meta there; magic reports whether the bbolt magic number was seen.
func readMeta(f *os.File, off int64) (m *bboltMeta, magic bool) {
	buf := make([]byte, pageHeader+metaSumLen+8)
	if n, _ := f.ReadAt(buf, off); n < len(buf) {
		return nil, false
	}
	b := buf[pageHeader:]
	le := binary.NativeEndian // bbolt writes its meta in host byte order
	if le.Uint32(b[0:]) != bboltMagic {
		return nil, false
	}
	h := fnv.New64a()
	h.Write(b[:metaSumLen])
	if le.Uint32(b[4:]) != bboltVersion || h.Sum64() != le.Uint64(b[metaSumLen:]) {
		return nil, true
	}
	return &bboltMeta{pageSize: le.Uint32(b[8:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, true
}
