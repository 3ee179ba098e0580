package identity

import (
	"errors"
	"testing"

	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// TestInvalidErrorsCarryTheirDetail checks what identity's refusals tell
// a transport: the kind ErrInvalid (422, invalid-input) and a detail that
// names the field and the rule, apart from the kind's text.
func TestInvalidErrorsCarryTheirDetail(t *testing.T) {
	svc, db := newService(t)
	svc.now = newFakeClock().Now // the throttle's "try again in" is then exact
	c := ctx(t)
	acc, err := svc.CreateAccount(c, NewAccount{HouseholdID: newHousehold(t, db, "hh_1"), Username: "alex", Password: goodPassword, Role: store.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := svc.AddDevice(c, NewDevice{HouseholdID: acc.HouseholdID, Name: "Meter", Type: "smart-meter"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeDevice(c, d.ID); err != nil {
		t.Fatal(err)
	}
	wrongPassword := func() error { return svc.ConfirmPassword(c, acc.ID, otherPassword) }
	tests := []struct {
		name   string
		call   func() error
		detail string
		cause  error
	}{
		{"username rule", func() error {
			_, err := svc.CreateAccount(c, NewAccount{HouseholdID: acc.HouseholdID, Username: "a", Password: goodPassword, Role: store.RoleMember})
			return err
		}, "username: must be 2-64 characters", nil},
		{"taken username", func() error {
			_, err := svc.CreateAccount(c, NewAccount{HouseholdID: acc.HouseholdID, Username: "alex", Password: goodPassword, Role: store.RoleOwner})
			return err
		}, `username: "alex" is already taken`, nil},
		{"revoked device", func() error {
			_, err := svc.RotateDevice(c, d.ID, "")
			return err
		}, "rotate device " + d.ID + ": the device is revoked; add it again instead", nil},
		{"wrong password", wrongPassword, "password: does not match", nil},
		{"too many wrong passwords", func() error {
			for range confirmLimit.Burst {
				_ = wrongPassword()
			}
			return wrongPassword()
		}, "password: too many wrong passwords for this account; try again in a minute", ErrTooManyAttempts},
	}
	for _, tt := range tests {
		err := tt.call()
		kind, detail, ok := problem.Of(err)
		if !ok || kind != ErrInvalid || !errors.Is(err, ErrInvalid) || detail != tt.detail {
			t.Errorf("%s: %v: kind %v, detail %q; want ErrInvalid, %q", tt.name, err, kind, detail, tt.detail)
		}
		if kind != nil && (kind.Status != 422 || kind.Type != "invalid-input") {
			t.Errorf("%s: answered %d %s", tt.name, kind.Status, kind.Type)
		}
		if (tt.cause != nil) != errors.Is(err, ErrTooManyAttempts) {
			t.Errorf("%s: errors.Is(err, ErrTooManyAttempts) = %v", tt.name, errors.Is(err, ErrTooManyAttempts))
		}
	}
}
