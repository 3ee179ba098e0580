// Package store defines what Candor keeps durably and the interface every
// storage engine implements: households, accounts, devices, login sessions
// and the readings devices send.
//
// It serves clause 2B of the IoT Good Practice paper (people's data kept
// under their control) by being the single place data rests: an embedded
// SQLite file by default (package store/sqlite), a shared database for
// operators who outgrow one machine. Every engine passes the same suite in
// package store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors callers test with errors.Is.
var (
	// ErrNotFound means the addressed record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the write would break a uniqueness rule
	// (a name already taken, a first account that already exists).
	ErrConflict = errors.New("conflict")
)

// Role is what an account may do inside its household.
type Role string

// Roles of household members. An owner manages devices and members; a
// member sees the household's devices and readings but changes nothing
// that affects others.
const (
	RoleOwner  Role = "owner"
	RoleMember Role = "member"
)

// Household is the unit that owns devices. People are members of exactly
// one household; nobody outside it sees its devices or readings.
type Household struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Account is a person who can log in.
type Account struct {
	ID           string
	HouseholdID  string
	Username     string
	PasswordHash string // PHC-formatted slow hash; never the password
	Role         Role
	// Admin marks the hub operator (the account created with the
	// one-time setup token). It may create households.
	Admin     bool
	CreatedAt time.Time
}

// Device is one connected thing with its own credential.
type Device struct {
	ID          string // also its MQTT username and topic namespace
	HouseholdID string
	Name        string
	Type        string
	SecretHash  string // PHC-formatted slow hash of the device secret
	// CredentialSetAt is when the current secret was created or rotated.
	CredentialSetAt time.Time
	// RevokedAt is non-zero once the device's credential was revoked.
	RevokedAt time.Time
	CreatedAt time.Time
	Counters  DeviceCounters
}

// Revoked reports whether the device's credential was revoked.
func (d Device) Revoked() bool { return !d.RevokedAt.IsZero() }

// DeviceCounters are per-device tallies of refused actions, shown to the
// owner so misbehaviour is visible. They hold counts only, never contents.
type DeviceCounters struct {
	ACLDenied    int64 // publish or subscribe outside the device's namespace
	Refused      int64 // readings refused by the policy path (malformed, too large, …)
	AuthFailures int64 // connection attempts with a wrong secret
}

// Add returns the element-wise sum of c and o.
func (c DeviceCounters) Add(o DeviceCounters) DeviceCounters {
	return DeviceCounters{
		ACLDenied:    c.ACLDenied + o.ACLDenied,
		Refused:      c.Refused + o.Refused,
		AuthFailures: c.AuthFailures + o.AuthFailures,
	}
}

// SessionKind distinguishes browser logins from long-lived program tokens.
type SessionKind string

// Session kinds.
const (
	SessionBrowser SessionKind = "browser" // cookie login
	SessionToken   SessionKind = "token"   // bearer token for programs
)

// Session is a login (browser cookie) or an API token. Only a hash of the
// secret is stored.
type Session struct {
	ID         string
	AccountID  string
	Kind       SessionKind
	Name       string // label for tokens, user agent summary for logins
	TokenHash  []byte // SHA-256 of the bearer secret
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // zero means no expiry
}

// Reading is one accepted message from a device.
type Reading struct {
	Seq      int64 // assigned by the store, increasing
	DeviceID string
	Stream   string
	Time     time.Time // when the hub accepted it (UTC)
	Payload  []byte    // JSON document as stored (after manifest enforcement)
	// ManifestVersion is the version of the device type's manifest in
	// force when the reading was stored: what the owner was told about it.
	ManifestVersion int
}

// ManifestRecord is one version of a device type's data manifest.
type ManifestRecord struct {
	DeviceType string
	Version    int // assigned by the store: 1, 2, … per device type
	Doc        []byte
	// Draft manifests (imported, not yet confirmed by an owner) are kept
	// but never enforced.
	Draft     bool
	CreatedAt time.Time
}

// ViolationCount tallies readings refused for breaking their manifest, by
// device, stream, field and reason. It names where, never what.
type ViolationCount struct {
	DeviceID string
	Stream   string
	Field    string
	Reason   string
	Count    int64
	LastAt   time.Time
}

// ReadingQuery selects readings of one device. Zero fields do not filter.
type ReadingQuery struct {
	DeviceID string // required
	Stream   string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	AfterSeq int64     // cursor: only readings with Seq > AfterSeq
	Limit    int       // 0 means the engine's default (1000)
}

// Store is what a storage engine provides. Implementations are safe for
// concurrent use.
type Store interface {
	// CreateFirstAccount atomically creates the hub's first account. If no
	// household exists yet hh is created; otherwise the account joins the
	// oldest household (which the demo may have created before anyone set
	// up the hub). It returns ErrConflict if any account already exists.
	CreateFirstAccount(ctx context.Context, hh Household, acc Account) (Account, error)
	CreateHousehold(ctx context.Context, hh Household) error
	// CreateHouseholdWithOwner atomically creates a household and its
	// owner's account (owner.HouseholdID is set to hh.ID).
	CreateHouseholdWithOwner(ctx context.Context, hh Household, owner Account) error
	Household(ctx context.Context, id string) (Household, error)
	Households(ctx context.Context) ([]Household, error)

	CreateAccount(ctx context.Context, acc Account) error
	Account(ctx context.Context, id string) (Account, error)
	AccountByUsername(ctx context.Context, username string) (Account, error)
	Accounts(ctx context.Context, householdID string) ([]Account, error)
	CountAccounts(ctx context.Context) (int, error)
	SetAccountPassword(ctx context.Context, id, hash string) error
	// DeleteAccount removes the account and its sessions.
	DeleteAccount(ctx context.Context, id string) error

	CreateDevice(ctx context.Context, d Device) error
	Device(ctx context.Context, id string) (Device, error)
	Devices(ctx context.Context, householdID string) ([]Device, error)
	// AllDevices lists devices of every household (for the operator and
	// the broker's start-up).
	AllDevices(ctx context.Context) ([]Device, error)
	SetDeviceSecret(ctx context.Context, id, hash string, at time.Time) error
	RevokeDevice(ctx context.Context, id string, at time.Time) error
	// AddDeviceCounters adds the given deltas to each device's counters.
	// Unknown device ids are ignored.
	AddDeviceCounters(ctx context.Context, deltas map[string]DeviceCounters) error

	CreateSession(ctx context.Context, s Session) error
	SessionByTokenHash(ctx context.Context, hash []byte) (Session, error)
	Sessions(ctx context.Context, accountID string) ([]Session, error)
	TouchSession(ctx context.Context, id string, at time.Time) error
	DeleteSession(ctx context.Context, id string) error

	// AppendReadings stores all readings in one durable transaction: when
	// it returns nil every reading is on disk; on error none is. It sets
	// Seq on each element.
	AppendReadings(ctx context.Context, rs []Reading) error
	Readings(ctx context.Context, q ReadingQuery) ([]Reading, error)
	CountReadings(ctx context.Context, deviceID string) (int64, error)

	// PutManifest stores a new version of a device type's manifest and
	// returns it with its assigned version number.
	PutManifest(ctx context.Context, rec ManifestRecord) (ManifestRecord, error)
	// ManifestVersions lists every version of one device type's manifest,
	// oldest first (ErrNotFound when there is none).
	ManifestVersions(ctx context.Context, deviceType string) ([]ManifestRecord, error)
	// Manifests lists every version of every manifest, by type then version.
	Manifests(ctx context.Context) ([]ManifestRecord, error)

	// AddViolations adds counts, creating rows as needed; LastAt keeps the
	// latest time.
	AddViolations(ctx context.Context, vs []ViolationCount) error
	Violations(ctx context.Context, deviceID string) ([]ViolationCount, error)

	// Ping reports whether the store can serve requests (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}
