package vault

import (
	"fmt"

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
