package identity

import (
	"errors"
	"testing"

	"github.com/candor-iot/candor/internal/store"
)

func TestSetRole(t *testing.T) {
	svc, db := newService(t)
	ctx := t.Context()
	newHousehold(t, db, "h1")
	newHousehold(t, db, "h2")
	mk := func(hh, name string, role store.Role) store.Account {
		t.Helper()
		a, err := svc.CreateAccount(ctx, NewAccount{HouseholdID: hh, Username: name, Password: goodPassword, Role: role})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return a
	}
	owner := mk("h1", "olive", store.RoleOwner)
	member := mk("h1", "mina", store.RoleMember)
	stranger := mk("h2", "sam", store.RoleOwner)

	cases := []struct {
		name   string
		actor  store.Account
		target string
		role   store.Role
		want   error
	}{
		{"member cannot promote", member, member.ID, store.RoleOwner, ErrForbidden},
		{"other household sees nobody", stranger, member.ID, store.RoleOwner, store.ErrNotFound},
		{"unknown role", owner, member.ID, "admin", ErrInvalid},
		{"last owner cannot step down", owner, owner.ID, store.RoleMember, ErrInvalid},
		{"owner promotes member", owner, member.ID, store.RoleOwner, nil},
		{"with two owners one may step down", owner, owner.ID, store.RoleMember, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.SetRole(ctx, tc.actor, tc.target, tc.role)
			if tc.want == nil {
				if err != nil || got.Role != tc.role {
					t.Fatalf("SetRole = %+v, %v; want role %s", got, err, tc.role)
				}
				if a, _ := db.Account(ctx, tc.target); a.Role != tc.role {
					t.Errorf("stored role %s, want %s", a.Role, tc.role)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("SetRole err = %v, want %v", err, tc.want)
			}
		})
	}
}
