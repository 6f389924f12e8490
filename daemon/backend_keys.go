package daemon

import (
	"context"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
)

func (b backend) KeyRotate(ctx context.Context, c api.Caller) (*apitype.KeyRotate, error) {
	d := b.d
	var id string
	var n int
	var rerr error
	if err := d.do(ctx, func() {
		entry := auditEntry(c, "key.rotate", "", "ok", nil)
		id, n, rerr = d.store.RotateKey(ctx, &entry)
	}); err != nil {
		return nil, toAPIError(err)
	}
	if rerr != nil {
		d.auditFailure(ctx, c, "key.rotate", "", "failed: error")
		return nil, toAPIError(rerr)
	}
	d.log.Info("data key rotated", "key_id", id, "resealed", n)
	return &apitype.KeyRotate{KeyID: id, Resealed: n}, nil
}
