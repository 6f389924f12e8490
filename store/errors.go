package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the store returns wraps at most one of them, so
// callers use errors.Is; the messages carry the context (which record, which
// file) and what to do.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")

	// ErrLocked: another process holds the database open.
	ErrLocked = errors.New("database is locked by another process")
	// ErrNotCamwarden: the file is not a camwarden database (foreign bbolt file, other file type, empty).
	ErrNotCamwarden = errors.New("not a camwarden database")
	// ErrNewerSchema: the database was written by a newer camwarden.
	ErrNewerSchema = errors.New("database schema is newer than this build")
	// ErrCorrupt: structural damage, truncation or undecodable records.
	ErrCorrupt = errors.New("database is corrupt")
	// ErrNoKey: no master key was given.
	ErrNoKey = errors.New("no master key loaded")
	// ErrSealed: a sealed blob could not be opened (wrong record, tampered, unknown key).
	ErrSealed = errors.New("cannot open sealed secret")
	// ErrNoSpace: a write failed because the file system is full; nothing was changed.
	ErrNoSpace = errors.New("no space left on the device")
	// ErrTxClosed: a Tx was used after its function returned.
	ErrTxClosed = errors.New("transaction already closed")
)

// recordError is the not-found/exists error for one record: `camera "x" not found`.
type recordError struct {
	kind, name string
	err        error // ErrNotFound or ErrExists
}

func (e *recordError) Error() string { return fmt.Sprintf("%s %q %v", e.kind, e.name, e.err) }
func (e *recordError) Unwrap() error { return e.err }

func notFound(kind, name string) error { return &recordError{kind, name, ErrNotFound} }
func exists(kind, name string) error   { return &recordError{kind, name, ErrExists} }

// KeyMismatchError: the database's secrets are sealed under a master key
// other than the loaded one. Expected and Got are key IDs (Key.ID), never key
// material. Got is "" when no key was loaded.
type KeyMismatchError struct {
	Path     string
	Expected string
	Got      string
}

func (e *KeyMismatchError) Error() string {
	where := "database"
	if e.Path != "" {
		where = "database " + e.Path
	}
	if e.Got == "" {
		return fmt.Sprintf("%s holds secrets sealed with master key %s, but no master key was loaded; "+
			"provide that key (--key-file, or master.key in $CREDENTIALS_DIRECTORY)", where, e.Expected)
	}
	return fmt.Sprintf("%s holds secrets sealed with master key %s, the loaded key is %s; "+
		"start with the key file whose id is %s (a lost key cannot be recovered: the sealed camera "+
		"passwords and user digest secrets would have to be set again in a new database)", where, e.Expected, e.Got, e.Expected)
}

// Is lets errors.Is(err, ErrNoKey) match the "no key loaded" case.
func (e *KeyMismatchError) Is(target error) bool { return target == ErrNoKey && e.Got == "" }
