package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/candor-iot/candor/internal/store"
)

// Refresh rereads an owner's settings and wrapped keys from the store, for
// a change made by another Vault sharing it (another hub node): an owner
// enrolled there, a data key it started, a switch between hub-assisted and
// user-held, a rotation, a shred. Keys this Vault already knows keep what
// it holds of them; a changed mode or recipient retires this Vault's
// sealing key, so the next reading is sealed under the new settings.
//
// Keys deleted from the store are left alone here: a key this Vault
// started after the store was read must not be dropped by mistake.
//
// Each Vault still seals with data keys it started itself only (their
// nonces are counted here), so several nodes never share a sealing key.
func (v *Vault) Refresh(ctx context.Context, ownerID string) error {
	if v.closed.Load() {
		return ErrClosed
	}
	ko, err := v.st.KeyOwner(ctx, ownerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never enrolled anywhere: nothing to learn
	}
	if err != nil {
		return fmt.Errorf("vault: refresh %q: %w", ownerID, err)
	}
	var keys []store.KeyRecord
	if !ko.Shredded() {
		if keys, err = v.st.Keys(ctx, ownerID); err != nil {
			return fmt.Errorf("vault: refresh keys of %q: %w", ownerID, err)
		}
	}
	o := v.lookupOrAdd(ownerID)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shredded {
		return nil // shredding is final
	}
	if ko.Shredded() {
		o.shredLocked()
		return nil
	}
	if o.enrolled && (o.mode != ko.Mode || o.recipient != ko.Recipient) {
		o.retireLiveLocked()
	}
	if err := o.setRecipient(ko.Recipient); err != nil {
		return fmt.Errorf("vault: refresh %q: %w", ownerID, err)
	}
	o.enrolled, o.mode = true, ko.Mode
	if o.createdAt.IsZero() {
		o.createdAt = ko.CreatedAt
	}
	for _, k := range keys {
		id, err := ParseKeyID(k.KeyID)
		if err != nil {
			return fmt.Errorf("vault: refresh %q: %w", ownerID, err)
		}
		c := o.chains[id]
		if c == nil {
			c = &chain{id: id}
			o.chains[id] = c
		}
		c.rec = k
		c.mu.Lock()
		if k.Mode == HubAssisted {
			c.hubWrapped = k.Wrapped
		} else {
			// Rewrapped to the person: the hub's copy is gone.
			c.hubWrapped = nil
			if c.hub != nil {
				c.hub.erase()
				c.hub = nil
			}
		}
		c.mu.Unlock()
	}
	return nil
}

// ShareStore tells the Vault that other Vaults (other hub nodes) write to
// its store: a reading sealed under a key or for an owner it does not
// know makes it Refresh that owner from the store once and try again,
// instead of failing.
func (v *Vault) ShareStore() { v.shared.Store(true) }

// missed refreshes ownerID after an unknown owner or key, when the store
// is shared; it reports whether trying again may help.
func (v *Vault) missed(ownerID string, err error) bool {
	if !v.shared.Load() || !(errors.Is(err, ErrUnknownOwner) || errors.Is(err, ErrUnknownKey)) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.writeTimeout)
	defer cancel()
	return v.Refresh(ctx, ownerID) == nil
}
