package vault

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// live is the sealing state of an owner: its data key in use and the
// current epoch of that key. Guarded by owner.mu.
type live struct {
	chain *chain
	f     *frontier   // derives this and later epochs' keys, never earlier ones
	epoch uint32      // the current epoch, once begun
	aead  cipher.AEAD // MK_epoch as a cipher; nil until the epoch's first reading
	count uint64      // readings sealed in this epoch
	limit uint64
	// timer ends the epoch by time (nil: no time bound).
	timer *time.Timer
}

// Seal encrypts one reading of the owner, bound to aad (see
// AppendReadingAAD), and returns header ‖ ciphertext (len(plaintext) +
// Overhead bytes). It costs one AES-GCM seal and a mutex: no public-key
// operation and no store access, except when the owner has no data key in
// use yet (first reading after start-up without Prepare), when it creates
// one.
//
// It fails with ErrUnknownOwner for an owner never enrolled, ErrShredded
// for a shredded one, and ErrClosed after Close.
func (v *Vault) Seal(ownerID string, plaintext, aad []byte) ([]byte, error) {
	return v.AppendSeal(nil, ownerID, plaintext, aad)
}

// AppendSeal is Seal appending to dst, which it grows only when its
// capacity is short: with a reused buffer it does not allocate. plaintext
// must not overlap dst's spare capacity.
func (v *Vault) AppendSeal(dst []byte, ownerID string, plaintext, aad []byte) ([]byte, error) {
	out, err := v.appendSeal(dst, ownerID, plaintext, aad)
	if err != nil && v.missed(ownerID, err) {
		return v.appendSeal(dst, ownerID, plaintext, aad)
	}
	return out, err
}

func (v *Vault) appendSeal(dst []byte, ownerID string, plaintext, aad []byte) ([]byte, error) {
	if v.closed.Load() {
		return dst, ErrClosed
	}
	o := v.lookup(ownerID)
	if o == nil {
		return dst, fmt.Errorf("vault: seal for %q: %w", ownerID, ErrUnknownOwner)
	}
	a, h, err := v.reserve(o)
	if err != nil {
		return dst, fmt.Errorf("vault: seal for %q: %w", ownerID, err)
	}
	whole, out := grow(dst, HeaderSize+len(plaintext)+tagSize)
	putHeader(out, h)
	a.Seal(out[HeaderSize:HeaderSize], nonce(out), plaintext, aad)
	return whole, nil
}

// reserve hands out the cipher and a fresh nonce for one reading. The
// AES-GCM work happens after the lock is released, so publishers of one
// owner do not queue behind each other's encryption; the nonce is unique
// because the counter is taken under the lock and each epoch key is used
// by this Vault only.
func (v *Vault) reserve(o *owner) (cipher.AEAD, Header, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usableLocked(); err != nil {
		return nil, Header{}, err
	}
	if o.live == nil {
		ctx, cancel := context.WithTimeout(context.Background(), v.writeTimeout)
		err := v.startChainLocked(ctx, o)
		cancel()
		if err != nil {
			return nil, Header{}, err
		}
	}
	// No clock reading here (it costs a fifth of a seal on some
	// machines): the epoch's timer ends it by time, under this lock.
	l := o.live
	if l.aead == nil {
		if err := v.beginEpochLocked(o, l, v.policy(o.mode)); err != nil {
			return nil, Header{}, err
		}
	}
	a, h := l.aead, Header{KeyID: l.chain.id, Epoch: l.epoch, Counter: l.count}
	l.count++
	if l.count >= l.limit {
		// Erase the key right after its last reading rather than at the
		// next one: the hub holds it no longer than it must.
		v.advanceLocked(o)
	}
	return a, h, nil
}

// policy returns the epoch bounds for a mode.
func (v *Vault) policy(m Mode) Epoch {
	if m == UserHeld {
		return v.userEpoch
	}
	return v.hubEpoch
}

// beginEpochLocked derives the cipher of l's epoch at its first reading
// and arms the timer that erases it.
func (v *Vault) beginEpochLocked(o *owner, l *live, pol Epoch) error {
	e, ok := l.f.epoch()
	if !ok {
		return errors.New("vault: key exhausted")
	}
	leaf := l.f.leaf()
	mk := epochKey(&leaf)
	clear(leaf[:])
	a, err := newAEAD(&mk)
	clear(mk[:])
	if err != nil {
		return err
	}
	l.epoch = e
	l.aead, l.count, l.limit = a, 0, pol.Readings
	if pol.Duration > 0 {
		epoch := l.epoch
		l.timer = time.AfterFunc(pol.Duration, func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.live == l && l.epoch == epoch && l.aead != nil {
				v.advanceLocked(o)
			}
		})
	}
	return nil
}

// advanceLocked ends the current epoch: its leaf and cipher are erased
// and the frontier keeps only what derives later epochs, so nothing sealed
// in the ended epoch can be opened with what the sealing side still holds
// (in hub-assisted mode the hub's copy of the whole key still opens it).
func (v *Vault) advanceLocked(o *owner) {
	l := o.live
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.aead, l.count = nil, 0
	l.f.advance()
	if _, ok := l.f.epoch(); !ok {
		o.retireLiveLocked() // all 2^32 epochs used: the next reading starts a new key
	}
}

// retireLiveLocked erases the sealing state. The chain's key stays in the
// store, so what was sealed under it can still be opened by whoever can
// unwrap it; the store marks it retired when the next key is put.
func (o *owner) retireLiveLocked() {
	l := o.live
	if l == nil {
		return
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	l.f.erase()
	l.aead, l.timer = nil, nil
	o.live = nil
}

// startChainLocked creates a new data key for the owner, stores it
// wrapped per the owner's setting, and makes it the key in use (retiring
// the previous one). It is the only place a public-key operation happens
// on the sealing side: once per key, not per reading.
func (v *Vault) startChainLocked(ctx context.Context, o *owner) error {
	recips := v.recipients(o.mode, o.recip)
	if len(recips) == 0 || (o.mode == HubAssisted && v.hubRecipient == nil) {
		return fmt.Errorf("vault: new key for %q: %w", o.id, ErrLocked)
	}
	root, err := randomSecret()
	if err != nil {
		return fmt.Errorf("vault: new key for %q: %w", o.id, err)
	}
	defer clear(root[:])
	for range 3 {
		id, err := randomKeyID()
		if err != nil {
			return fmt.Errorf("vault: new key for %q: %w", o.id, err)
		}
		if o.chains[id] != nil {
			continue
		}
		payload := encodePayload(&root, o.id, id)
		wrapped, err := wrap(payload, recips)
		clear(payload)
		if err != nil {
			return err
		}
		rec := store.KeyRecord{
			OwnerID: o.id, KeyID: id.String(), Mode: o.mode, Recipient: o.recipient,
			Wrapped: wrapped, CreatedAt: time.Now().UTC(),
		}
		err = v.st.PutKey(ctx, rec)
		switch {
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, store.ErrShredded):
			o.shredLocked()
			return ErrShredded
		case err != nil:
			return fmt.Errorf("vault: new key for %q: %w", o.id, err)
		}
		ck := chainKey(&root, o.id, id)
		c := &chain{id: id, rec: rec}
		if o.mode == HubAssisted {
			c.hubWrapped = wrapped
			c.hub = newDeriver(&ck)
		}
		o.retireLiveLocked()
		for _, old := range o.chains { // as the store just did
			if old.rec.RetiredAt.IsZero() {
				old.rec.RetiredAt = rec.CreatedAt
			}
		}
		o.chains[id] = c
		o.live = &live{chain: c, f: newFrontier(&ck)}
		clear(ck[:])
		return nil
	}
	return fmt.Errorf("vault: new key for %q: key id collisions", o.id)
}
