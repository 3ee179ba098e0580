package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/store"
)

// A second login factor is a one-time-code app (TOTP, RFC 6238: HMAC-SHA1,
// 6 digits, 30-second steps, the parameters every authenticator app reads
// from an otpauth URI). It is optional for every account; the security
// audit flags admin accounts without one.
//
// At rest, the app's shared secret is sealed by the SecretBox the hub
// gives (wrapped to the hub's vault key) and bound to the account id; the
// recovery codes are kept only as SHA-256 hashes (they are long random
// strings, so a fast hash is enough, as for bearer tokens). A code is
// accepted once: the store keeps the last step used.

// SecretBox seals secrets the hub must read back, bound to a label.
type SecretBox interface {
	Seal(label string, secret []byte) ([]byte, error)
	Open(label string, sealed []byte) ([]byte, error)
}

// Actions the second factor records in the transparency log.
const (
	ActionSecondFactorOn  = "account.second_factor.enable"
	ActionSecondFactorOff = "account.second_factor.disable"
	// ActionSecondFactorReset is someone else removing a person's factor
	// (the operator, or the admin for their household).
	ActionSecondFactorReset = "account.second_factor.reset"
)

const (
	totpIssuer = "Candor"
	totpPeriod = 30
	// totpSkew accepts the step before and after the current one, for
	// phones whose clock is a little off.
	totpSkew = 1
	// recoveryCodes is how many one-use recovery codes an enrolment
	// makes.
	recoveryCodes = 10
	// challengeTTL is how long a login may wait between the password and
	// the code; maxChallengeTries bounds the codes tried on one password.
	challengeTTL      = 5 * time.Minute
	maxChallengeTries = 5
	maxChallenges     = 10000
	challengePrefix   = "cndc_"
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// ErrSecondFactorRequired is wrapped by the *SecondFactorRequiredError a
// login returns when the password was right and the account asks for a
// code.
var ErrSecondFactorRequired = errors.New("a code from your authenticator app is needed")

// ErrNoSecretBox means this hub was set up without a way to seal the
// secret, so it cannot offer a second factor.
var ErrNoSecretBox = errors.New("this hub cannot keep a second factor (no secret box)")

// SecondFactorRequiredError is a login whose password was right, waiting
// for the code. Challenge is a short-lived secret to send back with it
// (LoginSecondFactor); it is worth nothing without a code.
type SecondFactorRequiredError struct {
	Challenge string
	Expires   time.Time
}

func (e *SecondFactorRequiredError) Error() string { return ErrSecondFactorRequired.Error() }

// Unwrap makes errors.Is(err, ErrSecondFactorRequired) true.
func (e *SecondFactorRequiredError) Unwrap() error { return ErrSecondFactorRequired }

// Enrolment is what a person sees once when adding an app: the secret to
// type in, the otpauth URI apps read, and the recovery codes.
type Enrolment struct {
	Secret        string   `json:"secret"`
	URI           string   `json:"otpauth_uri"`
	RecoveryCodes []string `json:"recovery_codes"`
}

// SecondFactorStatus says whether an account has an app in force.
type SecondFactorStatus struct {
	On           bool      `json:"on"`
	Pending      bool      `json:"pending"` // enrolled, not yet confirmed with a code
	Since        time.Time `json:"since,omitzero"`
	RecoveryLeft int       `json:"recovery_codes_left"`
}

// challenge is a login past its password, waiting for a code.
type challenge struct {
	accountID string
	username  string
	kind      store.SessionKind
	name      string
	expires   time.Time
	tries     int
}

// SecondFactor reports an account's second factor.
func (s *Service) SecondFactor(ctx context.Context, accountID string) (SecondFactorStatus, error) {
	f, err := s.st.SecondFactor(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return SecondFactorStatus{}, nil
	}
	if err != nil {
		return SecondFactorStatus{}, err
	}
	return SecondFactorStatus{On: f.Confirmed(), Pending: !f.Confirmed(), Since: f.ConfirmedAt, RecoveryLeft: f.RecoveryLeft}, nil
}

// HasSecondFactor reports whether an account has a confirmed second
// factor (for the security audit).
func (s *Service) HasSecondFactor(ctx context.Context, accountID string) (bool, error) {
	st, err := s.SecondFactor(ctx, accountID)
	return st.On, err
}

// BeginSecondFactor starts adding an app to an account, after the person
// re-entered their password. It returns the secret and recovery codes,
// shown once; nothing changes at login until ConfirmSecondFactor.
func (s *Service) BeginSecondFactor(ctx context.Context, accountID, password string) (Enrolment, error) {
	if s.box == nil {
		return Enrolment{}, ErrNoSecretBox
	}
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return Enrolment{}, fmt.Errorf("second factor: %w", err)
	}
	if err := s.checkOwnPassword(ctx, acc, "password", password); err != nil {
		return Enrolment{}, err
	}
	if cur, err := s.SecondFactor(ctx, accountID); err != nil {
		return Enrolment{}, err
	} else if cur.On {
		return Enrolment{}, invalid("second_factor: already on; turn it off first to use another app")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: acc.Username, Period: totpPeriod,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: rand.Reader})
	if err != nil {
		return Enrolment{}, fmt.Errorf("second factor: make secret: %w", err)
	}
	sealed, err := s.box.Seal(sealLabel(accountID), []byte(key.Secret()))
	if err != nil {
		return Enrolment{}, fmt.Errorf("second factor: seal secret: %w", err)
	}
	en := Enrolment{Secret: key.Secret(), URI: key.URL()}
	f := store.SecondFactor{AccountID: accountID, Sealed: sealed, CreatedAt: s.now().UTC()}
	for range recoveryCodes {
		c := newRecoveryCode()
		en.RecoveryCodes = append(en.RecoveryCodes, c)
		h := sha256.Sum256([]byte(c))
		f.RecoveryHashes = append(f.RecoveryHashes, h[:])
	}
	if err := s.st.PutSecondFactor(ctx, f); err != nil {
		return Enrolment{}, fmt.Errorf("second factor: %w", err)
	}
	return en, nil
}

// ConfirmSecondFactor puts an enrolled app in force once the person typed
// a code it shows. Wrong codes use up the account's re-entry attempts.
func (s *Service) ConfirmSecondFactor(ctx context.Context, accountID, code string) error {
	f, err := s.st.SecondFactor(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return invalid("code: add an app first")
	}
	if err != nil {
		return err
	}
	if f.Confirmed() {
		return invalid("code: the app is already on")
	}
	att, err := s.reserve(ctx, checkConfirm, bucketRef{s.limits.confirms, accountID, ReasonAccount})
	if err != nil {
		if errors.Is(err, ErrTooManyAttempts) {
			return ErrInvalid.Errorf("code: %w", err)
		}
		return err
	}
	step, ok, err := s.matchCode(accountID, f, code)
	if err != nil {
		att.passed()
		return err
	}
	if !ok {
		att.failed()
		return invalid("code: does not match; check the time on your phone and type the code it shows now")
	}
	att.passed()
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return err
	}
	if err := s.st.ConfirmSecondFactor(ctx, accountID, step, s.now().UTC()); err != nil {
		return fmt.Errorf("second factor: %w", err)
	}
	s.log.Info("second factor on", "account", accountID)
	return s.record(ctx, auditlog.Event{Action: ActionSecondFactorOn, Household: acc.HouseholdID,
		Subject: auditlog.Subject{Account: accountID}, Detail: map[string]string{"kind": "totp"}})
}

// DisableSecondFactor removes an account's app and recovery codes, after
// the person re-entered their password.
func (s *Service) DisableSecondFactor(ctx context.Context, accountID, password string) error {
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("second factor: %w", err)
	}
	if err := s.checkOwnPassword(ctx, acc, "password", password); err != nil {
		return err
	}
	cur, err := s.SecondFactor(ctx, accountID)
	if err != nil {
		return err
	}
	if err := s.st.DeleteSecondFactor(ctx, accountID); errors.Is(err, store.ErrNotFound) {
		return invalid("second_factor: there is no app to turn off")
	} else if err != nil {
		return fmt.Errorf("second factor: %w", err)
	}
	if !cur.On {
		return nil // a pending enrolment was never in force: nothing to log
	}
	s.log.Info("second factor off", "account", accountID)
	return s.record(ctx, auditlog.Event{Action: ActionSecondFactorOff, Household: acc.HouseholdID,
		Subject: auditlog.Subject{Account: accountID}, Detail: map[string]string{"kind": "totp"}})
}

// secondFactorChallenge is called by Login once the password matched: an
// account with an app in force gets a challenge instead of a session.
func (s *Service) secondFactorChallenge(ctx context.Context, acc store.Account, key string, kind store.SessionKind, name string) error {
	f, err := s.st.SecondFactor(ctx, acc.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up second factor: %w", err)
	}
	if !f.Confirmed() {
		return nil
	}
	tok, hash := credential.NewToken(challengePrefix)
	now := s.now()
	c := &challenge{accountID: acc.ID, username: key, kind: kind, name: name, expires: now.Add(challengeTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.challenges == nil {
		s.challenges = map[[32]byte]*challenge{}
	}
	if len(s.challenges) >= maxChallenges {
		for k, v := range s.challenges {
			if now.After(v.expires) {
				delete(s.challenges, k)
			}
		}
		if len(s.challenges) >= maxChallenges {
			return &ThrottledError{Reason: ReasonBusy, RetryAfter: busyRetry}
		}
	}
	s.challenges[[32]byte(hash)] = c
	return &SecondFactorRequiredError{Challenge: tok, Expires: c.expires}
}

// LoginSecondFactor finishes a login that returned a
// *SecondFactorRequiredError: code is the app's current code or one of
// the recovery codes (each works once). Wrong codes spend the same
// attempts as wrong passwords, by address and username (or known
// browser), and a challenge takes at most five codes.
func (s *Service) LoginSecondFactor(ctx context.Context, o Origin, challengeToken, code string) (store.Session, string, error) {
	if len(challengeToken) > 256 || len(code) > 64 || !strings.HasPrefix(challengeToken, challengePrefix) {
		return store.Session{}, "", ErrUnauthenticated
	}
	hash := [32]byte(credential.HashToken(challengeToken))
	s.mu.Lock()
	c := s.challenges[hash]
	if c != nil && s.now().After(c.expires) {
		delete(s.challenges, hash)
		c = nil
	}
	var snapshot challenge
	if c != nil {
		snapshot = *c
	}
	s.mu.Unlock()
	if c == nil {
		return store.Session{}, "", ErrUnauthenticated
	}
	// The buckets of this request's origin: a code sent from elsewhere
	// than the password spends that address's attempts.
	buckets, err := s.loginBuckets(ctx, o, snapshot.username)
	if err != nil {
		return store.Session{}, "", err
	}
	att, err := s.reserve(ctx, checkLogin, buckets...)
	if err != nil {
		return store.Session{}, "", err
	}
	how, ok, err := s.checkSecondFactor(ctx, snapshot.accountID, code)
	if err != nil {
		att.passed()
		return store.Session{}, "", err
	}
	if !ok {
		att.failed()
		s.mu.Lock()
		if c.tries++; c.tries >= maxChallengeTries {
			delete(s.challenges, hash)
		}
		s.mu.Unlock()
		s.log.Info("login code wrong", "account", snapshot.accountID)
		return store.Session{}, "", ErrUnauthenticated
	}
	att.passed()
	s.mu.Lock()
	_, live := s.challenges[hash]
	delete(s.challenges, hash)
	s.mu.Unlock()
	if !live {
		// Another request finished this login first.
		return store.Session{}, "", ErrUnauthenticated
	}
	acc, err := s.st.Account(ctx, snapshot.accountID)
	if err != nil {
		return store.Session{}, "", fmt.Errorf("look up account: %w", err)
	}
	return s.finishLogin(ctx, acc, snapshot.kind, snapshot.name, map[string]string{"second_factor": how})
}

// checkSecondFactor checks a login code: six digits against the app,
// anything else against the recovery codes. It reports which matched.
func (s *Service) checkSecondFactor(ctx context.Context, accountID, code string) (string, bool, error) {
	f, err := s.st.SecondFactor(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil // turned off meanwhile
	}
	if err != nil {
		return "", false, fmt.Errorf("look up second factor: %w", err)
	}
	code = strings.TrimSpace(code)
	if isDigits(code, 6) {
		step, ok, err := s.matchCode(accountID, f, code)
		if err != nil || !ok {
			return "", false, err
		}
		fresh, err := s.st.UseSecondFactorStep(ctx, accountID, step)
		if err != nil {
			return "", false, fmt.Errorf("second factor: %w", err)
		}
		return "totp", fresh, nil
	}
	h := sha256.Sum256([]byte(normalizeRecoveryCode(code)))
	used, err := s.st.UseRecoveryCode(ctx, accountID, h[:])
	if err != nil {
		return "", false, fmt.Errorf("second factor: %w", err)
	}
	if used {
		s.log.Info("recovery code used", "account", accountID)
	}
	return "recovery-code", used, nil
}

// matchCode checks a 6-digit code against the app's secret for the steps
// around now, in constant time per step, and returns the step it matched.
// A step not later than the last one used never matches.
func (s *Service) matchCode(accountID string, f store.SecondFactor, code string) (int64, bool, error) {
	if s.box == nil {
		return 0, false, ErrNoSecretBox
	}
	if !isDigits(code, 6) {
		return 0, false, nil
	}
	secret, err := s.box.Open(sealLabel(accountID), f.Sealed)
	if err != nil {
		return 0, false, fmt.Errorf("second factor: open secret: %w", err)
	}
	defer clear(secret)
	now := s.now().Unix() / totpPeriod
	var match int64
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false, fmt.Errorf("second factor: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > f.LastStep {
			match = step
		}
	}
	return match, match != 0, nil
}

func sealLabel(accountID string) string { return "totp:" + accountID }

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// recoveryAlphabet leaves out letters people confuse (0/o, 1/l/i).
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCode makes a code of 10 characters from recoveryAlphabet
// (about 49 bits), shown as two groups of five.
func newRecoveryCode() string {
	b := make([]byte, 0, 11)
	for i := range 10 {
		if i == 5 {
			b = append(b, '-')
		}
		b = append(b, recoveryAlphabet[randIndex(len(recoveryAlphabet))])
	}
	return string(b)
}

// randIndex is a uniform random number in [0, n), by rejection.
func randIndex(n int) int {
	limit := 256 - 256%n
	var one [1]byte
	for {
		if _, err := rand.Read(one[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported systems
		}
		if int(one[0]) < limit {
			return int(one[0]) % n
		}
	}
}

// normalizeRecoveryCode accepts a code typed with other case, spaces or
// without its dash.
func normalizeRecoveryCode(c string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(c) {
		if strings.ContainsRune(recoveryAlphabet, r) {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if len(s) == 10 {
		s = s[:5] + "-" + s[5:]
	}
	return s
}
