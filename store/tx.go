package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/camwarden/camwarden/internal/textutil"
	bolt "go.etcd.io/bbolt"
)

// Tx is one bbolt transaction seen through typed methods. It is valid only
// inside the function given to Store.Update or Store.View; afterwards every
// method returns ErrTxClosed. Nothing it returns aliases bbolt memory.
type Tx struct {
	s      *Store
	btx    *bolt.Tx
	now    time.Time
	closed bool

	dk     Key  // data key of this transaction's snapshot, once loaded
	dkRead bool // dk (or its absence) has been loaded
}

// wrapped is an error with its own message that still matches a sentinel.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

func (tx *Tx) bucket(name []byte) (*bolt.Bucket, error) {
	if tx.closed {
		return nil, ErrTxClosed
	}
	b := tx.btx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
	}
	return b, nil
}

func (tx *Tx) put(b *bolt.Bucket, kind, name string, key []byte, v any) error {
	val, err := encode(v)
	if err != nil {
		return err
	}
	if err := b.Put(key, val); err != nil {
		return fmt.Errorf("store %s %q: %w", kind, textutil.Shorten(name, 64), err)
	}
	return nil
}

// --- data key ---

// dataKey returns the data key of this snapshot (zero Key if no secret was
// ever sealed), unwrapping it with whichever known master key sealed it.
func (tx *Tx) dataKey() (Key, error) {
	if tx.dkRead {
		return tx.dk, nil
	}
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return Key{}, err
	}
	blob := meta.Get(metaDataKey)
	if blob == nil {
		tx.dkRead = true
		return Key{}, nil
	}
	k, err := unwrapDataKey(tx.s.path, tx.s.knownMasters(), blob)
	if err != nil {
		return Key{}, err
	}
	tx.dk, tx.dkRead = k, true
	return k, nil
}

// sealKey returns the data key to seal with, creating (and wrapping under the
// current master key) the first one in this write transaction if needed.
func (tx *Tx) sealKey() (Key, error) {
	k, err := tx.dataKey()
	if err != nil || !k.IsZero() {
		return k, err
	}
	k, err = NewKey()
	if err != nil {
		return Key{}, err
	}
	if err := tx.putDataKey(k, tx.s.master()); err != nil {
		return Key{}, err
	}
	return k, nil
}

// putDataKey stores dk wrapped under master and makes it this tx's data key.
func (tx *Tx) putDataKey(dk, master Key) error {
	meta, err := tx.bucket(bucketMeta)
	if err != nil {
		return err
	}
	wrappedKey, err := seal(master, kindMeta, fieldDataKey, fieldDataKey, dk.b[:])
	if err != nil {
		return err
	}
	if err := meta.Put(metaDataKey, wrappedKey); err != nil {
		return err
	}
	if err := meta.Put(metaMasterKeyID, []byte(master.ID())); err != nil {
		return err
	}
	tx.dk, tx.dkRead = dk, true
	id := dk.ID()
	tx.btx.OnCommit(func() { tx.s.dataKeyID.Store(&id) })
	return nil
}

func (tx *Tx) sealSecret(kind, name, field, secret string) ([]byte, error) {
	k, err := tx.sealKey()
	if err != nil {
		return nil, err
	}
	return seal(k, kind, name, field, []byte(secret))
}

func (tx *Tx) openSecret(kind, name, field string, blob []byte) (string, error) {
	k, err := tx.dataKey()
	if err != nil {
		return "", err
	}
	pt, err := openSealed(k, kind, name, field, blob)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// --- cameras ---

func (tx *Tx) cameraRec(name string) (*bolt.Bucket, cameraRec, error) {
	b, err := tx.bucket(bucketCameras)
	if err != nil {
		return nil, cameraRec{}, err
	}
	val := b.Get([]byte(name))
	if val == nil {
		return b, cameraRec{}, notFound(kindCamera, name)
	}
	r, err := decodeCamera([]byte(name), val)
	return b, r, err
}

// Camera returns one camera.
func (tx *Tx) Camera(name string) (Camera, error) {
	_, r, err := tx.cameraRec(name)
	if err != nil {
		return Camera{}, err
	}
	return tx.publicCamera(r)
}

// publicCamera is r.public() with a channel camera's HasPassword taken
// from its recorder.
func (tx *Tx) publicCamera(r cameraRec) (Camera, error) {
	c := r.public()
	if r.Recorder != "" {
		_, rr, err := tx.recorderRec(r.Recorder)
		if err != nil {
			return Camera{}, fmt.Errorf("%w: camera %q refers to recorder %q: %v", ErrCorrupt, textutil.Shorten(r.Name, 64), textutil.Shorten(r.Recorder, 64), err)
		}
		c.HasPassword = len(rr.Password) > 0
	}
	return c, nil
}

// Cameras returns every camera, sorted by name.
func (tx *Tx) Cameras() ([]Camera, error) {
	b, err := tx.bucket(bucketCameras)
	if err != nil {
		return nil, err
	}
	var out []Camera
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeCamera(k, v)
		if err != nil {
			return err
		}
		c, err := tx.publicCamera(r)
		out = append(out, c)
		return err
	})
	return out, err
}

// CreateCamera adds a camera (ErrExists if the name is taken). password ""
// means none. Created, Changed and Revision are set by the store;
// c.HasPassword is ignored.
func (tx *Tx) CreateCamera(c Camera, password string) error {
	b, err := tx.bucket(bucketCameras)
	if err != nil {
		return err
	}
	if b.Get([]byte(c.Name)) != nil {
		return exists(kindCamera, c.Name)
	}
	r := cameraRec{Name: c.Name, Created: tx.now, Changed: tx.now, Revision: 1}
	r.applyPublic(c)
	if c.Recorder != "" {
		if _, _, err := tx.recorderRec(c.Recorder); err != nil {
			return err
		}
		if password != "" {
			return fmt.Errorf("camera %q is a channel of recorder %q: its password is the recorder's", c.Name, c.Recorder)
		}
		if c.Channel < 1 {
			return fmt.Errorf("camera %q: a recorder channel number starts at 1", c.Name)
		}
		r.Recorder, r.Channel, r.ChannelName = c.Recorder, c.Channel, c.ChannelName
	}
	if password != "" {
		if r.Password, err = tx.sealSecret(kindCamera, c.Name, fieldPass, password); err != nil {
			return err
		}
	}
	return tx.put(b, kindCamera, c.Name, []byte(c.Name), r)
}

// UpdateCamera loads a camera, lets fn edit it and stores the result, bumping
// Revision and Changed. fn may change Username, AllowBasic, ONVIF,
// PendingMove and Streams; renaming is refused, and
// Created/Revision/HasPassword edits are ignored.
func (tx *Tx) UpdateCamera(name string, fn func(*Camera) error) error {
	b, r, err := tx.cameraRec(name)
	if err != nil {
		return err
	}
	c := r.public()
	if err := fn(&c); err != nil {
		return err
	}
	if c.Name != name {
		return fmt.Errorf("camera %q: renaming is not supported (remove and add it)", name)
	}
	r.applyPublic(c)
	r.Revision++
	r.Changed = tx.now
	return tx.put(b, kindCamera, name, []byte(name), r)
}

// SetCameraPendingMove records (nil clears) an unconfirmed sighting of an
// adopted camera elsewhere. It is not a configuration change: Revision and
// Changed stay, so no puller restarts because of a discovery message.
func (tx *Tx) SetCameraPendingMove(name string, m *PendingMove) error {
	b, r, err := tx.cameraRec(name)
	if err != nil {
		return err
	}
	r.PendingMove = nil
	if m != nil {
		pm := pendingMoveRec(*m)
		if len(pm.Others) > MaxPendingOthers {
			pm.Others, pm.Truncated = pm.Others[:MaxPendingOthers], true
		}
		pm.Others = append([]string(nil), pm.Others...)
		r.PendingMove = &pm
	}
	return tx.put(b, kindCamera, name, []byte(name), r)
}

// SetCameraPassword seals a new password ("" clears it) and bumps Revision.
// For a recorder's channel camera it is the recorder's password that
// changes, and every channel's Revision is bumped.
func (tx *Tx) SetCameraPassword(name, password string) error {
	b, r, err := tx.cameraRec(name)
	if err != nil {
		return err
	}
	if r.Recorder != "" {
		return tx.SetRecorderPassword(r.Recorder, password)
	}
	r.Password = nil
	if password != "" {
		if r.Password, err = tx.sealSecret(kindCamera, name, fieldPass, password); err != nil {
			return err
		}
	}
	r.Revision++
	r.Changed = tx.now
	return tx.put(b, kindCamera, name, []byte(name), r)
}

// CameraPassword unseals a camera's password ("" if none is set).
func (tx *Tx) CameraPassword(name string) (string, error) {
	_, r, err := tx.cameraRec(name)
	if err != nil {
		return "", err
	}
	if r.Recorder != "" {
		return tx.RecorderPassword(r.Recorder)
	}
	if len(r.Password) == 0 {
		return "", nil
	}
	return tx.openSecret(kindCamera, name, fieldPass, r.Password)
}

// DeleteCamera removes a camera (ErrNotFound if absent). The last channel
// camera of a recorder takes the recorder record, and its secret, along.
func (tx *Tx) DeleteCamera(name string) error {
	b, r, err := tx.cameraRec(name)
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(name)); err != nil {
		return err
	}
	if r.Recorder == "" {
		return nil
	}
	left, err := tx.recorderChannels(r.Recorder)
	if err != nil || len(left) > 0 {
		return err
	}
	rb, err := tx.bucket(bucketRecorders)
	if err != nil {
		return err
	}
	return rb.Delete([]byte(r.Recorder))
}

// --- users ---

func (tx *Tx) userRec(name string) (*bolt.Bucket, userRec, error) {
	b, err := tx.bucket(bucketUsers)
	if err != nil {
		return nil, userRec{}, err
	}
	val := b.Get([]byte(name))
	if val == nil {
		return b, userRec{}, notFound(kindUser, name)
	}
	r, err := decodeUser([]byte(name), val)
	return b, r, err
}

// User returns one user.
func (tx *Tx) User(name string) (User, error) {
	_, r, err := tx.userRec(name)
	if err != nil {
		return User{}, err
	}
	return r.public(), nil
}

// Users returns every user, sorted by name.
func (tx *Tx) Users() ([]User, error) {
	b, err := tx.bucket(bucketUsers)
	if err != nil {
		return nil, err
	}
	var out []User
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeUser(k, v)
		if err != nil {
			return err
		}
		out = append(out, r.public())
		return nil
	})
	return out, err
}

func (tx *Tx) setCredentials(r *userRec, password string) error {
	if password == "" {
		return fmt.Errorf("user %q: empty password", r.Name)
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	d, err := tx.sealSecret(kindUser, r.Name, fieldDigest, password)
	if err != nil {
		return err
	}
	r.PasswordHash, r.Digest = h, d
	return nil
}

// CreateUser adds a user with an argon2id hash of password and the password
// sealed as its RTSP Digest secret. ErrExists if the name is taken.
func (tx *Tx) CreateUser(name, password string) error {
	b, err := tx.bucket(bucketUsers)
	if err != nil {
		return err
	}
	if b.Get([]byte(name)) != nil {
		return exists(kindUser, name)
	}
	r := userRec{Name: name, Created: tx.now, Changed: tx.now, CredentialVersion: 1}
	if err := tx.setCredentials(&r, password); err != nil {
		return err
	}
	return tx.put(b, kindUser, name, []byte(name), r)
}

// SetUserPassword replaces hash and digest secret and bumps CredentialVersion.
func (tx *Tx) SetUserPassword(name, password string) error {
	b, r, err := tx.userRec(name)
	if err != nil {
		return err
	}
	if err := tx.setCredentials(&r, password); err != nil {
		return err
	}
	r.CredentialVersion++
	r.Changed = tx.now
	return tx.put(b, kindUser, name, []byte(name), r)
}

// SetUserDisabled disables or enables a user.
func (tx *Tx) SetUserDisabled(name string, disabled bool) error {
	b, r, err := tx.userRec(name)
	if err != nil {
		return err
	}
	r.Disabled = disabled
	r.Changed = tx.now
	return tx.put(b, kindUser, name, []byte(name), r)
}

// DeleteUser removes a user, its group memberships and its grants.
func (tx *Tx) DeleteUser(name string) error {
	b, _, err := tx.userRec(name)
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(name)); err != nil {
		return err
	}
	groups, err := tx.Groups()
	if err != nil {
		return err
	}
	for _, g := range groups {
		if _, found := slices.BinarySearch(g.Members, name); found {
			if err := tx.RemoveMember(g.Name, name); err != nil {
				return err
			}
		}
	}
	return tx.dropGrants(name)
}

// UserDigestSecret unseals the secret RTSP Digest authentication needs.
func (tx *Tx) UserDigestSecret(name string) (string, error) {
	_, r, err := tx.userRec(name)
	if err != nil {
		return "", err
	}
	if len(r.Digest) == 0 {
		return "", fmt.Errorf("user %q has no digest secret; set the password again", name)
	}
	return tx.openSecret(kindUser, name, fieldDigest, r.Digest)
}

// --- groups ---

func (tx *Tx) groupRec(name string) (*bolt.Bucket, groupRec, error) {
	b, err := tx.bucket(bucketGroups)
	if err != nil {
		return nil, groupRec{}, err
	}
	val := b.Get([]byte(name))
	if val == nil {
		return b, groupRec{}, notFound("group", name)
	}
	r, err := decodeGroup([]byte(name), val)
	return b, r, err
}

// Groups returns every group, sorted by name, members sorted.
func (tx *Tx) Groups() ([]Group, error) {
	b, err := tx.bucket(bucketGroups)
	if err != nil {
		return nil, err
	}
	var out []Group
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeGroup(k, v)
		if err != nil {
			return err
		}
		g := r.public()
		slices.Sort(g.Members)
		out = append(out, g)
		return nil
	})
	return out, err
}

// CreateGroup adds an empty group (ErrExists if taken).
func (tx *Tx) CreateGroup(name string) error {
	b, err := tx.bucket(bucketGroups)
	if err != nil {
		return err
	}
	if b.Get([]byte(name)) != nil {
		return exists("group", name)
	}
	return tx.put(b, "group", name, []byte(name), groupRec{Name: name, Members: []string{}})
}

// DeleteGroup removes a group and the grants to "@name".
func (tx *Tx) DeleteGroup(name string) error {
	b, _, err := tx.groupRec(name)
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(name)); err != nil {
		return err
	}
	if err := tx.dropGroupMappings(func(m GroupMapping) bool { return m.Group == name }); err != nil {
		return err
	}
	return tx.dropGrants("@" + name)
}

// AddMember adds user to group: ErrNotFound for an unknown group or user,
// ErrExists if already a member.
func (tx *Tx) AddMember(group, user string) error {
	b, r, err := tx.groupRec(group)
	if err != nil {
		return err
	}
	if _, _, err := tx.userRec(user); err != nil {
		return err
	}
	slices.Sort(r.Members)
	i, found := slices.BinarySearch(r.Members, user)
	if found {
		return &wrapped{fmt.Sprintf("user %q is already a member of group %q", user, group), ErrExists}
	}
	r.Members = slices.Insert(r.Members, i, user)
	return tx.put(b, "group", group, []byte(group), r)
}

// RemoveMember removes user from group (ErrNotFound if not a member).
func (tx *Tx) RemoveMember(group, user string) error {
	b, r, err := tx.groupRec(group)
	if err != nil {
		return err
	}
	slices.Sort(r.Members)
	i, found := slices.BinarySearch(r.Members, user)
	if !found {
		return &wrapped{fmt.Sprintf("user %q is not a member of group %q", user, group), ErrNotFound}
	}
	r.Members = slices.Delete(r.Members, i, i+1)
	return tx.put(b, "group", group, []byte(group), r)
}

// --- grants ---

func grantString(g Grant) string {
	return fmt.Sprintf("grant %q %q %q", g.Subject, g.Action, g.Pattern)
}

// Grants returns every grant sorted by subject, action, pattern.
func (tx *Tx) Grants() ([]Grant, error) {
	b, err := tx.bucket(bucketGrants)
	if err != nil {
		return nil, err
	}
	var out []Grant
	err = b.ForEach(func(k, v []byte) error {
		r, err := decodeGrant(k, v)
		if err != nil {
			return err
		}
		out = append(out, Grant(r))
		return nil
	})
	slices.SortFunc(out, func(a, b Grant) int {
		if c := compareStr(a.Subject, b.Subject); c != 0 {
			return c
		}
		if c := compareStr(a.Action, b.Action); c != 0 {
			return c
		}
		return compareStr(a.Pattern, b.Pattern)
	})
	return out, err
}

func compareStr(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) }

// AddGrant stores a grant (ErrExists if identical one exists).
func (tx *Tx) AddGrant(g Grant) error {
	b, err := tx.bucket(bucketGrants)
	if err != nil {
		return err
	}
	k := grantKey(g)
	if b.Get(k) != nil {
		return &wrapped{grantString(g) + " already exists", ErrExists}
	}
	return tx.put(b, "grant", grantString(g), k, grantRec(g))
}

// RevokeGrant removes a grant (ErrNotFound if absent).
func (tx *Tx) RevokeGrant(g Grant) error {
	b, err := tx.bucket(bucketGrants)
	if err != nil {
		return err
	}
	k := grantKey(g)
	if b.Get(k) == nil {
		return &wrapped{grantString(g) + " not found", ErrNotFound}
	}
	return b.Delete(k)
}

// dropGrants deletes every grant whose subject is subject.
func (tx *Tx) dropGrants(subject string) error {
	grants, err := tx.Grants()
	if err != nil {
		return err
	}
	for _, g := range grants {
		if g.Subject == subject {
			if err := tx.RevokeGrant(g); err != nil {
				return err
			}
		}
	}
	return nil
}

// PolicyData reads users, groups and grants in this one transaction.
func (tx *Tx) PolicyData() (PolicyData, error) {
	var p PolicyData
	var err error
	if p.Users, err = tx.Users(); err != nil {
		return PolicyData{}, err
	}
	if p.Groups, err = tx.Groups(); err != nil {
		return PolicyData{}, err
	}
	if p.Grants, err = tx.Grants(); err != nil {
		return PolicyData{}, err
	}
	return p, nil
}
