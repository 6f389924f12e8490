package store

import (
	"context"
	"time"
)

// The daemon is written against these exact signatures (the brief's API).
var (
	_ func(string) (Key, error)                                           = LoadKey
	_ func(string) bool                                                   = KeyFileWorldReadable
	_ func() (Key, error)                                                 = NewKey
	_ func(string) (Key, error)                                           = WriteNewKeyFile
	_ func(Key) string                                                    = Key.ID
	_ func(string, Key, Options) (*Store, error)                          = Open
	_ func(*Store) error                                                  = (*Store).Close
	_ func(*Store) string                                                 = (*Store).Path
	_ func(*Store) string                                                 = (*Store).KeyID
	_ func(*Store) string                                                 = (*Store).MasterKeyID
	_ func(*Store) bool                                                   = (*Store).IsEmpty
	_ func(string) (bool, string, error)                                  = ProbeSealed
	_ func(*Store, context.Context, *AuditEntry, func(*Tx) error) error   = (*Store).Update
	_ func(*Store, context.Context, func(*Tx) error) error                = (*Store).View
	_ func(*Tx, string) (Camera, error)                                   = (*Tx).Camera
	_ func(*Tx) ([]Camera, error)                                         = (*Tx).Cameras
	_ func(*Tx, Camera, string) error                                     = (*Tx).CreateCamera
	_ func(*Tx, string, func(*Camera) error) error                        = (*Tx).UpdateCamera
	_ func(*Tx, string, string) error                                     = (*Tx).SetCameraPassword
	_ func(*Tx, string) (string, error)                                   = (*Tx).CameraPassword
	_ func(*Tx, string) error                                             = (*Tx).DeleteCamera
	_ func(*Tx, string) (User, error)                                     = (*Tx).User
	_ func(*Tx) ([]User, error)                                           = (*Tx).Users
	_ func(*Tx, string, string) error                                     = (*Tx).CreateUser
	_ func(*Tx, string, string) error                                     = (*Tx).SetUserPassword
	_ func(*Tx, string, bool) error                                       = (*Tx).SetUserDisabled
	_ func(*Tx, string) error                                             = (*Tx).DeleteUser
	_ func(*Tx, string) (string, error)                                   = (*Tx).UserDigestSecret
	_ func(*Tx) ([]Group, error)                                          = (*Tx).Groups
	_ func(*Tx, string) error                                             = (*Tx).CreateGroup
	_ func(*Tx, string) error                                             = (*Tx).DeleteGroup
	_ func(*Tx, string, string) error                                     = (*Tx).AddMember
	_ func(*Tx, string, string) error                                     = (*Tx).RemoveMember
	_ func(*Tx) ([]Grant, error)                                          = (*Tx).Grants
	_ func(*Tx, Grant) error                                              = (*Tx).AddGrant
	_ func(*Tx, Grant) error                                              = (*Tx).RevokeGrant
	_ func(*Tx) (PolicyData, error)                                       = (*Tx).PolicyData
	_ func(*Store, context.Context, AuditEntry) (AuditEntry, error)       = (*Store).AppendAudit
	_ func(*Store, context.Context, time.Time, int) ([]AuditEntry, error) = (*Store).AuditList
	_ func(*Store, context.Context) (AuditVerify, error)                  = (*Store).VerifyAudit
	_ func(*Store, context.Context, *AuditEntry) (string, int, error)     = (*Store).RotateKey
	_ func(*Store, context.Context, Key) error                            = (*Store).RewrapMasterKey
	_ func(string) (string, error)                                        = HashPassword
	_ func(string, string) (bool, error)                                  = VerifyPassword
	_ error                                                               = (*KeyMismatchError)(nil)
	_                                                                     = KeyMismatchError{Expected: "", Got: ""}
	_                                                                     = Options{Timeout: time.Second, Now: time.Now, Logger: nil}
)
