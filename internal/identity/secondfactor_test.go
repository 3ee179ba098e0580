package identity

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/pquerna/otp/totp"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// totpService is accountService with a real hub box sealing the secrets.
func totpService(t *testing.T) (*Service, *fakeClock, store.Account) {
	t.Helper()
	svc, clk, acc := accountService(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	svc.box = vault.NewHubBox(id)
	return svc, clk, acc
}

// codeAt is what an authenticator app shows at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol adds and confirms an app on acc and returns what was shown once.
func enrol(t *testing.T, svc *Service, clk *fakeClock, acc store.Account) Enrolment {
	t.Helper()
	en, err := svc.BeginSecondFactor(ctx(t), acc.ID, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ConfirmSecondFactor(ctx(t), acc.ID, codeAt(t, en.Secret, clk.Now())); err != nil {
		t.Fatal(err)
	}
	return en
}

func TestSecondFactorEnrol(t *testing.T) {
	svc, clk, acc := totpService(t)
	db := svc.st
	if _, err := svc.BeginSecondFactor(ctx(t), acc.ID, "not my password at all"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("enrol with a wrong password: %v", err)
	}
	en, err := svc.BeginSecondFactor(ctx(t), acc.ID, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(en.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != en.Secret || u.Query().Get("issuer") != "Candor" {
		t.Fatalf("otpauth URI %q: %v", en.URI, err)
	}
	if len(en.RecoveryCodes) != recoveryCodes {
		t.Fatalf("%d recovery codes", len(en.RecoveryCodes))
	}
	// At rest: the secret sealed, never in the clear.
	f, err := db.SecondFactor(ctx(t), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(f.Sealed, []byte(en.Secret)) || f.Confirmed() || f.RecoveryLeft != recoveryCodes {
		t.Fatalf("stored factor: confirmed %v, %d codes, sealed holds the secret: %v", f.Confirmed(), f.RecoveryLeft, bytes.Contains(f.Sealed, []byte(en.Secret)))
	}
	// Not in force until confirmed: login still needs the password only.
	if _, _, err := svc.Login(ctx(t), from(1), "alex", goodPassword, store.SessionBrowser, ""); err != nil {
		t.Fatalf("login before confirming: %v", err)
	}
	if on, _ := svc.HasSecondFactor(ctx(t), acc.ID); on {
		t.Fatal("a pending app counts as a second factor")
	}
	if err := svc.ConfirmSecondFactor(ctx(t), acc.ID, "000000"); !errors.Is(err, ErrInvalid) && codeAt(t, en.Secret, clk.Now()) != "000000" {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	if err := svc.ConfirmSecondFactor(ctx(t), acc.ID, codeAt(t, en.Secret, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if on, _ := svc.HasSecondFactor(ctx(t), acc.ID); !on {
		t.Fatal("confirmed app not in force")
	}
	if _, err := svc.BeginSecondFactor(ctx(t), acc.ID, goodPassword); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second enrolment over one in force: %v", err)
	}
}

func TestSecondFactorLogin(t *testing.T) {
	svc, clk, acc := totpService(t)
	en := enrol(t, svc, clk, acc)
	clk.Add(time.Minute) // past the step that confirmed it

	login := func(i int) *SecondFactorRequiredError {
		t.Helper()
		_, _, err := svc.Login(ctx(t), from(i), "alex", goodPassword, store.SessionBrowser, "")
		var req *SecondFactorRequiredError
		if !errors.As(err, &req) || !errors.Is(err, ErrSecondFactorRequired) || req.Challenge == "" {
			t.Fatalf("login with the password only: %v", err)
		}
		return req
	}
	// The right password alone opens nothing.
	req := login(1)
	if ss, _ := svc.Sessions(ctx(t), acc.ID); len(ss) != 0 {
		t.Fatalf("a session opened before the code: %+v", ss)
	}
	// A wrong code is refused; the right one opens the session, once.
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(1), req.Challenge, "123456x"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("malformed code: %v", err)
	}
	code := codeAt(t, en.Secret, clk.Now())
	if _, tok, err := svc.LoginSecondFactor(ctx(t), from(1), req.Challenge, code); err != nil || tok == "" {
		t.Fatalf("right code: %v", err)
	}
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(1), req.Challenge, code); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("challenge used twice: %v", err)
	}
	// The same code again, on a new login, is a replay.
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(1), login(1).Challenge, code); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("replayed code: %v", err)
	}

	// A recovery code works once, typed loosely.
	rc := en.RecoveryCodes[3]
	loose := strings.ToUpper(strings.ReplaceAll(rc, "-", " "))
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(2), login(2).Challenge, loose); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(2), login(2).Challenge, rc); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("recovery code used twice: %v", err)
	}
	if st, _ := svc.SecondFactor(ctx(t), acc.ID); st.RecoveryLeft != recoveryCodes-1 {
		t.Fatalf("recovery codes left: %d", st.RecoveryLeft)
	}

	// A challenge expires.
	req = login(3)
	clk.Add(challengeTTL + time.Second)
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(3), req.Challenge, codeAt(t, en.Secret, clk.Now())); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired challenge: %v", err)
	}

	// Turned off: the password alone works again, and the log says so.
	if err := svc.DisableSecondFactor(ctx(t), acc.ID, goodPassword); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Login(ctx(t), from(4), "alex", goodPassword, store.SessionBrowser, ""); err != nil {
		t.Fatalf("login after turning it off: %v", err)
	}
}

// Wrong codes spend the login attempts of the username, like wrong
// passwords: guessing six digits is as slow as guessing the password.
func TestSecondFactorCodesAreThrottled(t *testing.T) {
	svc, clk, acc := totpService(t)
	en := enrol(t, svc, clk, acc)
	clk.Add(time.Minute)
	right := codeAt(t, en.Secret, clk.Now())
	wrong := "000000"
	if wrong == right {
		wrong = "111111"
	}
	throttled := false
	for i := range 3 * accountLimit.Burst {
		_, _, err := svc.Login(ctx(t), from(i), "alex", goodPassword, store.SessionBrowser, "")
		var req *SecondFactorRequiredError
		if !errors.As(err, &req) {
			if throttledBy(err) == ReasonAccount {
				throttled = true
				break
			}
			t.Fatalf("login %d: %v", i, err)
		}
		_, _, err = svc.LoginSecondFactor(ctx(t), from(i), req.Challenge, wrong)
		if throttledBy(err) == ReasonAccount {
			throttled = true
			// Now even the right code waits.
			if _, _, err := svc.LoginSecondFactor(ctx(t), from(i), req.Challenge, right); throttledBy(err) != ReasonAccount {
				t.Fatalf("right code while throttled: %v", err)
			}
			break
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if !throttled {
		t.Fatalf("%d wrong codes and no throttle", 3*accountLimit.Burst)
	}
	// One challenge takes at most maxChallengeTries codes, whatever the
	// buckets allow.
	clk.Add(time.Hour)
	_, _, err := svc.Login(ctx(t), from(100), "alex", goodPassword, store.SessionBrowser, "")
	var req *SecondFactorRequiredError
	if !errors.As(err, &req) {
		t.Fatal(err)
	}
	for i := range maxChallengeTries {
		if _, _, err := svc.LoginSecondFactor(ctx(t), from(100+i), req.Challenge, wrong); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("try %d: %v", i, err)
		}
	}
	clk.Add(2 * time.Minute) // the buckets refill; the challenge has not expired
	if _, _, err := svc.LoginSecondFactor(ctx(t), from(120), req.Challenge, codeAt(t, en.Secret, clk.Now())); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("the right code after %d wrong ones on one challenge: %v", maxChallengeTries, err)
	}
}

// What a person types as a spare code is cleaned up before it is hashed:
// never a panic, the same result when cleaned twice, and every code the
// hub makes survives the way people type it.
func FuzzNormalizeRecoveryCode(f *testing.F) {
	for _, s := range []string{"abcde-fghjk", "ABCDE FGHJK", "abcdefghjk", "", "0o1li", "ü-ß\x00", strings.Repeat("a", 70)} {
		f.Add(s)
	}
	f.Add(newRecoveryCode())
	f.Fuzz(func(t *testing.T, s string) {
		n := normalizeRecoveryCode(s)
		if again := normalizeRecoveryCode(n); again != n {
			t.Fatalf("normalize(%q) = %q, then %q", s, n, again)
		}
		if isDigits(s, 6) && len(n) == 10 {
			t.Fatalf("six digits %q read as a spare code", s)
		}
	})
}

func TestRecoveryCodesTypedLoosely(t *testing.T) {
	for range 100 {
		c := newRecoveryCode()
		for _, typed := range []string{c, strings.ToUpper(c), strings.ReplaceAll(c, "-", ""), " " + strings.ReplaceAll(c, "-", " ") + " "} {
			if got := normalizeRecoveryCode(typed); got != c {
				t.Fatalf("%q typed as %q reads %q", c, typed, got)
			}
		}
	}
}
