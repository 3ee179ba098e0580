package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func testSecondFactors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateHousehold(t, s, household("h1", at(0)))
	mustCreateAccount(t, s, account("a1", "h1", "ann"))
	wantErr(t, "SecondFactor(none)", func() error { _, err := s.SecondFactor(ctx, "a1"); return err }(), store.ErrNotFound)
	wantErr(t, "PutSecondFactor(no account)", s.PutSecondFactor(ctx, store.SecondFactor{AccountID: "nope", Sealed: []byte("x"), CreatedAt: at(0)}), store.ErrNotFound)

	put := func(secret string, codes ...string) {
		t.Helper()
		f := store.SecondFactor{AccountID: "a1", Sealed: []byte(secret), CreatedAt: at(time.Minute)}
		for _, c := range codes {
			f.RecoveryHashes = append(f.RecoveryHashes, []byte(c))
		}
		if err := s.PutSecondFactor(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	put("sealed-1", "r1", "r2")
	// A new enrolment replaces the pending one and its codes.
	put("sealed-2", "r3", "r4", "r5")
	f, err := s.SecondFactor(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Sealed, []byte("sealed-2")) || f.Confirmed() || f.RecoveryLeft != 3 || !f.CreatedAt.Equal(at(time.Minute)) {
		t.Fatalf("pending factor: %+v", f)
	}
	if err := s.ConfirmSecondFactor(ctx, "a1", 100, at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "ConfirmSecondFactor(none)", s.ConfirmSecondFactor(ctx, "nope", 1, at(0)), store.ErrNotFound)
	if f, err = s.SecondFactor(ctx, "a1"); err != nil || !f.ConfirmedAt.Equal(at(2*time.Minute)) || f.LastStep != 100 {
		t.Fatalf("confirmed factor: %+v %v", f, err)
	}
	// Each step is accepted once, and never an older one.
	for _, c := range []struct {
		step int64
		want bool
	}{{100, false}, {99, false}, {101, true}, {101, false}} {
		if ok, err := s.UseSecondFactorStep(ctx, "a1", c.step); err != nil || ok != c.want {
			t.Errorf("UseSecondFactorStep(%d) = %v, %v; want %v", c.step, ok, err, c.want)
		}
	}
	// Each recovery code works once; the old enrolment's not at all.
	for _, c := range []struct {
		code string
		want bool
	}{{"r1", false}, {"r3", true}, {"r3", false}} {
		if ok, err := s.UseRecoveryCode(ctx, "a1", []byte(c.code)); err != nil || ok != c.want {
			t.Errorf("UseRecoveryCode(%s) = %v, %v; want %v", c.code, ok, err, c.want)
		}
	}
	if f, _ = s.SecondFactor(ctx, "a1"); f.RecoveryLeft != 2 {
		t.Fatalf("recovery codes left: %d, want 2", f.RecoveryLeft)
	}
	if err := s.DeleteSecondFactor(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteSecondFactor(again)", s.DeleteSecondFactor(ctx, "a1"), store.ErrNotFound)
	if ok, err := s.UseRecoveryCode(ctx, "a1", []byte("r4")); err != nil || ok {
		t.Fatalf("a recovery code outlived its factor: %v %v", ok, err)
	}
	// A reset removes the factor and keeps a notice, taken once.
	wantErr(t, "ResetSecondFactor(none)", s.ResetSecondFactor(ctx, store.SecondFactorReset{AccountID: "a1", At: at(0), ByKind: "operator"}), store.ErrNotFound)
	wantErr(t, "TakeSecondFactorReset(none)", func() error { _, err := s.TakeSecondFactorReset(ctx, "a1"); return err }(), store.ErrNotFound)
	put("sealed-r", "r7")
	if err := s.ResetSecondFactor(ctx, store.SecondFactorReset{AccountID: "a1", At: at(3 * time.Minute), ByKind: "person", ByID: "a9"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SecondFactor(after reset)", func() error { _, err := s.SecondFactor(ctx, "a1"); return err }(), store.ErrNotFound)
	if r, err := s.TakeSecondFactorReset(ctx, "a1"); err != nil || !r.At.Equal(at(3*time.Minute)) || r.ByKind != "person" || r.ByID != "a9" || r.AccountID != "a1" {
		t.Fatalf("reset notice: %+v %v", r, err)
	}
	wantErr(t, "TakeSecondFactorReset(taken)", func() error { _, err := s.TakeSecondFactorReset(ctx, "a1"); return err }(), store.ErrNotFound)
	// Deleting the account takes its factor and any notice with it.
	put("sealed-4", "r8")
	if err := s.ResetSecondFactor(ctx, store.SecondFactorReset{AccountID: "a1", At: at(4 * time.Minute), ByKind: "operator"}); err != nil {
		t.Fatal(err)
	}
	put("sealed-3", "r6")
	if err := s.DeleteAccount(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SecondFactor(deleted account)", func() error { _, err := s.SecondFactor(ctx, "a1"); return err }(), store.ErrNotFound)
}
