package access_test

import (
	"errors"
	"testing"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/store"
)

// Who may remove a person's second factor, and see it: the operator for
// anyone, the admin for the people of the admin's household but not for
// themselves; the person sees their own; everyone else gets not found.
func TestResetSecondFactor(t *testing.T) {
	homeAdmin := access.Person(store.Account{ID: "acc_ha", HouseholdID: home, Role: store.RoleOwner, Admin: true}, store.Session{})
	kim := store.Account{ID: "acc_member", HouseholdID: home, Username: "kim"}
	self := homeAdmin.Account
	self.Username = "alex"
	const (
		ok = iota
		notFound
		own
	)
	tests := []struct {
		name      string
		p         access.Principal
		acc       store.Account
		reset     int
		seeStatus bool
	}{
		{"operator, a person", operator, kim, ok, true},
		{"operator, the admin", operator, self, ok, true},
		{"admin, their household", homeAdmin, kim, ok, true},
		{"admin, themselves", homeAdmin, self, own, true},
		{"admin, another household", admin, kim, notFound, false},
		{"owner who is not the admin", owner, kim, notFound, false},
		{"the person themselves", member, kim, notFound, true},
		{"stranger", stranger, kim, notFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.ResetSecondFactor(tt.acc)
			var nf *access.NotFoundError
			switch tt.reset {
			case ok:
				if err != nil {
					t.Errorf("ResetSecondFactor = %v, want nil", err)
				}
			case notFound:
				if !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) {
					t.Errorf("ResetSecondFactor = %v, want not found", err)
				}
			case own:
				if !errors.Is(err, access.ErrOwnSecondFactor) {
					t.Errorf("ResetSecondFactor = %v, want own-second-factor", err)
				}
			}
			if got := tt.p.SeeSecondFactor(tt.acc) == nil; got != tt.seeStatus {
				t.Errorf("SeeSecondFactor allowed = %v, want %v", got, tt.seeStatus)
			}
		})
	}
}

// Only the admin, logged in as a person and without a factor, on a hub
// that requires one, must enrol first.
func TestMustEnrolFirst(t *testing.T) {
	for _, tt := range []struct {
		name                string
		p                   access.Principal
		required, has, want bool
	}{
		{"admin without, required", admin, true, false, true},
		{"admin with, required", admin, true, true, false},
		{"admin without, not required", admin, false, false, false},
		{"owner without, required", owner, true, false, false},
		{"operator, required", operator, true, false, false},
	} {
		if got := tt.p.MustEnrolFirst(tt.required, tt.has); got != tt.want {
			t.Errorf("%s: MustEnrolFirst = %v, want %v", tt.name, got, tt.want)
		}
	}
}
