package vault

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"filippo.io/age"
)

// HubBox seals small secrets the hub itself must read back, such as a
// person's one-time-code secret, the way hub-assisted data keys are kept:
// wrapped with age to the hub's vault key. Whoever copies the database
// without vault.key learns nothing from them.
//
// Age has no associated data, so the box binds each secret to what it
// belongs to (for example the account id) by sealing that label with it
// and checking it on Open: a sealed secret copied to another row fails.
type HubBox struct{ id *age.X25519Identity }

// NewHubBox returns a box over the hub's identity (LoadOrCreateHubIdentity).
func NewHubBox(id *age.X25519Identity) *HubBox { return &HubBox{id: id} }

// ErrSealedLabel is a sealed secret opened under another label than the
// one it was sealed with.
var ErrSealedLabel = errors.New("vault: sealed secret belongs to something else")

// maxBoxed bounds what a box opens: these are secrets of a few dozen bytes.
const maxBoxed = 4 << 10

// Seal wraps secret, bound to label.
func (b *HubBox) Seal(label string, secret []byte) ([]byte, error) {
	payload := binary.AppendUvarint(nil, uint64(len(label)))
	payload = append(payload, label...)
	payload = append(payload, secret...)
	if len(payload) > maxBoxed {
		return nil, fmt.Errorf("vault: seal: secret of %d bytes is too long", len(secret))
	}
	out, err := wrap(payload, []age.Recipient{b.id.Recipient()})
	clear(payload)
	return out, err
}

// Open unwraps a secret sealed with label.
func (b *HubBox) Open(label string, sealed []byte) ([]byte, error) {
	payload, err := unwrap(sealed, b.id)
	if err != nil {
		return nil, fmt.Errorf("vault: open sealed secret: %w", err)
	}
	if len(payload) > maxBoxed {
		return nil, fmt.Errorf("vault: open sealed secret: too long")
	}
	n, k := binary.Uvarint(payload)
	if k <= 0 || uint64(len(payload)-k) < n {
		return nil, fmt.Errorf("vault: open sealed secret: malformed")
	}
	got := payload[k : k+int(n)]
	if subtle.ConstantTimeCompare(got, []byte(label)) != 1 {
		return nil, ErrSealedLabel
	}
	return bytes.Clone(payload[k+int(n):]), nil
}
