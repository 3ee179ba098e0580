package vault

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"sync"

	"filippo.io/age"
)

// Open decrypts a reading sealed for the owner, checking it against aad.
// It fails with
//   - ErrUserHeld when only the person's identity can open it (user-held
//     mode, any epoch but the one being sealed right now);
//   - ErrLocked when the hub's copy of the key cannot be unwrapped;
//   - ErrShredded when the owner's keys were destroyed;
//   - ErrUnknownKey when the owner has no such key (another owner's
//     reading), ErrAuth when ciphertext or aad were altered, ErrMalformed
//     when sealed is not a sealed reading.
func (v *Vault) Open(ownerID string, sealed, aad []byte) ([]byte, error) {
	return v.AppendOpen(nil, ownerID, sealed, aad)
}

// AppendOpen is Open appending the plaintext to dst; with a reused buffer
// it does not allocate. dst must not overlap sealed.
func (v *Vault) AppendOpen(dst []byte, ownerID string, sealed, aad []byte) ([]byte, error) {
	out, err := v.appendOpen(dst, ownerID, sealed, aad)
	if err != nil && v.missed(ownerID, err) {
		return v.appendOpen(dst, ownerID, sealed, aad)
	}
	return out, err
}

func (v *Vault) appendOpen(dst []byte, ownerID string, sealed, aad []byte) ([]byte, error) {
	if v.closed.Load() {
		return dst, ErrClosed
	}
	h, err := ParseHeader(sealed)
	if err != nil {
		return dst, err
	}
	o := v.lookup(ownerID)
	if o == nil {
		return dst, fmt.Errorf("vault: open reading of %q: %w", ownerID, ErrUnknownOwner)
	}
	o.mu.Lock()
	if err := o.usableLocked(); err != nil {
		o.mu.Unlock()
		return dst, fmt.Errorf("vault: open reading of %q: %w", ownerID, err)
	}
	c := o.chains[h.KeyID]
	var a cipher.AEAD
	if l := o.live; c != nil && l != nil && l.chain == c && l.epoch == h.Epoch {
		a = l.aead // the current epoch: held in memory in either mode
	}
	o.mu.Unlock()
	if c == nil {
		return dst, fmt.Errorf("vault: open reading of %q (key %s): %w", ownerID, h.KeyID, ErrUnknownKey)
	}
	if a == nil {
		if a, err = v.hubCipher(o.id, c, h.Epoch); err != nil {
			return dst, fmt.Errorf("vault: open reading of %q (key %s, epoch %d): %w", ownerID, h.KeyID, h.Epoch, err)
		}
	}
	return openWith(a, dst, sealed, aad)
}

func openWith(a cipher.AEAD, dst, sealed, aad []byte) ([]byte, error) {
	out, err := a.Open(dst, nonce(sealed), sealed[HeaderSize:], aad)
	if err != nil {
		return dst, ErrAuth
	}
	return out, nil
}

// hubCipher returns the epoch cipher of a chain the hub holds a copy of,
// unwrapping the chain with the hub key on first use. Unwrapped chains stay
// in memory (hub-assisted owners are read often: automations, the UI).
func (v *Vault) hubCipher(ownerID string, c *chain, epoch uint32) (cipher.AEAD, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.shredded:
		return nil, ErrShredded
	case c.hub != nil:
		return c.hub.cipher(epoch)
	case c.hubWrapped == nil:
		return nil, ErrUserHeld
	case v.hub == nil:
		return nil, ErrLocked
	}
	ck, err := unwrapChainKey(c.hubWrapped, v.hub, ownerID, c.id)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownKey):
		return nil, err
	default:
		return nil, fmt.Errorf("%w: %v", ErrLocked, err)
	}
	c.hub = newDeriver(&ck)
	clear(ck[:])
	return c.hub.cipher(epoch)
}

// Opener opens an owner's readings with the person's own age identity:
// for user-held history (export, or a person viewing their data in a
// session where they supplied their key). It unwraps each data key once
// and keeps the derived keys until Close, so opening many readings costs
// one age unwrap per key, not per reading. It is safe for concurrent use.
type Opener struct {
	v        *Vault
	o        *owner
	identity age.Identity

	mu     sync.Mutex
	chains map[KeyID]*deriver
	failed map[KeyID]error
}

// Unlock returns an Opener for the owner's readings using identity. The
// identity is checked per key as readings are opened (ErrWrongIdentity).
// Close it when done: it holds unwrapped keys.
func (v *Vault) Unlock(ownerID string, identity age.Identity) (*Opener, error) {
	if v.closed.Load() {
		return nil, ErrClosed
	}
	if identity == nil {
		return nil, fmt.Errorf("vault: unlock %q: no identity", ownerID)
	}
	o := v.lookup(ownerID)
	if o == nil {
		return nil, fmt.Errorf("vault: unlock %q: %w", ownerID, ErrUnknownOwner)
	}
	o.mu.Lock()
	err := o.usableLocked()
	o.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("vault: unlock %q: %w", ownerID, err)
	}
	return &Opener{v: v, o: o, identity: identity, chains: map[KeyID]*deriver{}, failed: map[KeyID]error{}}, nil
}

// OpenWithIdentity opens one reading with the person's identity. To open
// many, use Unlock: this unwraps the key (an X25519 operation) each time.
func (v *Vault) OpenWithIdentity(ownerID string, sealed, aad []byte, identity age.Identity) ([]byte, error) {
	op, err := v.Unlock(ownerID, identity)
	if err != nil {
		return nil, err
	}
	defer op.Close()
	return op.Open(sealed, aad)
}

// Open decrypts one reading.
func (op *Opener) Open(sealed, aad []byte) ([]byte, error) { return op.AppendOpen(nil, sealed, aad) }

// AppendOpen is Open appending the plaintext to dst.
func (op *Opener) AppendOpen(dst, sealed, aad []byte) ([]byte, error) {
	if op.v.closed.Load() {
		return dst, ErrClosed
	}
	h, err := ParseHeader(sealed)
	if err != nil {
		return dst, err
	}
	o := op.o
	o.mu.Lock()
	if err := o.usableLocked(); err != nil {
		o.mu.Unlock()
		op.Close()
		return dst, fmt.Errorf("vault: open reading of %q: %w", o.id, err)
	}
	c := o.chains[h.KeyID]
	var wrapped []byte
	if c != nil {
		wrapped = c.rec.Wrapped
	}
	o.mu.Unlock()
	if c == nil {
		return dst, fmt.Errorf("vault: open reading of %q (key %s): %w", o.id, h.KeyID, ErrUnknownKey)
	}
	a, err := op.cipher(h.KeyID, h.Epoch, wrapped)
	if err != nil {
		return dst, fmt.Errorf("vault: open reading of %q (key %s, epoch %d): %w", o.id, h.KeyID, h.Epoch, err)
	}
	return openWith(a, dst, sealed, aad)
}

func (op *Opener) cipher(id KeyID, epoch uint32, wrapped []byte) (cipher.AEAD, error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.chains == nil {
		return nil, ErrClosed
	}
	if err := op.failed[id]; err != nil {
		return nil, err
	}
	r := op.chains[id]
	if r == nil {
		ck, err := unwrapChainKey(wrapped, op.identity, op.o.id, id)
		if err != nil {
			switch {
			case noMatch(err):
				err = ErrWrongIdentity
			case !errors.Is(err, ErrUnknownKey):
				err = fmt.Errorf("%w: %v", ErrWrongIdentity, err)
			}
			op.failed[id] = err
			return nil, err
		}
		r = newDeriver(&ck)
		clear(ck[:])
		op.chains[id] = r
	}
	return r.cipher(epoch)
}

// Close erases the keys the Opener unwrapped.
func (op *Opener) Close() {
	op.mu.Lock()
	defer op.mu.Unlock()
	for _, r := range op.chains {
		r.erase()
	}
	op.chains, op.failed = nil, nil
}
