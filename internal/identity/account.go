package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/store"
)

// dummyHash is verified against when an account or device does not exist,
// so a wrong name costs as much time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := credential.Hash(credential.NewSecret())
	if err != nil {
		return ""
	}
	return h
})

// dummyGeneratedHash is dummyHash for device ids: the fast hash of a
// generated secret nobody knows.
var dummyGeneratedHash = sync.OnceValue(func() string {
	return credential.HashGenerated(credential.NewSecret())
})

// SetupToken returns the one-time token that creates the first account,
// generating a fresh one if the hub has no account yet. It returns "" once
// setup is done. The token lives only in memory: a restart before setup
// prints a new one and the old one dies.
func (s *Service) SetupToken(ctx context.Context) (string, error) {
	n, err := s.st.CountAccounts(ctx)
	if err != nil {
		return "", fmt.Errorf("count accounts: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > 0 {
		s.accountsOK = true
		s.setupHash = nil
		return "", nil
	}
	tok, hash := credential.NewToken(setupTokenPrefix)
	s.setupHash = hash
	return tok, nil
}

// SetupNeeded reports whether the hub still waits for its first account.
func (s *Service) SetupNeeded(ctx context.Context) (bool, error) {
	s.mu.Lock()
	done := s.accountsOK
	s.mu.Unlock()
	if done {
		return false, nil
	}
	n, err := s.st.CountAccounts(ctx)
	if err != nil {
		return false, fmt.Errorf("count accounts: %w", err)
	}
	return n == 0, nil
}

// AccountDeleted tells the service an account is gone. When it was the
// last one, the hub waits for setup again: a restart prints a new
// one-time setup token (the token is a secret, so it is never logged).
func (s *Service) AccountDeleted(ctx context.Context) {
	n, err := s.st.CountAccounts(ctx)
	if err != nil || n > 0 {
		return
	}
	s.mu.Lock()
	s.accountsOK = false
	s.mu.Unlock()
	s.log.Warn("the last account was deleted; restart the hub to get a new setup token")
}

// NewAccount describes a person to add.
type NewAccount struct {
	HouseholdID string
	Username    string
	Password    string
	Role        store.Role
}

// Setup creates the first account (owner of the first household and hub
// admin) if token is the live setup token. The token then dies.
func (s *Service) Setup(ctx context.Context, token, householdName string, na NewAccount) (store.Account, error) {
	s.mu.Lock()
	live := s.setupHash
	s.mu.Unlock()
	if live == nil {
		if need, err := s.SetupNeeded(ctx); err == nil && !need {
			return store.Account{}, ErrSetupDone
		}
		return store.Account{}, ErrUnauthenticated
	}
	if !equalHash(credential.HashToken(token), live) {
		return store.Account{}, ErrUnauthenticated
	}
	if householdName == "" {
		householdName = "Home"
	}
	if err := checkName("household_name", householdName, 64); err != nil {
		return store.Account{}, err
	}
	acc, err := s.newAccount(ctx, na)
	if err != nil {
		// A concurrent Setup may have won meanwhile, taking this very
		// username: the answer is then that setup is done, not that the
		// name is taken.
		if need, nerr := s.SetupNeeded(ctx); nerr == nil && !need {
			return store.Account{}, ErrSetupDone
		}
		return store.Account{}, err
	}
	acc.Role = store.RoleOwner
	acc.Admin = true
	hh := store.Household{ID: credential.NewID("hh_"), Name: householdName, CreatedAt: s.now().UTC()}
	acc, err = s.st.CreateFirstAccount(ctx, hh, acc)
	if errors.Is(err, store.ErrConflict) {
		return store.Account{}, ErrSetupDone
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("create first account: %w", err)
	}
	s.mu.Lock()
	s.setupHash = nil
	s.accountsOK = true
	s.mu.Unlock()
	s.log.Info("setup completed; setup token destroyed", "account", acc.ID, "household", acc.HouseholdID)
	if err := s.record(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: acc.ID}, Action: auditlog.ActionAccountCreate,
		Household: acc.HouseholdID, Subject: auditlog.Subject{Account: acc.ID}, Detail: map[string]string{"via": "setup", "role": string(acc.Role), "admin": "true"}}); err != nil {
		return store.Account{}, err
	}
	return acc, nil
}

// CreateAccount adds a person to a household.
func (s *Service) CreateAccount(ctx context.Context, na NewAccount) (store.Account, error) {
	if na.Role != store.RoleOwner && na.Role != store.RoleMember {
		return store.Account{}, invalid("role: must be %q or %q", store.RoleOwner, store.RoleMember)
	}
	acc, err := s.newAccount(ctx, na)
	if err != nil {
		return store.Account{}, err
	}
	if err := s.st.CreateAccount(ctx, acc); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Account{}, invalid("username: %q is already taken", na.Username)
		}
		return store.Account{}, fmt.Errorf("create account: %w", err)
	}
	s.log.Info("account created", "account", acc.ID, "household", acc.HouseholdID, "role", acc.Role)
	if err := s.record(ctx, auditlog.Event{Action: auditlog.ActionAccountCreate, Household: acc.HouseholdID,
		Subject: auditlog.Subject{Account: acc.ID}, Detail: map[string]string{"role": string(acc.Role)}}); err != nil {
		return store.Account{}, err
	}
	return acc, nil
}

// CreateHousehold creates a new, empty household with its owner account.
func (s *Service) CreateHousehold(ctx context.Context, name string, owner NewAccount) (store.Household, store.Account, error) {
	if err := checkName("name", name, 64); err != nil {
		return store.Household{}, store.Account{}, err
	}
	owner.Role = store.RoleOwner
	acc, err := s.newAccount(ctx, owner)
	if err != nil {
		return store.Household{}, store.Account{}, err
	}
	hh := store.Household{ID: credential.NewID("hh_"), Name: name, CreatedAt: s.now().UTC()}
	acc.HouseholdID = hh.ID
	if err := s.st.CreateHouseholdWithOwner(ctx, hh, acc); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Household{}, store.Account{}, invalid("owner.username: %q is already taken", owner.Username)
		}
		return store.Household{}, store.Account{}, fmt.Errorf("create household: %w", err)
	}
	s.log.Info("household created", "household", hh.ID, "owner", acc.ID)
	if err := s.record(ctx, auditlog.Event{Action: auditlog.ActionHouseholdCreate, Household: hh.ID,
		Subject: auditlog.Subject{Account: acc.ID}}); err != nil {
		return store.Household{}, store.Account{}, err
	}
	return hh, acc, nil
}

// ConfirmPassword checks a person's password again before an action that
// cannot be undone (deleting their account).
func (s *Service) ConfirmPassword(ctx context.Context, accountID, password string) error {
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("confirm password: %w", err)
	}
	return s.checkOwnPassword(ctx, acc, "password", password)
}

// checkOwnPassword checks the password of a person who is already logged
// in. The checks are throttled per account, so a session left open cannot
// be used to guess the password; a refusal is an ErrInvalid error (for
// the field) wrapping a *ThrottledError.
func (s *Service) checkOwnPassword(ctx context.Context, acc store.Account, field, password string) error {
	att, err := s.reserve(ctx, checkConfirm, bucketRef{s.limits.confirms, acc.ID, ReasonAccount})
	if err != nil {
		if errors.Is(err, ErrTooManyAttempts) {
			return ErrInvalid.Errorf("%s: %w", field, err)
		}
		return err
	}
	ok, err := s.hasher.Verify(ctx, password, acc.PasswordHash)
	if err != nil {
		att.passed()
		return fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		att.failed()
		return invalid("%s: does not match", field)
	}
	att.passed()
	return nil
}

// SetRole changes a member's role. Only an owner of the same household
// may, and a household always keeps at least one owner: the last owner
// cannot step down.
func (s *Service) SetRole(ctx context.Context, actor store.Account, accountID string, role store.Role) (store.Account, error) {
	if role != store.RoleOwner && role != store.RoleMember {
		return store.Account{}, invalid("role: must be %q or %q", store.RoleOwner, store.RoleMember)
	}
	target, err := s.st.Account(ctx, accountID)
	if err != nil {
		return store.Account{}, fmt.Errorf("account %s: %w", accountID, store.ErrNotFound)
	}
	p := access.Person(actor, store.Session{})
	if err := p.See("account", accountID, target.HouseholdID); err != nil {
		return store.Account{}, err // someone else's household looks like nobody's
	}
	if !p.CanManage(target.HouseholdID) {
		return store.Account{}, fmt.Errorf("%w: only an owner of the household changes roles", ErrForbidden)
	}
	if target.Role == role {
		return target, nil
	}
	if target.Role == store.RoleOwner {
		owners, err := s.countOwners(ctx, target.HouseholdID)
		if err != nil {
			return store.Account{}, err
		}
		if owners <= 1 {
			return store.Account{}, invalid("role: %s is the household's only owner; make another member an owner first", target.Username)
		}
	}
	if err := s.st.SetAccountRole(ctx, target.ID, role); err != nil {
		return store.Account{}, fmt.Errorf("set role: %w", err)
	}
	s.log.Info("account role changed", "account", target.ID, "role", role)
	if err := s.record(ctx, auditlog.Event{Action: auditlog.ActionAccountRole, Household: target.HouseholdID,
		Subject: auditlog.Subject{Account: target.ID}, Detail: map[string]string{"from": string(target.Role), "to": string(role)}}); err != nil {
		return store.Account{}, err
	}
	target.Role = role
	return target, nil
}

func (s *Service) countOwners(ctx context.Context, householdID string) (int, error) {
	accs, err := s.st.Accounts(ctx, householdID)
	if err != nil {
		return 0, fmt.Errorf("list members: %w", err)
	}
	n := 0
	for _, a := range accs {
		if a.Role == store.RoleOwner {
			n++
		}
	}
	return n, nil
}

func (s *Service) checkNewAccount(ctx context.Context, na NewAccount) error {
	na.Username = NormalizeUsername(na.Username)
	if err := checkUsername(na.Username); err != nil {
		return err
	}
	if err := credential.CheckPassword(na.Username, na.Password); err != nil {
		return ErrInvalid.Errorf("password: %w", err)
	}
	if _, err := s.st.AccountByUsername(ctx, na.Username); err == nil {
		return invalid("username: %q is already taken", na.Username)
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("look up username: %w", err)
	}
	return nil
}

func (s *Service) newAccount(ctx context.Context, na NewAccount) (store.Account, error) {
	if err := s.checkNewAccount(ctx, na); err != nil {
		return store.Account{}, err
	}
	hash, err := s.hasher.Hash(ctx, na.Password)
	if err != nil {
		return store.Account{}, fmt.Errorf("hash password: %w", err)
	}
	na.Username = NormalizeUsername(na.Username)
	return store.Account{
		ID:           credential.NewID("acc_"),
		HouseholdID:  na.HouseholdID,
		Username:     na.Username,
		PasswordHash: hash,
		Role:         na.Role,
		CreatedAt:    s.now().UTC(),
	}, nil
}

// ChangePassword sets a new password after checking the current one, and
// ends every other session of the account.
func (s *Service) ChangePassword(ctx context.Context, accountID, current, next, keepSessionID string) error {
	acc, err := s.st.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if err := s.checkOwnPassword(ctx, acc, "current_password", current); err != nil {
		return err
	}
	if err := credential.CheckPassword(acc.Username, next); err != nil {
		return ErrInvalid.Errorf("new_password: %w", err)
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	if err := s.st.SetAccountPassword(ctx, accountID, hash); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	sessions, err := s.st.Sessions(ctx, accountID)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	for _, ss := range sessions {
		if ss.ID != keepSessionID {
			if err := s.st.DeleteSession(ctx, ss.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("end session %s: %w", ss.ID, err)
			}
		}
	}
	s.log.Info("password changed; other sessions ended", "account", accountID)
	return s.record(ctx, auditlog.Event{Action: "account.password.change", Household: acc.HouseholdID,
		Subject: auditlog.Subject{Account: accountID}})
}

func checkUsername(u string) error {
	if len(u) < 2 || len(u) > 64 {
		return invalid("username: must be 2-64 characters")
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@+", r)) {
			return invalid("username: may contain letters, digits and . _ - @ + only")
		}
	}
	return nil
}

// EnsureHousehold returns the oldest household, creating one with the
// given name if the hub has none yet (the operator or the demo may add
// devices before anyone has set the hub up; the first account then owns
// them).
func (s *Service) EnsureHousehold(ctx context.Context, name string) (string, error) {
	// Two first devices added at once must not create two households.
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	list, err := s.st.Households(ctx)
	if err != nil {
		return "", fmt.Errorf("list households: %w", err)
	}
	if len(list) > 0 {
		return list[0].ID, nil
	}
	hh := store.Household{ID: credential.NewID("hh_"), Name: name, CreatedAt: s.now().UTC()}
	if err := s.st.CreateHousehold(ctx, hh); err != nil {
		return "", fmt.Errorf("create household: %w", err)
	}
	return hh.ID, nil
}

// NormalizeUsername folds a username to lower case: "Alex" and "alex" are
// one person, so nobody can register a look-alike of an existing account.
func NormalizeUsername(u string) string { return strings.ToLower(strings.TrimSpace(u)) }
