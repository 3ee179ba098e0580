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
	"unicode/utf8"
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
	// KeyOwner is the account whose data keys seal the device's readings:
	// the person who added it. Empty for a device added before anyone had
	// an account (the demo, the operator's CLI): its readings are the
	// household's as a whole. Fixed at creation, so every reading of a
	// device is sealed under one owner's keys.
	KeyOwner string
}

// KeyOwnerID is the vault key owner of the device's readings: its
// KeyOwner account, or else its household.
func (d Device) KeyOwnerID() string {
	if d.KeyOwner != "" {
		return d.KeyOwner
	}
	return d.HouseholdID
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

// A device chooses the field names it sends, so the names it is refused
// for are bounded: at most MaxViolationRows distinct (stream, field,
// reason) rows per device, each field name at most MaxViolationField
// bytes. Later new names are counted in one row with the reason
// ViolationOverflow (stream and field empty). Otherwise one device could
// fill the disk with rows, or store values disguised as field names.
const (
	MaxViolationRows  = 32
	MaxViolationField = 64
	ViolationOverflow = "other_names"
)

// ClipViolationField shortens a field name to at most MaxViolationField
// bytes, on a character boundary, marking the cut with "…".
func ClipViolationField(f string) string {
	if len(f) <= MaxViolationField {
		return f
	}
	const mark = "…"
	cut := MaxViolationField - len(mark)
	for cut > 0 && !utf8.RuneStart(f[cut]) {
		cut--
	}
	return f[:cut] + mark
}

// MergeViolations returns a device's violation rows as the store will
// hold them once pending counts are written (AddViolations): stored are
// the device's rows (all of them, as Violations lists them), pending the
// counts not yet written, in the order they will be written. A pending
// name already stored adds to its row; a new one gets a row while the
// device has fewer than MaxViolationRows named rows, and goes to the
// overflow row (stream and field empty) after that. Rows keep the order
// in which they first appear.
func MergeViolations(stored, pending []ViolationCount) []ViolationCount {
	type key struct{ stream, field, reason string }
	at := map[key]int{}
	var out []ViolationCount
	named := 0
	add := func(k key, v ViolationCount) {
		if i, ok := at[k]; ok {
			out[i].Count += v.Count
			if v.LastAt.After(out[i].LastAt) {
				out[i].LastAt = v.LastAt
			}
			return
		}
		if k.reason != ViolationOverflow {
			named++
		}
		at[k] = len(out)
		out = append(out, ViolationCount{DeviceID: v.DeviceID, Stream: k.stream, Field: k.field, Reason: k.reason, Count: v.Count, LastAt: v.LastAt})
	}
	for _, v := range stored {
		add(key{v.Stream, v.Field, v.Reason}, v)
	}
	for _, v := range pending {
		k := key{v.Stream, ClipViolationField(v.Field), v.Reason}
		if _, ok := at[k]; !ok && k.reason != ViolationOverflow && named >= MaxViolationRows {
			k = key{reason: ViolationOverflow}
		}
		add(k, v)
	}
	return out
}

// ReadingQuery selects readings of one device. Zero fields do not filter.
type ReadingQuery struct {
	DeviceID string // required
	Stream   string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	AfterSeq int64     // cursor: only readings with Seq > AfterSeq
	Limit    int       // 0 means the engine's default (1000)
	// ManifestVersion, when not 0, selects only readings stored under
	// that version of the device type's manifest.
	ManifestVersion int
}

// --- consent -------------------------------------------------
//
// Consent is kept in two forms: an append-only log of consent records
// (the evidence: each is the exact document a receipt is signed over) and
// the current decisions derived from it (what the hub enforces). Both are
// written in one transaction, so the log and the state never disagree.
// Neither refers to accounts or devices by foreign key: a record must
// outlive the account and device it names.

// ConsentRecord is one entry of the append-only consent log. Records are
// never updated.
type ConsentRecord struct {
	ID        string // caller-chosen, unique
	Seq       int64  // assigned by the store, increasing in append order
	AccountID string // the person who decided
	DeviceID  string
	Stream    string
	Purpose   string // purpose term; "" for a routing record
	Recipient string // "hub" or a recipient name from the manifest
	CreatedAt time.Time
	// Doc is the record document, kept byte for byte: receipts are signed
	// over exactly these bytes.
	Doc []byte
}

// ConsentDecision is the current on/off state of one use of a stream: a
// purpose for a recipient. AccountID, RecordID and DecidedAt come from the
// record that made the decision.
type ConsentDecision struct {
	DeviceID  string
	Stream    string
	Purpose   string
	Recipient string
	On        bool
	AccountID string
	RecordID  string
	DecidedAt time.Time
}

// ConsentRouting is where one stream's data goes on the hub: kept or not,
// and for how long. AccountID, RecordID and DecidedAt come from the record
// that set it.
type ConsentRouting struct {
	DeviceID  string
	Stream    string
	KeepOnHub bool
	Retention string // ISO 8601 duration; "" means the manifest's
	AccountID string
	RecordID  string
	DecidedAt time.Time
}

// ConsentRecordQuery selects consent records. Zero fields do not filter.
type ConsentRecordQuery struct {
	AccountID string
	DeviceID  string
	AfterSeq  int64 // cursor: only records with Seq > AfterSeq
	Limit     int   // 0 means all
}

// ConsentStore is the consent part of Store. Every engine implements it;
// package consent needs only this part.
type ConsentStore interface {
	// RecordConsentDecision appends rec to the consent log and sets the
	// decision it makes, in one transaction: on error neither is stored.
	// d must name the same device, stream, purpose and recipient as rec;
	// its AccountID, RecordID and DecidedAt are taken from rec. A taken
	// record id is ErrConflict.
	RecordConsentDecision(ctx context.Context, rec ConsentRecord, d ConsentDecision) error
	// RecordConsentRouting appends rec to the consent log and sets the
	// stream routing it makes, in one transaction, like
	// RecordConsentDecision. r must name the same device and stream as rec.
	RecordConsentRouting(ctx context.Context, rec ConsentRecord, r ConsentRouting) error
	// ConsentRecord returns one record (ErrNotFound when there is none).
	ConsentRecord(ctx context.Context, id string) (ConsentRecord, error)
	// ConsentRecords lists records in append order (oldest first).
	ConsentRecords(ctx context.Context, q ConsentRecordQuery) ([]ConsentRecord, error)
	// ConsentDecisions lists a device's current decisions; "" lists every
	// device's.
	ConsentDecisions(ctx context.Context, deviceID string) ([]ConsentDecision, error)
	// ConsentRoutings lists a device's stream routings; "" lists every
	// device's.
	ConsentRoutings(ctx context.Context, deviceID string) ([]ConsentRouting, error)
	// AddConsentRequest stores a request; a taken id is ErrConflict.
	AddConsentRequest(ctx context.Context, r ConsentRequest) error
	// ConsentRequests lists the open requests about a household's
	// devices, oldest first.
	ConsentRequests(ctx context.Context, householdID string) ([]ConsentRequest, error)
	// CloseConsentRequests removes the open requests about one use of a
	// stream (purpose "" with recipient "" names the stream's routing),
	// once someone who decides has made a choice about it.
	CloseConsentRequests(ctx context.Context, deviceID, stream, purpose, recipient string) error
}

// ConsentRequest is a person's request that whoever decides for a device
// turn one use of a stream on or off. It carries ids only, like the
// consent log; it decides nothing.
type ConsentRequest struct {
	ID          string
	HouseholdID string
	DeviceID    string
	AccountID   string // who asks
	Stream      string
	Purpose     string
	Recipient   string
	On          bool
	CreatedAt   time.Time
}

// --- end consent -----------------------------------------------------------

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
	// it returns nil every reading is on disk; on error none is, except
	// for a *RefusedReadingsError, which lists the only readings not
	// stored (an engine limit reached, e.g. by one device) while the rest
	// are on disk. It sets Seq on each element stored.
	AppendReadings(ctx context.Context, rs []Reading) error
	Readings(ctx context.Context, q ReadingQuery) ([]Reading, error)
	// DeleteReadings removes readings of q.DeviceID matching q's Stream,
	// Since and Until (AfterSeq is ignored), at most limit rows per call
	// (limit ≤ 0: all), in one transaction, and reports how many it
	// removed. Callers delete big ranges in bounded chunks.
	DeleteReadings(ctx context.Context, q ReadingQuery, limit int) (int64, error)
	CountReadings(ctx context.Context, deviceID string) (int64, error)
	// StreamCounts returns how many readings of the device each stream
	// has with a time before until (the zero time: all), without reading
	// them: streams without such readings are absent.
	StreamCounts(ctx context.Context, deviceID string, until time.Time) (map[string]int64, error)

	// PutManifest stores a new version of a device type's manifest and
	// returns it with its assigned version number.
	PutManifest(ctx context.Context, rec ManifestRecord) (ManifestRecord, error)
	// ManifestVersions lists every version of one device type's manifest,
	// oldest first (ErrNotFound when there is none).
	ManifestVersions(ctx context.Context, deviceType string) ([]ManifestRecord, error)
	// Manifests lists every version of every manifest, by type then version.
	Manifests(ctx context.Context) ([]ManifestRecord, error)

	// AddViolations adds counts, creating rows as needed; LastAt keeps the
	// latest time. Field names are clipped (ClipViolationField), and a
	// device's counts beyond MaxViolationRows distinct rows go to its
	// ViolationOverflow row.
	AddViolations(ctx context.Context, vs []ViolationCount) error
	// Violations lists up to limit of a device's violation counts, most
	// recent first, and how many rows the device has in all (limit <= 0:
	// all of them).
	Violations(ctx context.Context, deviceID string, limit int) ([]ViolationCount, int, error)

	// --- consent ---
	// The consent log and the current decisions; see ConsentStore.
	ConsentStore
	// --- end consent ---

	// --- Vault keys (encryption at rest) -----------------------
	// The wrapped data keys of package vault; see KeyStore below.
	KeyStore
	// --- end of vault keys ----------------------------------------------

	// --- erasure and unlinking; see ErasureStore ---
	ErasureStore
	// --- forwarding to recipients; see RecipientStore ---
	RecipientStore
	// Firmware versions, advisories and the hub's operator; see
	// LifecycleStore.
	LifecycleStore
	// --- abuse monitoring: quarantines and alert choices; see MonitorStore ---
	MonitorStore
	// --- audit findings and signed assessments; see AssessStore ---
	AssessStore
	// --- second login factors; see SecondFactorStore ---
	SecondFactorStore
	SecondFactorResetStore

	// Ping reports whether the store can serve requests (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// --- Vault keys (encryption at rest) ---------------------------
//
// Package vault seals every stored reading under a data key of its key
// owner (an account, or a household that has no account yet). The store
// keeps only the wrapped form of those keys (age-encrypted to the person's
// recipient and, in hub-assisted mode, to the hub's own key), never a key in
// plain form. Destroying an owner's key rows makes all of that owner's
// readings unreadable at once (crypto-shredding); the readings themselves are
// removed later, at leisure.

// ErrShredded means the key owner's keys were destroyed (ShredOwner). It is
// final: a shredded owner takes no new keys and no new settings.
var ErrShredded = errors.New("keys shredded")

// ErrKeyRemnants means keys were deleted from the database, but copies of
// their pages may remain in the engine's own files (SQLite's write-ahead
// log) because the engine could not overwrite them yet: the deletion
// committed, the promise that nothing of the keys is left on disk is not
// kept yet. ShredOwner wraps it when it cannot clear those copies.
var ErrKeyRemnants = errors.New("copies of deleted keys may remain in the storage engine's log")

// KeyMode says who can unwrap a key owner's data keys.
type KeyMode string

// Key modes.
const (
	// KeyModeHubAssisted keys are wrapped to the hub's key (and to the
	// person's recipient, if they have one): the hub can read history.
	KeyModeHubAssisted KeyMode = "hub-assisted"
	// KeyModeUserHeld keys are wrapped to the person's recipient only: the
	// hub cannot read stored history.
	KeyModeUserHeld KeyMode = "user-held"
)

// KeyOwner is the encryption setting of one key owner.
type KeyOwner struct {
	OwnerID string // acc_… or hh_…
	// Mode is empty only for an owner that was shredded before it was
	// ever enrolled.
	Mode KeyMode
	// Recipient is the person's age X25519 recipient ("age1…"). Empty in
	// hub-assisted mode for an owner without a person (a household that
	// has no account yet), and after shredding.
	Recipient  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ShreddedAt time.Time // non-zero once the owner's keys were destroyed
}

// Shredded reports whether the owner's keys were destroyed.
func (o KeyOwner) Shredded() bool { return !o.ShreddedAt.IsZero() }

// KeyRecord is one wrapped data key of a key owner.
type KeyRecord struct {
	OwnerID string
	KeyID   string // opaque, unique per owner
	// Mode and Recipient say to whom Wrapped is encrypted: in
	// hub-assisted mode to the hub's key and Recipient (if any), in
	// user-held mode to Recipient only.
	Mode      KeyMode
	Recipient string
	Wrapped   []byte // an age file; never the key itself
	CreatedAt time.Time
	// RetiredAt is non-zero once no new data is sealed under the key. The
	// key stays, so history sealed under it can still be opened.
	RetiredAt time.Time
}

// KeyStore keeps key owners and their wrapped data keys. Every Store
// implements it; package vault needs only this part.
type KeyStore interface {
	// SetKeyOwner creates or updates an owner's settings (CreatedAt is
	// kept from the first call) and, in the same transaction, replaces
	// Mode, Recipient and Wrapped of each given key of that owner (a
	// rewrap after a change of mode or recipient). It fails with
	// ErrShredded for a shredded owner and ErrNotFound when a rewrapped
	// key does not exist.
	SetKeyOwner(ctx context.Context, o KeyOwner, rewrapped ...KeyRecord) error
	// KeyOwner returns one owner (ErrNotFound if it never existed).
	KeyOwner(ctx context.Context, ownerID string) (KeyOwner, error)
	// KeyOwners lists every owner, shredded ones included.
	KeyOwners(ctx context.Context) ([]KeyOwner, error)
	// PutKey stores a new key. Unless rec.RetiredAt is set, every other
	// key of the owner that is not yet retired is retired at
	// rec.CreatedAt: an owner has at most one key in use. It fails with
	// ErrNotFound for an unknown owner, ErrShredded for a shredded one and
	// ErrConflict when the owner already has a key with that id.
	PutKey(ctx context.Context, rec KeyRecord) error
	// Keys lists an owner's keys, oldest first (empty for an unknown or
	// shredded owner).
	Keys(ctx context.Context, ownerID string) ([]KeyRecord, error)
	// ShredOwner destroys every key of the owner in one statement, whose
	// cost depends on the number of keys, not of readings, and marks the
	// owner shredded (creating the mark if the owner is unknown, so it
	// can never be enrolled later). Engines should also overwrite the
	// deleted bytes where they can; when the keys are deleted but an
	// engine's log may still hold copies, the error wraps ErrKeyRemnants
	// (the deletion itself stands). Shredding again is a no-op for the
	// keys and tries to clear such copies again.
	ShredOwner(ctx context.Context, ownerID string, at time.Time) error
}

// --- end of vault keys ----------------------------------------------------

// --- erasure and unlinking --------------------------------------
//
// Account deletion and unlinking remove devices and readings. Removing a
// device row, its consent state and its violation counts is quick and
// happens at once; removing its readings can take long (a million rows),
// so it is queued as a Purge and done in bounded chunks in the background.
// By then the readings are already unreadable: their keys were shredded,
// or (unlinking) they were replaced by anonymised aggregates.

// Purge is pending background removal of one device's readings. It is
// durable: a purge interrupted by a crash resumes at the next start.
type Purge struct {
	DeviceID string
	// UntilSeq bounds what is removed: readings with Seq ≤ UntilSeq, or
	// all of the device's readings (ever, including late ones) when 0.
	UntilSeq    int64
	Reason      string // why, for the operator: "account deleted", "unlinked"
	RequestedAt time.Time
}

// Aggregate is one anonymised hourly cell kept when a person unlinks
// their history: how many readings of one field of one stream of one
// device type fell in one UTC hour and their sum (mean = Sum/Count). It
// names no device, household or person.
type Aggregate struct {
	DeviceType string
	Stream     string
	Field      string
	Hour       time.Time // UTC, truncated to the hour
	Count      int64
	Sum        float64
}

// AggregateQuery selects aggregates. Zero fields do not filter.
type AggregateQuery struct {
	DeviceType string
	Stream     string
	Since      time.Time // inclusive, on Hour
	Until      time.Time // exclusive, on Hour
	Limit      int       // 0 means the engine's default (10000)
}

// Erasure is one atomic change of erasure and unlinking.
type Erasure struct {
	// DeleteDevices are removed with their consent decisions, routings
	// and violation counts (consent records stay: they are evidence). Each
	// gets a Purge of all its readings.
	DeleteDevices []string
	// Purges are added for devices that stay (unlinking). A device that
	// already has a pending purge keeps the wider of the two.
	Purges []Purge
	// Aggregates are added to the kept cells (Count and Sum summed).
	Aggregates []Aggregate
	Reason     string
	At         time.Time
}

// ErasureStore is the erasure part of Store.
type ErasureStore interface {
	// Erase applies e in one transaction: on error nothing changed.
	Erase(ctx context.Context, e Erasure) error
	// Purges lists pending purges, oldest first.
	Purges(ctx context.Context) ([]Purge, error)
	// PurgeReadings removes at most limit readings of p (limit ≤ 0: all)
	// in one transaction and reports how many it removed.
	PurgeReadings(ctx context.Context, p Purge, limit int) (int64, error)
	// FinishPurge drops p from the queue, unless a wider purge of the same
	// device replaced it meanwhile.
	FinishPurge(ctx context.Context, p Purge) error
	// Aggregates lists kept cells by type, stream, field and hour.
	Aggregates(ctx context.Context, q AggregateQuery) ([]Aggregate, error)
	// SetAccountRole changes an account's role in its household.
	SetAccountRole(ctx context.Context, id string, role Role) error
	// DeleteHousehold removes a household that has no accounts and no
	// devices left (ErrConflict otherwise).
	DeleteHousehold(ctx context.Context, id string) error
}

// --- end of erasure and unlinking ----------------------------------------

// RecipientEndpoint is where a household sends the readings its people
// agreed to share with one recipient named in a manifest.
type RecipientEndpoint struct {
	HouseholdID string
	Recipient   string // the recipient's name as the manifest gives it
	URL         string // https (or http to a loopback address)
	CreatedAt   time.Time
}

// RecipientStore keeps recipient endpoints.
type RecipientStore interface {
	// PutRecipientEndpoint creates or replaces the household's endpoint
	// for e.Recipient.
	PutRecipientEndpoint(ctx context.Context, e RecipientEndpoint) error
	// DeleteRecipientEndpoint removes it (ErrNotFound when there is none).
	DeleteRecipientEndpoint(ctx context.Context, householdID, recipient string) error
	// RecipientEndpoints lists a household's endpoints; "" lists all.
	RecipientEndpoints(ctx context.Context, householdID string) ([]RecipientEndpoint, error)
}

// Quarantine is a device held back by the abuse monitor until a person
// releases it. It records what was seen (a detector kind and its
// numbers), never reading values.
type Quarantine struct {
	DeviceID string
	Kind     string // the monitor's detector kind, e.g. "declared_rate"
	Stream   string // the stream concerned, if any
	Severity string // "info", "warning" or "critical"
	Observed float64
	Limit    float64
	// RateLimited marks a lighter hold: publishes above a token bucket
	// are refused, the rest still flow.
	RateLimited bool
	// Rate is the publishes per second a rate limit lets through (twice
	// the declared rate), kept so that another hub node, or this one
	// after a restart, limits the device as the node that decided did.
	// 0: not known (a hold kept before this field): one a second.
	Rate  float64
	Since time.Time
	// Advisory is the advisory a hold until fixed waits for. An alarm's
	// quarantine that joins such a hold keeps it, so the hold ends only
	// when both reasons are gone.
	Advisory string
}

// AlertPrefs is one person's choice of which alarms about their
// household's devices reach them outside the hub.
type AlertPrefs struct {
	AccountID   string
	MinSeverity string // "info", "warning", "critical"; "" sends nothing
	Email       string // "" for no e-mail
}

// MonitorWindow is what the abuse monitor counted about one device in one
// window: counts and sizes only, never reading values. It is kept so the
// owner can see recent behaviour, and purged after a set time (30 days by
// default).
type MonitorWindow struct {
	DeviceID string
	Start    time.Time // the window's start
	Length   time.Duration
	Readings int64 // readings seen, on declared streams
	Bytes    int64 // their payload bytes in total
	MaxBytes int64 // the largest of them
	// Refused counts readings refused as undeclared and publishes held
	// back by a quarantine or rate limit.
	Refused      int64
	WrongSecrets int64 // logins with a wrong secret for this device
	Probes       int64 // publishes and subscriptions outside its namespace
	Connects     int64 // accepted connections
}

// MonitorStore keeps the abuse monitor's quarantines, people's alert
// choices and the monitor's per-window counts.
type MonitorStore interface {
	// AddMonitorWindows stores windows, adding to the counts of a window
	// already stored for the same device and start. Windows of devices
	// that no longer exist are skipped: a device may be erased while its
	// last counts are on their way.
	AddMonitorWindows(ctx context.Context, ws []MonitorWindow) error
	// MonitorWindows lists a device's windows that start at or after
	// since, oldest first.
	MonitorWindows(ctx context.Context, deviceID string, since time.Time) ([]MonitorWindow, error)
	// PurgeMonitorWindows deletes every window that started before
	// before, returning how many.
	PurgeMonitorWindows(ctx context.Context, before time.Time) (int64, error)
	// PutMonitorActions replaces the admin's choice of action per alarm
	// severity (severity name → action name).
	PutMonitorActions(ctx context.Context, actions map[string]string) error
	// MonitorActions returns it; empty when the admin never chose.
	MonitorActions(ctx context.Context) (map[string]string, error)
	// PutQuarantine creates or replaces the hold on q.DeviceID
	// (ErrNotFound when the device does not exist).
	PutQuarantine(ctx context.Context, q Quarantine) error
	// DeleteQuarantine lifts it (ErrNotFound when there is none).
	DeleteQuarantine(ctx context.Context, deviceID string) error
	// Quarantines lists every hold, by device id.
	Quarantines(ctx context.Context) ([]Quarantine, error)
	// PutAlertPrefs creates or replaces an account's alert choices
	// (ErrNotFound when the account does not exist).
	PutAlertPrefs(ctx context.Context, p AlertPrefs) error
	// AlertPrefs returns the choices of every account of a household
	// that made one, by account id.
	AlertPrefs(ctx context.Context, householdID string) ([]AlertPrefs, error)
}
