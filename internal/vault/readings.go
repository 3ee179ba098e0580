package vault

import (
	"fmt"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/store"
)

// OpenReadings decrypts, in place, the sealed payloads of readings of one
// device whose data key owner is ownerID. Readings stored before
// encryption existed are plain and stay as they are. It stops at the first
// reading it cannot open (ErrUserHeld, ErrShredded, ErrAuth, …).
func (v *Vault) OpenReadings(ownerID, deviceID string, rs []store.Reading) error {
	aad := make([]byte, 0, 96)
	for i := range rs {
		r := &rs[i]
		if !IsSealed(r.Payload) {
			continue
		}
		aad = AppendReadingAAD(aad[:0], deviceID, r.Stream, r.Time)
		pt, err := v.Open(ownerID, r.Payload, aad)
		if err != nil {
			return fmt.Errorf("open reading %d of device %s: %w", r.Seq, deviceID, err)
		}
		r.Payload = pt
	}
	return nil
}

// OpenReadingsWithIdentity is OpenReadings with the person's own age
// identity, for history the hub cannot open itself (user-held mode). The
// identity is used for this call only: the unwrapped keys are erased when
// it returns.
func (v *Vault) OpenReadingsWithIdentity(ownerID, deviceID string, rs []store.Reading, identity age.Identity) error {
	op, err := v.Unlock(ownerID, identity)
	if err != nil {
		return err
	}
	defer op.Close()
	aad := make([]byte, 0, 96)
	for i := range rs {
		r := &rs[i]
		if !IsSealed(r.Payload) {
			continue
		}
		aad = AppendReadingAAD(aad[:0], deviceID, r.Stream, r.Time)
		pt, err := op.Open(r.Payload, aad)
		if err != nil {
			return fmt.Errorf("open reading %d of device %s: %w", r.Seq, deviceID, err)
		}
		r.Payload = pt
	}
	return nil
}
