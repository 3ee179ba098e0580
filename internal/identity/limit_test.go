package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/candor-iot/candor/internal/store"
)

// countingHasher counts the slow checks that reach the hash.
type countingHasher struct {
	hasher
	verifies atomic.Int32
}

func (c *countingHasher) Verify(ctx context.Context, secret, phc string) (bool, error) {
	c.verifies.Add(1)
	return c.hasher.Verify(ctx, secret, phc)
}

func countChecks(svc *Service) *countingHasher {
	c := &countingHasher{hasher: svc.hasher}
	svc.hasher = c
	return c
}

// throttledBy returns the reason of a *ThrottledError, or "" for any
// other error.
func throttledBy(err error) string {
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrTooManyAttempts) || te.RetryAfter <= 0 {
		return ""
	}
	return te.Reason
}

func from(i int) Origin { return Origin{Addr: fmt.Sprintf("198.51.100.%d:40000", i%250+1)} }

func accountService(t *testing.T) (*Service, *fakeClock, store.Account) {
	t.Helper()
	svc, db := newService(t)
	clk := newFakeClock()
	svc.now = clk.Now
	hh := newHousehold(t, db, "hh_1")
	acc, err := svc.CreateAccount(t.Context(), NewAccount{HouseholdID: hh, Username: "alex", Password: goodPassword, Role: store.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	return svc, clk, acc
}

// A hundred wrong passwords sent at once, each from its own address, get
// no more password checks than the per-username limit allows: the attempt
// is reserved before the slow check, not counted after it.
func TestConcurrentWrongPasswordsAreReservedBeforeChecking(t *testing.T) {
	svc, clk, _ := accountService(t)
	checks := countChecks(svc)
	var wg sync.WaitGroup
	var wrong, throttled atomic.Int32
	for i := range 100 {
		wg.Go(func() {
			_, _, err := svc.Login(ctx(t), from(i), "alex", "wrong-wrong-wrong-wrong", store.SessionBrowser, "")
			switch {
			case errors.Is(err, ErrUnauthenticated):
				wrong.Add(1)
			case throttledBy(err) == ReasonAccount:
				throttled.Add(1)
			default:
				t.Errorf("guess %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := checks.verifies.Load(); n > int32(accountLimit.Burst) {
		t.Errorf("%d password checks for 100 concurrent guesses, want at most %d", n, accountLimit.Burst)
	}
	if wrong.Load() != int32(accountLimit.Burst) || throttled.Load() != 100-int32(accountLimit.Burst) {
		t.Errorf("%d wrong and %d throttled, want %d and %d", wrong.Load(), throttled.Load(), accountLimit.Burst, 100-accountLimit.Burst)
	}
	var m dto.Metric
	if err := svc.limits.throttled.WithLabelValues(checkLogin, ReasonAccount).Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != float64(throttled.Load()) {
		t.Errorf("metric counts %v throttled logins, want %d", n, throttled.Load())
	}

	// The lock holds for the right password too, from a new address...
	if _, _, err := svc.Login(ctx(t), from(200), "Alex", goodPassword, store.SessionBrowser, ""); throttledBy(err) != ReasonAccount {
		t.Fatalf("right password while throttled: %v", err)
	}
	// ...until the bucket refills by one attempt.
	clk.Add(accountLimit.Every)
	if _, _, err := svc.Login(ctx(t), from(201), "alex", goodPassword, store.SessionBrowser, ""); err != nil {
		t.Fatalf("right password after a refill: %v", err)
	}
	// A success gives its attempt back rather than opening the lock.
	before := checks.verifies.Load()
	if _, _, err := svc.Login(ctx(t), from(202), "alex", "wrong-wrong-wrong-wrong", store.SessionBrowser, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("guess after the owner's login: %v", err)
	}
	if _, _, err := svc.Login(ctx(t), from(203), "alex", "wrong-wrong-wrong-wrong", store.SessionBrowser, ""); throttledBy(err) != ReasonAccount {
		t.Fatalf("second guess after one refill: %v", err)
	}
	if n := checks.verifies.Load() - before; n != 1 {
		t.Errorf("%d checks after the refill, want 1", n)
	}
}

// Unknown usernames cost a slow check each, so they are throttled like
// known ones: per address whatever the names, and per name whatever the
// address (and a name that does not exist is refused the same way as one
// that does, so the throttle does not reveal which names exist).
func TestUnknownUsernamesAreThrottled(t *testing.T) {
	svc, _, _ := accountService(t)
	checks := countChecks(svc)
	attacker := Origin{Addr: "203.0.113.9:5555"}
	throttled := 0
	for i := range 40 {
		_, _, err := svc.Login(ctx(t), attacker, fmt.Sprintf("nobody%d", i), goodPassword, store.SessionBrowser, "")
		switch {
		case errors.Is(err, ErrUnauthenticated):
		case throttledBy(err) == ReasonAddress:
			throttled++
		default:
			t.Fatalf("unknown name %d: %v", i, err)
		}
	}
	if n := checks.verifies.Load(); n != int32(addressLimit.Burst) || throttled != 40-addressLimit.Burst {
		t.Errorf("%d checks and %d refusals for 40 unknown names from one address, want %d and %d", n, throttled, addressLimit.Burst, 40-addressLimit.Burst)
	}
	// The same address's port does not matter; another address is free.
	if _, _, err := svc.Login(ctx(t), Origin{Addr: "203.0.113.9:6666"}, "alex", goodPassword, store.SessionBrowser, ""); throttledBy(err) != ReasonAddress {
		t.Errorf("same address, other port: %v", err)
	}
	if _, _, err := svc.Login(ctx(t), Origin{Addr: "192.0.2.7:443"}, "alex", goodPassword, store.SessionBrowser, ""); err != nil {
		t.Errorf("the owner from another address: %v", err)
	}

	for _, name := range []string{"alex", "nobody-at-all"} {
		var last error
		for i := range accountLimit.Burst + 1 {
			_, _, last = svc.Login(ctx(t), from(i), name, "wrong-wrong-wrong-wrong", store.SessionBrowser, "")
		}
		if throttledBy(last) != ReasonAccount {
			t.Errorf("%s: guess %d from many addresses: %v, want throttled per account", name, accountLimit.Burst+1, last)
		}
	}
}

// Someone guessing the owner's password locks the username, but not the
// browser the owner logged in from before.
func TestKnownBrowserIsNotLockedOut(t *testing.T) {
	svc, clk, acc := accountService(t)
	home := Origin{Addr: "192.168.1.20:50000"}
	if _, _, err := svc.Login(ctx(t), home, "alex", goodPassword, store.SessionBrowser, ""); err != nil {
		t.Fatal(err)
	}
	tok, err := svc.KnownBrowser(ctx(t), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		_, _, _ = svc.Login(ctx(t), Origin{Addr: "203.0.113.66:1"}, "alex", fmt.Sprintf("guess number %d", i), store.SessionBrowser, "")
	}
	if _, _, err := svc.Login(ctx(t), home, "alex", goodPassword, store.SessionBrowser, ""); throttledBy(err) != ReasonAccount {
		t.Fatalf("a browser without the token: %v, want throttled", err)
	}
	withToken := Origin{Addr: home.Addr, Browser: tok}
	if _, _, err := svc.Login(ctx(t), withToken, "alex", goodPassword, store.SessionBrowser, ""); err != nil {
		t.Fatalf("the known browser during the lockout: %v", err)
	}

	// Tokens that do not hold are ignored: the username's bucket applies.
	sam, err := svc.CreateAccount(ctx(t), NewAccount{HouseholdID: acc.HouseholdID, Username: "sam", Password: otherPassword, Role: store.RoleMember})
	if err != nil {
		t.Fatal(err)
	}
	samTok, err := svc.KnownBrowser(ctx(t), sam.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, browserTokenPrefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	forged := browserTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	for name, bad := range map[string]string{"another account's": samTok, "altered": forged, "garbage": "cndb_!!", "unprefixed": strings.TrimPrefix(tok, browserTokenPrefix)} {
		if _, _, err := svc.Login(ctx(t), Origin{Addr: home.Addr, Browser: bad}, "alex", goodPassword, store.SessionBrowser, ""); throttledBy(err) != ReasonAccount {
			t.Errorf("%s token: %v, want throttled by account", name, err)
		}
	}

	// The browser has its own bucket: wrong passwords from it run out too.
	var last error
	for range browserLimit.Burst + 1 {
		_, _, last = svc.Login(ctx(t), withToken, "alex", "wrong-wrong-wrong-wrong", store.SessionBrowser, "")
	}
	if throttledBy(last) != ReasonBrowser {
		t.Errorf("wrong passwords from the known browser: %v, want throttled by browser", last)
	}

	// Tokens expire, and a password change retires them.
	clk.Add(KnownBrowserTTL + time.Hour)
	fresh, err := svc.KnownBrowser(ctx(t), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.knownBrowser(acc, tok); ok {
		t.Error("an expired token is honoured")
	}
	if _, ok := svc.knownBrowser(acc, fresh); !ok {
		t.Fatal("a fresh token is refused")
	}
	if err := svc.ChangePassword(ctx(t), acc.ID, goodPassword, thirdPassword, ""); err != nil {
		t.Fatal(err)
	}
	changed, err := svc.st.Account(ctx(t), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.knownBrowser(changed, fresh); ok {
		t.Error("a token issued before the password change is honoured")
	}
}

func TestDeviceSecretGuessingIsThrottled(t *testing.T) {
	svc, db := newService(t)
	svc.now = newFakeClock().Now
	hh := newHousehold(t, db, "hh_1")
	d, secret, err := svc.AddDevice(ctx(t), NewDevice{HouseholdID: hh, Name: "Door", Type: "door-sensor"})
	if err != nil {
		t.Fatal(err)
	}
	device := Origin{Addr: "192.168.1.50:40000"}
	if _, err := svc.AuthenticateDevice(ctx(t), device, d.ID, secret); err != nil {
		t.Fatal(err)
	}
	checks := countChecks(svc)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := svc.AuthenticateDevice(ctx(t), from(i), d.ID, fmt.Sprintf("guess-%d", i))
			if !errors.Is(err, ErrUnauthenticated) && throttledBy(err) != ReasonDevice {
				t.Errorf("guess %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := checks.verifies.Load(); n > int32(deviceLimit.Burst) {
		t.Errorf("%d secret checks for 50 concurrent guesses, want at most %d", n, deviceLimit.Burst)
	}
	// The real device verified before, so it is answered from memory.
	if _, err := svc.AuthenticateDevice(ctx(t), device, d.ID, secret); err != nil {
		t.Errorf("the real device while its id is throttled: %v", err)
	}
	// Unknown ids get the same treatment from one address.
	var last error
	for i := range addressLimit.Burst + 1 {
		_, last = svc.AuthenticateDevice(ctx(t), Origin{Addr: "[2001:db8:1:2::5]:1883"}, fmt.Sprintf("dev_unknown%d", i), "some-secret-value")
	}
	if throttledBy(last) != ReasonAddress {
		t.Errorf("unknown ids from one address: %v, want throttled by address", last)
	}
	// The same IPv6 /64 is the same bucket.
	if _, err := svc.AuthenticateDevice(ctx(t), Origin{Addr: "[2001:db8:1:2::99]:1883"}, "dev_other", "some-secret-value"); throttledBy(err) != ReasonAddress {
		t.Errorf("another host of the same /64: %v", err)
	}
	if _, err := svc.AuthenticateDevice(ctx(t), device, d.ID, secret); err != nil {
		t.Errorf("the real device after the flood: %v", err)
	}
}

// Re-entering one's password is throttled per account, and a refusal is
// both an input error (for the form) and a throttle refusal.
func TestConfirmPasswordIsThrottled(t *testing.T) {
	svc, _, acc := accountService(t)
	checks := countChecks(svc)
	for range confirmLimit.Burst {
		if err := svc.ConfirmPassword(ctx(t), acc.ID, "wrong-wrong-wrong-wrong"); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooManyAttempts) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	err := svc.ConfirmPassword(ctx(t), acc.ID, goodPassword)
	if !errors.Is(err, ErrInvalid) || throttledBy(err) != ReasonAccount {
		t.Fatalf("right password after %d wrong ones: %v", confirmLimit.Burst, err)
	}
	if err := svc.ChangePassword(ctx(t), acc.ID, goodPassword, otherPassword, ""); throttledBy(err) != ReasonAccount {
		t.Errorf("change password while throttled: %v", err)
	}
	if n := checks.verifies.Load(); n != int32(confirmLimit.Burst) {
		t.Errorf("%d checks, want %d", n, confirmLimit.Burst)
	}
}

func TestAddressKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:1234":             "192.0.2.1",
		"192.0.2.1":                  "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:a:b:c::1]:1883":   "2001:db8:a:b::/64",
		"[fe80::1%eth0]:1883":        "fe80::/64",
		"2001:db8:a:b:ffff::":        "2001:db8:a:b::/64",
		"@":                          "?",
		"":                           "?",
		"not an address at all:1883": "?",
	} {
		if got := addressKey(addr); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", addr, got, want)
		}
	}
}
