package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable fake time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 123456789, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "camwarden.db") }

func openStore(t testing.TB, path string, k Key, opts Options) *Store {
	t.Helper()
	s, err := Open(path, k, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func update(t testing.TB, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), nil, fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// fileState is what "never modified" is checked against.
type fileState struct {
	data  []byte
	mtime time.Time
	mode  os.FileMode
}

func snapshot(t testing.TB, path string) fileState {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{data, fi.ModTime(), fi.Mode()}
}

func assertUnchanged(t testing.TB, path string, before fileState) {
	t.Helper()
	after := snapshot(t, path)
	if !bytes.Equal(before.data, after.data) {
		t.Errorf("%s: contents changed", path)
	}
	if !before.mtime.Equal(after.mtime) || before.mode != after.mode {
		t.Errorf("%s: mtime/mode changed: %v %v -> %v %v", path, before.mtime, before.mode, after.mtime, after.mode)
	}
	// No stray temp or backup files either.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds more than the database: %v", names)
	}
}

// rawUpdate edits a closed database file directly with bbolt, the way an
// attacker or a bug would.
func rawUpdate(t testing.TB, path string, fn func(btx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
