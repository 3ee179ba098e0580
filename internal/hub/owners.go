package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
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

	cache sync.Map // device id → owner id (fixed when the device is created)
	mu    sync.Mutex
}

// KeyOwner implements ingest.KeyOwners.
func (o *owners) KeyOwner(ctx context.Context, deviceID string) (string, error) {
	if id, ok := o.cache.Load(deviceID); ok {
		return id.(string), nil
	}
	d, err := o.st.Device(ctx, deviceID)
	if err != nil {
		return "", err
	}
	owner := d.KeyOwnerID()
	if _, err := o.v.Status(owner); errors.Is(err, vault.ErrUnknownOwner) {
		o.mu.Lock()
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

// plainStore is the store as the web pages read it: readings come back
// decrypted, like through the API.
type plainStore struct {
	*sqlite.DB
	v *vault.Vault
}

func (p plainStore) Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error) {
	rs, err := p.DB.Readings(ctx, q)
	if err != nil || len(rs) == 0 {
		return rs, err
	}
	d, err := p.DB.Device(ctx, q.DeviceID)
	if err != nil {
		return nil, err
	}
	if err := p.v.OpenReadings(d.KeyOwnerID(), d.ID, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// auditedKeys is the vault as people change their key settings through the
// API and the pages: every change is recorded in the transparency log
// (which mode, whether the person brought or was given a key; never a key).
type auditedKeys struct {
	*vault.Vault
	st interface {
		Account(ctx context.Context, id string) (store.Account, error)
	}
	log *auditlog.Log
}

func (k auditedKeys) Enroll(ctx context.Context, ownerID string, s vault.Settings) (vault.Enrollment, error) {
	en, err := k.Vault.Enroll(ctx, ownerID, s)
	if err != nil {
		return en, err
	}
	return en, k.record(ctx, ownerID, auditlog.ActionKeyChange, map[string]string{
		"mode": string(s.Mode), "own_recipient": fmt.Sprint(s.Recipient != ""), "generated": fmt.Sprint(s.GenerateIdentity)})
}

func (k auditedKeys) Rotate(ctx context.Context, ownerID string) (string, error) {
	id, err := k.Vault.Rotate(ctx, ownerID)
	if err != nil {
		return id, err
	}
	return id, k.record(ctx, ownerID, auditlog.ActionKeyRotate, map[string]string{"key": id})
}

func (k auditedKeys) Rewrap(ctx context.Context, ownerID string, identity age.Identity) (vault.Rewrapped, error) {
	rw, err := k.Vault.Rewrap(ctx, ownerID, identity)
	if err != nil {
		return rw, err
	}
	return rw, k.record(ctx, ownerID, auditlog.ActionKeyChange, map[string]string{"rewrapped": fmt.Sprint(rw.Keys)})
}

func (k auditedKeys) record(ctx context.Context, ownerID, action string, detail map[string]string) error {
	if k.log == nil {
		return nil
	}
	ev := auditlog.Event{Action: action, Household: ownerID, Detail: detail, Purpose: "key settings changed"}
	if acc, err := k.st.Account(ctx, ownerID); err == nil {
		ev.Household, ev.Subject.Account = acc.HouseholdID, acc.ID
	}
	if err := k.log.Record(ctx, ev); err != nil {
		return fmt.Errorf("record the key change in the transparency log: %w", err)
	}
	return nil
}
