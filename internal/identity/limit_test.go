package identity

import (
	"errors"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

func TestLimiterLocksAfterRepeatedFailures(t *testing.T) {
	var l limiter
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i < maxFailures; i++ {
		if l.failed("alex", now) {
			t.Fatalf("locked after %d failures", i)
		}
	}
	if !l.failed("alex", now) {
		t.Fatal("not locked after maxFailures")
	}
	if l.allowed("alex", now.Add(lockout/2)) {
		t.Error("attempt allowed during lockout")
	}
	if !l.allowed("sam", now) {
		t.Error("another username is locked too")
	}
	if !l.allowed("alex", now.Add(lockout)) {
		t.Error("still locked after the lockout")
	}
	l.succeeded("alex")
	if !l.allowed("alex", now) {
		t.Error("success did not clear the failures")
	}
}

func TestLoginIsThrottled(t *testing.T) {
	svc, db := newService(t)
	hh := newHousehold(t, db, "hh_1")
	if _, err := svc.CreateAccount(t.Context(), NewAccount{HouseholdID: hh, Username: "alex", Password: "tangerine-harbour-quietly-88", Role: store.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	for range maxFailures {
		if _, _, err := svc.Login(t.Context(), "alex", "wrong-wrong-wrong-wrong", store.SessionBrowser, ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	// Locked: even the right password is refused for now.
	if _, _, err := svc.Login(t.Context(), "Alex", "tangerine-harbour-quietly-88", store.SessionBrowser, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("login during lockout: %v", err)
	}
	svc.now = func() time.Time { return time.Now().Add(lockout + time.Second) }
	if _, _, err := svc.Login(t.Context(), "alex", "tangerine-harbour-quietly-88", store.SessionBrowser, ""); err != nil {
		t.Fatalf("login after lockout: %v", err)
	}
}
