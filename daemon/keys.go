package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/camwarden/camwarden/store"
)

const (
	dbFileName     = "camwarden.db"
	devKeyFileName = "master.key"
)

// keyPath is where the master key is expected: --key-file, else the
// systemd credential, else "" (no key configured).
func keyPath(cfg Config) string {
	if cfg.KeyFile != "" {
		return cfg.KeyFile
	}
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		return filepath.Join(dir, devKeyFileName)
	}
	return ""
}

// resolveKey loads the master key, or for a first development start
// (no key configured, no database yet) creates one beside the database.
// It never overwrites a key file and never touches an existing database.
func resolveKey(cfg Config, log hclog.Logger) (store.Key, error) {
	dbPath := filepath.Join(cfg.StateDir, dbFileName)
	if p := keyPath(cfg); p != "" {
		return loadKey(p, log)
	}
	devKey := filepath.Join(cfg.StateDir, devKeyFileName)
	if _, err := os.Stat(devKey); err == nil {
		log.Warn("using the development master key beside the database; production keeps the key elsewhere (--key-file or systemd LoadCredential)", "key_file", devKey)
		return loadKey(devKey, log)
	}
	if _, err := os.Stat(dbPath); err == nil {
		sealed, keyID, perr := store.ProbeSealed(dbPath)
		if perr != nil {
			return store.Key{}, perr
		}
		if sealed {
			return store.Key{}, fmt.Errorf("no master key configured, but %s holds secrets sealed with key %s: pass --key-file FILE (or set key_file) pointing at that key", dbPath, keyID)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return store.Key{}, fmt.Errorf("cannot inspect %s: %w", dbPath, err)
	}
	k, err := store.WriteNewKeyFile(devKey)
	if err != nil {
		return store.Key{}, fmt.Errorf("cannot create a development master key at %s: %w", devKey, err)
	}
	log.Warn("no master key configured: created a development key beside the database; production keeps the key elsewhere (--key-file or systemd LoadCredential)", "key_file", devKey, "key_id", k.ID())
	return k, nil
}

func loadKey(path string, _ hclog.Logger) (store.Key, error) {
	k, err := store.LoadKey(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return store.Key{}, fmt.Errorf("master key %s does not exist: create it with `head -c 32 /dev/urandom > %s && chmod 600 %s`, or point --key-file at the key this database was sealed with", path, path, path)
		}
		return store.Key{}, fmt.Errorf("master key %s: %w", path, err)
	}
	if err := store.CheckKeyFileMode(path); err != nil {
		return store.Key{}, err
	}
	return k, nil
}
