package vault

import (
	"context"
	"errors"
	"testing"
)

// Two Vaults on one store stand for two hub nodes sharing a database.
// Each learns what the other enrolled, started and shredded, from the
// store: on a miss when the store is shared, or through Refresh.
func TestVaultsSharingAStore(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		shared bool
		want   error // what B gets opening A's reading of an owner A enrolled after B started
	}{
		{"shared store: B looks the owner up", true, nil},
		{"one vault per store: B does not", false, ErrUnknownOwner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a, b := e.vault(t), e.vault(t)
			if tt.shared {
				a.ShareStore()
				b.ShareStore()
			}
			if _, err := a.Enroll(ctx, "acc_1", Settings{Mode: HubAssisted}); err != nil {
				t.Fatal(err)
			}
			sealedA, err := a.Seal("acc_1", []byte("21.5"), []byte("aad"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.Open("acc_1", sealedA, []byte("aad"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("B opens A's reading: %q, %v; want error %v", got, err, tt.want)
			}
			if tt.want != nil {
				return
			}
			if string(got) != "21.5" {
				t.Fatalf("B opened %q", got)
			}
			// B seals under a data key of its own; A finds it in the store.
			sealedB, err := b.Seal("acc_1", []byte("22.0"), []byte("aad"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := a.Open("acc_1", sealedB, []byte("aad")); err != nil || string(got) != "22.0" {
				t.Fatalf("A opens B's reading: %q, %v", got, err)
			}
			// A shreds the owner; after Refresh B can open nothing of it.
			if err := a.Shred(ctx, "acc_1"); err != nil {
				t.Fatal(err)
			}
			if err := b.Refresh(ctx, "acc_1"); err != nil {
				t.Fatal(err)
			}
			for _, s := range [][]byte{sealedA, sealedB} {
				if _, err := b.Open("acc_1", s, []byte("aad")); !errors.Is(err, ErrShredded) {
					t.Fatalf("B opens a reading of a shredded owner: %v, want ErrShredded", err)
				}
			}
			if _, err := b.Seal("acc_1", []byte("x"), nil); !errors.Is(err, ErrShredded) {
				t.Fatalf("B seals for a shredded owner: %v", err)
			}
		})
	}
}
