// Package identity manages who may talk to the hub: devices with their own
// generated credentials, people with accounts in a household, their login
// sessions and API tokens, and the one-time setup token of a fresh hub.
//
// It serves clause 2C of the IoT Good Practice paper: there is no default
// password anywhere. Device secrets are generated per device and shown once;
// chosen passwords are refused when they are known IoT defaults or weak;
// the first account is created with a one-time token printed on the
// console. Secrets are stored only as slow hashes (argon2id) or, for
// high-entropy bearer tokens, as SHA-256.
package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/names"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Errors callers test with errors.Is.
var (
	// ErrUnauthenticated means the presented credential is wrong, unknown,
	// expired or revoked. It deliberately does not say which.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden means the caller is known but may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrSetupDone means the one-time setup was already completed.
	ErrSetupDone = errors.New("setup already completed")
	// ErrInvalid is the kind of input that breaks a rule; the detail
	// (ErrInvalid.Errorf) says which field and which rule.
	ErrInvalid = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-input", Text: "invalid input"}
	// ErrTooManyAttempts is wrapped by every refusal to check a credential
	// because too many attempts were made (a *ThrottledError says which
	// limit and for how long). Re-entering one's own password refuses
	// with an ErrInvalid error that wraps it.
	ErrTooManyAttempts = errors.New("too many wrong attempts; wait a few minutes")
)

// Store is the part of storage identity needs.
type Store interface {
	CreateFirstAccount(ctx context.Context, hh store.Household, acc store.Account) (store.Account, error)
	CreateHousehold(ctx context.Context, hh store.Household) error
	CreateHouseholdWithOwner(ctx context.Context, hh store.Household, owner store.Account) error
	Households(ctx context.Context) ([]store.Household, error)
	CreateAccount(ctx context.Context, acc store.Account) error
	Account(ctx context.Context, id string) (store.Account, error)
	AccountByUsername(ctx context.Context, username string) (store.Account, error)
	CountAccounts(ctx context.Context) (int, error)
	SetAccountPassword(ctx context.Context, id, hash string) error
	SetAccountRole(ctx context.Context, id string, role store.Role) error
	Accounts(ctx context.Context, householdID string) ([]store.Account, error)
	CreateDevice(ctx context.Context, d store.Device) error
	Device(ctx context.Context, id string) (store.Device, error)
	SetDeviceSecret(ctx context.Context, id, hash string, at time.Time) error
	// SetDeviceSecretOrigin keeps whether a person chose the secret, for
	// the audit (a chosen secret is weaker than a generated one).
	SetDeviceSecretOrigin(ctx context.Context, deviceID string, chosen bool, at time.Time) error
	RevokeDevice(ctx context.Context, id string, at time.Time) error
	CreateSession(ctx context.Context, s store.Session) error
	SessionByTokenHash(ctx context.Context, hash []byte) (store.Session, error)
	Sessions(ctx context.Context, accountID string) ([]store.Session, error)
	TouchSession(ctx context.Context, id string, at time.Time) error
	DeleteSession(ctx context.Context, id string) error
	// Second login factors (secondfactor.go).
	PutSecondFactor(ctx context.Context, f store.SecondFactor) error
	SecondFactor(ctx context.Context, accountID string) (store.SecondFactor, error)
	ConfirmSecondFactor(ctx context.Context, accountID string, step int64, at time.Time) error
	UseSecondFactorStep(ctx context.Context, accountID string, step int64) (bool, error)
	UseRecoveryCode(ctx context.Context, accountID string, hash []byte) (bool, error)
	DeleteSecondFactor(ctx context.Context, accountID string) error
	ResetSecondFactor(ctx context.Context, r store.SecondFactorReset) error
	TakeSecondFactorReset(ctx context.Context, accountID string) (store.SecondFactorReset, error)
}

// Session lifetimes. Browser logins expire a fixed time after login; API
// tokens live until revoked.
const (
	BrowserSessionTTL = 14 * 24 * time.Hour
	touchEvery        = time.Minute
)

// Token prefixes make leaked tokens recognisable to secret scanners.
const (
	SessionTokenPrefix = "cnds_"
	APITokenPrefix     = "cndt_"
	setupTokenPrefix   = "setup-"
)

// Service is the identity authority of one hub.
type Service struct {
	st     Store
	hasher hasher
	log    *slog.Logger
	now    func() time.Time

	mu         sync.Mutex
	setupHash  []byte // SHA-256 of the live setup token; nil when none
	onRevoke   []func(deviceID string)
	onSpent    []func(table, key string)
	verified   map[string]verifiedSecret // device id → the last secret that verified
	lastTouch  map[string]time.Time
	accountsOK bool // at least one account exists (setup is over)
	limits     limits
	audit      auditlog.Recorder
	ensureMu   sync.Mutex
	box        SecretBox
	challenges map[[32]byte]*challenge // logins waiting for a code; guarded by mu
	adminSF    bool                    // admins must have a second factor
}

// Options configure a Service.
type Options struct {
	Logger *slog.Logger
	// Log, when set, records accountable events (credential and account
	// changes). The actor comes from the context (auditlog.WithActor).
	Log auditlog.Recorder
	// Registerer, when set, gets the service's metrics.
	Registerer prometheus.Registerer
	// Box seals second-factor secrets at rest; without it the hub offers
	// no second factor.
	Box SecretBox
	// AdminSecondFactor, when set, makes an admin without a second
	// factor enrol one before doing anything else (see
	// AdminSecondFactorRequired).
	AdminSecondFactor bool
}

// record appends an event if an auditor is set. A failure is returned:
// the caller reports the action as failed to be logged.
func (s *Service) record(ctx context.Context, ev auditlog.Event) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("record %s in the transparency log: %w", ev.Action, err)
	}
	return nil
}

// New returns a Service over st.
func New(st Store, opts Options) *Service {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		st:        st,
		hasher:    credential.NewHasher(0),
		log:       log,
		audit:     opts.Log,
		box:       opts.Box,
		adminSF:   opts.AdminSecondFactor,
		now:       time.Now,
		verified:  make(map[string]verifiedSecret),
		lastTouch: make(map[string]time.Time),
	}
	s.limits = newLimits(func() time.Time { return s.now() })
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.limits.throttled)
	}
	return s
}

// hasher is the slow hash (argon2id) behind passwords and device secrets.
// Tests wrap it to count the checks that reach it.
type hasher interface {
	Hash(ctx context.Context, secret string) (string, error)
	Verify(ctx context.Context, secret, phc string) (bool, error)
}

// OnRevoke registers f to be called after a device's credential is revoked
// or rotated, so live connections using the old secret are cut at once.
func (s *Service) OnRevoke(f func(deviceID string)) {
	s.mu.Lock()
	s.onRevoke = append(s.onRevoke, f)
	s.mu.Unlock()
}

func (s *Service) notifyRevoked(id string) {
	s.mu.Lock()
	delete(s.verified, id)
	fs := append([]func(string){}, s.onRevoke...)
	s.mu.Unlock()
	for _, f := range fs {
		f(id)
	}
}

func invalid(format string, args ...any) error {
	return ErrInvalid.Errorf(format, args...)
}

// checkName validates a human-given name (device, household).
func checkName(field, v string, max int) error {
	if strings.TrimSpace(v) == "" {
		return invalid("%s: must not be empty", field)
	}
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max {
		return invalid("%s: must be valid text of at most %d characters", field, max)
	}
	// Invisible and direction-changing characters let a name pose as
	// another one on every page that shows it.
	if err := names.Check(v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, field, err)
	}
	return nil
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func equalHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// verifiedSecret remembers a device secret that passed the slow hash,
// bound to the stored hash it was checked against: once the stored hash
// changes (rotation) the entry no longer matches anything. The stored
// hash is kept as its SHA-256, not the PHC string itself: one entry is
// kept per device that logged in, and the string (about 100 bytes, its
// own allocation) cost more than the digest held in the map's slot.
type verifiedSecret struct {
	sum     [32]byte // SHA-256 of the secret
	hashSum [32]byte // SHA-256 of the PHC string it verified against
}
