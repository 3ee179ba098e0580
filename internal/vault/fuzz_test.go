package vault

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseHeader: the header parser never panics, refuses with
// ErrMalformed, and what it accepts re-encodes to the same bytes.
func FuzzParseHeader(f *testing.F) {
	var valid [Overhead + 4]byte
	putHeader(valid[:], Header{KeyID: KeyID{1, 2, 3, 4, 5, 6, 7, 8}, Epoch: 7, Counter: 1 << 40})
	f.Add(valid[:])
	f.Add([]byte{})
	f.Add([]byte{version})
	f.Add([]byte(`{"celsius":21.5,"humidity":40,"battery":"ok"}`))
	f.Add(bytes.Repeat([]byte{version}, Overhead))
	f.Add(valid[:Overhead-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			if IsSealed(b) {
				t.Fatal("IsSealed accepts what ParseHeader refuses")
			}
			return
		}
		if len(b) < Overhead || b[0] != version {
			t.Fatalf("accepted %d bytes starting %#x", len(b), b[0])
		}
		var re [HeaderSize]byte
		putHeader(re[:], h)
		if !bytes.Equal(re[:], b[:HeaderSize]) {
			t.Fatalf("header %+v re-encodes to %x, parsed from %x", h, re, b[:HeaderSize])
		}
	})
}

// FuzzOpen: whatever bytes and additional data arrive, Open never panics
// or hangs, and it returns a plaintext only for a reading the vault
// sealed, under its own additional data. Tampered epoch numbers in
// particular must not make it walk far (the epoch tree caps any
// derivation at 33 steps).
func FuzzOpen(f *testing.F) {
	e := newEnv(f)
	v := e.vault(f, userEpoch(4, time.Hour))
	person := newIdentity(f)
	mustEnroll(f, v, "acc_h", Settings{Mode: HubAssisted, Recipient: person.Recipient().String()})
	mustEnroll(f, v, "acc_u", Settings{Mode: UserHeld, Recipient: person.Recipient().String()})
	known := map[string][]byte{} // ct ‖ aad → plaintext
	for _, owner := range []string{"acc_h", "acc_u"} {
		for _, r := range sealN(f, v, owner, 0, 6) {
			f.Add(r.ct, r.aad)
			known[string(r.ct)+"\x00"+string(r.aad)] = r.pt
		}
	}
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		for _, owner := range []string{"acc_h", "acc_u", "acc_none"} {
			pt, err := v.Open(owner, ct, aad)
			if err != nil {
				continue
			}
			want, ok := known[string(ct)+"\x00"+string(aad)]
			if !ok || !bytes.Equal(pt, want) {
				t.Fatalf("Open for %s accepted a reading it never sealed", owner)
			}
		}
		op, err := v.Unlock("acc_u", person)
		if err != nil {
			t.Fatal(err)
		}
		defer op.Close()
		if pt, err := op.Open(ct, aad); err == nil {
			if want, ok := known[string(ct)+"\x00"+string(aad)]; !ok || !bytes.Equal(pt, want) {
				t.Fatal("Opener accepted a reading never sealed")
			}
		}
	})
}
