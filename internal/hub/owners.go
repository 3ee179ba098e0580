package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/candor-iot/candor/internal/idmap"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// owners maps a device to the owner of the data keys its readings are
// sealed under: the person who added it, or its household for devices
// added before anyone had an account (store.Device.KeyOwnerID). An owner
// is enrolled in hub-assisted mode the first time it is needed; the person
// can switch to their own key or user-held mode through the API.
type owners struct {
	st interface {
		Device(ctx context.Context, id string) (store.Device, error)
	}
	v *vault.Vault

	cache idmap.Map[string] // device id → owner id (fixed when the device is created)
	mu    sync.Mutex
}

// KeyOwner implements ingest.KeyOwners.
func (o *owners) KeyOwner(ctx context.Context, deviceID string) (string, error) {
	if id, ok := o.cache.Load(deviceID); ok {
		return id, nil
	}
	d, err := o.st.Device(ctx, deviceID)
	if err != nil {
		return "", err
	}
	owner := d.KeyOwnerID()
	if _, err := o.v.Status(owner); errors.Is(err, vault.ErrUnknownOwner) {
		o.mu.Lock()
		// Another hub node sharing the store may have enrolled the owner
		// (perhaps in user-held mode): learn that rather than enrol anew.
		if err := o.v.Refresh(ctx, owner); err != nil {
			o.mu.Unlock()
			return "", fmt.Errorf("look up household %s in the vault: %w", owner, err)
		}
		if _, err := o.v.Status(owner); errors.Is(err, vault.ErrUnknownOwner) {
			if _, err := o.v.Enroll(ctx, owner, vault.Settings{Mode: vault.HubAssisted}); err != nil {
				o.mu.Unlock()
				return "", fmt.Errorf("enroll household %s in the vault: %w", owner, err)
			}
		}
		o.mu.Unlock()
	}
	o.cache.Store(deviceID, owner)
	return owner, nil
}

// forget drops erased devices from the cache.
func (o *owners) forget(ids []string) {
	for _, id := range ids {
		o.cache.Delete(id)
	}
}
