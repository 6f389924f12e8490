package store

import "encoding/binary"

// Every bucket and meta key is declared here, once. Code elsewhere refers to
// these names only.

// schemaVersion is the version this build writes. Databases with a lower
// version are migrated on Open (see migrations in store.go); a higher version
// is refused.
const schemaVersion uint64 = 6

// formatMagic marks a bbolt file as a camwarden database (meta/format).
const formatMagic = "camwarden-db"

var (
	bucketMeta    = []byte("meta")    // fixed keys below
	bucketCameras = []byte("cameras") // camera name -> cameraRec (JSON)
	bucketUsers   = []byte("users")   // user name -> userRec (JSON)
	bucketGroups  = []byte("groups")  // group name -> groupRec (JSON)
	bucketGrants  = []byte("grants")  // grantKey(g) -> grantRec (JSON)
	bucketAudit   = []byte("audit")   // seqKey(seq) -> auditRec (JSON)

	// Schema 4: identity (store/identity.go).
	bucketIssuers       = []byte("issuers")        // issuer name -> issuerRec (JSON)
	bucketDirectory     = []byte("directory")      // "config" -> directoryRec (JSON)
	bucketGroupMaps     = []byte("group_maps")     // groupMapKey(m) -> groupMapRec (JSON)
	bucketRevokedTokens = []byte("revoked_tokens") // jti -> revokedTokenRec (JSON)

	// identityBuckets came with schema 4: an older file lacks them until
	// migrateV3toV4 creates them.
	identityBuckets = [][]byte{bucketIssuers, bucketDirectory, bucketGroupMaps, bucketRevokedTokens}

	// Schema 6: network recorders (store/recorder.go). A recorder's
	// credentials live here once; its channel cameras refer to it.
	bucketRecorders = []byte("recorders") // recorder name -> recorderRec (JSON)

	// allBuckets is what a new database is created with (and what Open
	// requires to exist).
	allBuckets = append(append([][]byte{bucketMeta, bucketCameras, bucketUsers, bucketGroups, bucketGrants, bucketAudit}, identityBuckets...), bucketRecorders)

	// policyBuckets decide IsEmpty.
	policyBuckets = append(append([][]byte{bucketCameras, bucketUsers, bucketGroups, bucketGrants}, identityBuckets...), bucketRecorders)
)

// Keys of the meta bucket.
var (
	metaFormat      = []byte("format")        // formatMagic
	metaSchema      = []byte("schema")        // uint64 big endian
	metaCreated     = []byte("created")       // RFC 3339 time the database was created
	metaDataKey     = []byte("data_key")      // the data key, sealed under the master key (absent until the first secret)
	metaMasterKeyID = []byte("master_key_id") // plain id of the master key that wraps data_key (for ProbeSealed and errors)
	metaAuditHead   = []byte("audit_head")    // auditHead (JSON): last seq and hash, so a dropped tail is detected
	metaAuditKey    = []byte("audit_key")     // auditKeyMark (JSON): which key MACs the chain; absent before keying
)

// Sealed-field identities: the associated data of every blob binds it to
// (kind, record name, field).
const (
	kindCamera   = "camera"
	kindRecorder = "recorder"
	kindUser     = "user"
	kindMeta     = "meta"
	fieldPass    = "password"
	fieldDigest  = "digest"
	fieldDataKey = "data_key"
)

// SchemaVersion is the schema version recorded in the open database (Open
// has migrated an older file, so it is the version this build writes).
func (tx *Tx) SchemaVersion() int {
	v := tx.btx.Bucket(bucketMeta).Get(metaSchema)
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}
