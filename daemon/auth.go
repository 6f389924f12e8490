package daemon

import (
	"context"

	"github.com/camwarden/camwarden/daemon/identity/credcache"
	"github.com/camwarden/camwarden/store"
)

// authCacheMax bounds the verified-credentials cache; past it the oldest
// entries go.
const authCacheMax = 4096

// dummyHash keeps the cost of a check for an unknown user equal to that of
// a known one, so timing does not reveal which user names exist. It is a
// constant (an argon2id hash, with the store's parameters, of a password
// nobody uses) so that start-up neither spends an argon2 run nor keeps its
// ~20 MB of working memory.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$fSMAKz6WWR8oLhRABU35gQ$5POMnCuav5l7+1ufXQrky6VVYjqUVivADuJBnIVtQQ8"

// authenticator implements stream.Authenticator over the current snapshot.
// Its cache (keyed HMACs of user and password, never a password) is dropped
// on every user change.
type authenticator struct {
	snap  func() *snapshot
	store *store.Store
	cache *credcache.Cache[uint64] // verified (user, password) -> credential version
}

func newAuthenticator(snap func() *snapshot, st *store.Store) *authenticator {
	return &authenticator{snap: snap, store: st, cache: credcache.New[uint64](authCacheMax, 0)}
}

// reset drops every cached verification; called after any user change.
func (a *authenticator) reset() { a.cache.Reset() }

// CachedBasic answers a repeated correct login without an argon2 run.
func (a *authenticator) CachedBasic(user, password string) (uint64, bool) {
	u, ok := a.snap().policy.User(user)
	if !ok || u.Disabled {
		return 0, false
	}
	v, hit := a.cache.Get(user, password)
	return v, hit && v == u.CredentialVersion
}

// VerifyBasic runs the argon2id check (~20 MB, tens of ms). Its callers
// bound how many run at once: the stream server queues them fairly across
// source addresses.
func (a *authenticator) VerifyBasic(user, password string) (uint64, bool) {
	s := a.snap()
	u, ok := s.policy.User(user)
	hash, hasHash := s.hashes[user]
	if !ok || u.Disabled || !hasHash {
		a.verify(dummyHash, password) // equal cost, so timing does not reveal user names
		return 0, false
	}
	if v, hit := a.CachedBasic(user, password); hit {
		return v, true
	}
	if !a.verify(hash, password) {
		return 0, false
	}
	a.cache.Put(user, password, u.CredentialVersion)
	return u.CredentialVersion, true
}

// verify runs one argon2id check.
func (a *authenticator) verify(hash, password string) bool {
	ok, err := store.VerifyPassword(hash, password)
	return err == nil && ok
}

func (a *authenticator) DigestSecret(user string) (string, uint64, bool) {
	u, ok := a.snap().policy.User(user)
	if !ok || u.Disabled {
		return "", 0, false
	}
	// Secret and version come from one transaction, so a password change
	// racing this check yields a session that Enforce will close.
	var secret string
	var version uint64
	err := a.store.View(context.Background(), func(tx *store.Tx) error {
		su, err := tx.User(user)
		if err != nil {
			return err
		}
		version = su.CredentialVersion
		secret, err = tx.UserDigestSecret(user)
		return err
	})
	if err != nil || secret == "" || version != u.CredentialVersion {
		return "", 0, false
	}
	return secret, version, true
}
