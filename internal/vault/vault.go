package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/store"
)

// Mode says who can unwrap a key owner's data keys.
type Mode = store.KeyMode

// The two modes. See the package documentation for exactly what the hub
// can read in each.
const (
	HubAssisted Mode = store.KeyModeHubAssisted
	UserHeld    Mode = store.KeyModeUserHeld
)

// Epoch bounds how long one epoch key is used for sealing. Zero fields
// take the default of the mode.
type Epoch struct {
	// Readings is the most readings sealed under one epoch key.
	Readings uint64
	// Duration is the longest an epoch key is kept, counted from the
	// epoch's first reading: a timer erases the key then, whether or not
	// more readings come (on a busy machine the timer may run late by the
	// scheduling delay).
	Duration time.Duration
}

// Defaults.
var (
	// DefaultUserHeldEpoch bounds what the hub can read of a user-held
	// owner's data: the readings of the current epoch only.
	DefaultUserHeldEpoch = Epoch{Readings: 10_000, Duration: time.Minute}
	// DefaultHubAssistedEpoch: the hub can read all history of a
	// hub-assisted owner anyway, so epochs end only by count.
	DefaultHubAssistedEpoch = Epoch{Readings: maxEpochReadings}
)

// maxEpochReadings caps the readings under one AES-GCM key at 2^32, well
// inside what deterministic nonces allow.
const maxEpochReadings = 1 << 32

// Options configure a Vault.
type Options struct {
	// Hub is the hub's own age identity, to which hub-assisted data keys
	// are wrapped (see LoadOrCreateHubIdentity). Without it no owner can
	// be hub-assisted and stored hub-assisted keys are ErrLocked.
	Hub *age.X25519Identity
	// UserHeldEpoch and HubAssistedEpoch override the defaults.
	UserHeldEpoch    Epoch
	HubAssistedEpoch Epoch
	// KeyWriteTimeout bounds the store write when Seal must create a data
	// key itself (the first reading of an owner after start-up when
	// Prepare was not called). Default 10s.
	KeyWriteTimeout time.Duration
}

// Vault seals and opens readings under per-owner data keys. It is safe for
// concurrent use. Use one Vault per store: data keys it creates are used
// for sealing by this Vault only.
type Vault struct {
	st           store.KeyStore
	hub          *age.X25519Identity
	hubRecipient *age.X25519Recipient
	userEpoch    Epoch
	hubEpoch     Epoch
	writeTimeout time.Duration

	mu     sync.Mutex // serialises changes to the owners map
	owners atomic.Pointer[map[string]*owner]
	closed atomic.Bool
	shared atomic.Bool // other Vaults write to st (see ShareStore)
}

// owner is the in-memory state of one key owner.
type owner struct {
	id string

	mu        sync.Mutex // guards everything below, and chain.rec
	enrolled  bool
	shredded  bool
	mode      Mode
	recipient string
	recip     *age.X25519Recipient // nil when recipient is empty
	createdAt time.Time
	chains    map[KeyID]*chain
	live      *live // the sealing state; nil until a key is in use
}

// chain is one data key of an owner.
type chain struct {
	id  KeyID
	rec store.KeyRecord // guarded by owner.mu

	mu sync.Mutex // guards the fields below
	// hubWrapped is the wrapped key when it is wrapped to the hub, nil
	// otherwise: the single source of truth for "the hub may read this".
	hubWrapped []byte
	hub        *deriver // hub's unwrapped chain, once needed
	shredded   bool
}

// New loads every key owner and wrapped key from st. It unwraps nothing
// yet: hub-assisted keys are unwrapped on first use.
func New(ctx context.Context, st store.KeyStore, opts Options) (*Vault, error) {
	v := &Vault{
		st:           st,
		hub:          opts.Hub,
		userEpoch:    withDefaults(opts.UserHeldEpoch, DefaultUserHeldEpoch),
		hubEpoch:     withDefaults(opts.HubAssistedEpoch, DefaultHubAssistedEpoch),
		writeTimeout: opts.KeyWriteTimeout,
	}
	if v.writeTimeout <= 0 {
		v.writeTimeout = 10 * time.Second
	}
	if v.hub != nil {
		v.hubRecipient = v.hub.Recipient()
	}
	owners, err := st.KeyOwners(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault: load owners: %w", err)
	}
	m := make(map[string]*owner, len(owners))
	for _, ko := range owners {
		o := &owner{id: ko.OwnerID, chains: map[KeyID]*chain{}, createdAt: ko.CreatedAt}
		m[o.id] = o
		if ko.Shredded() {
			o.shredded = true
			continue
		}
		o.enrolled = true
		o.mode = ko.Mode
		if err := o.setRecipient(ko.Recipient); err != nil {
			return nil, fmt.Errorf("vault: owner %q: %w", o.id, err)
		}
		keys, err := st.Keys(ctx, o.id)
		if err != nil {
			return nil, fmt.Errorf("vault: load keys of %q: %w", o.id, err)
		}
		for _, k := range keys {
			id, err := ParseKeyID(k.KeyID)
			if err != nil {
				return nil, fmt.Errorf("vault: owner %q: %w", o.id, err)
			}
			c := &chain{id: id, rec: k}
			if k.Mode == HubAssisted {
				c.hubWrapped = k.Wrapped
			}
			o.chains[id] = c
		}
	}
	v.owners.Store(&m)
	return v, nil
}

func withDefaults(e, d Epoch) Epoch {
	if e.Readings == 0 {
		e.Readings = d.Readings
	}
	if e.Readings > maxEpochReadings {
		e.Readings = maxEpochReadings
	}
	if e.Duration == 0 {
		e.Duration = d.Duration
	}
	return e
}

// Close erases every key the vault holds in memory and stops its timers.
// Seal and Open fail with ErrClosed afterwards.
func (v *Vault) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	for _, o := range *v.owners.Load() {
		o.mu.Lock()
		o.eraseLocked()
		o.mu.Unlock()
	}
	return nil
}

// lookup returns the owner or nil.
func (v *Vault) lookup(id string) *owner { return (*v.owners.Load())[id] }

// lookupOrAdd returns the owner, adding an empty (not enrolled) one.
func (v *Vault) lookupOrAdd(id string) *owner {
	if o := v.lookup(id); o != nil {
		return o
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.owners.Load()
	if o := old[id]; o != nil {
		return o
	}
	m := make(map[string]*owner, len(old)+1)
	for k, o := range old {
		m[k] = o
	}
	o := &owner{id: id, chains: map[KeyID]*chain{}}
	m[id] = o
	v.owners.Store(&m)
	return o
}

// --- enrollment -------------------------------------------------------

// Settings choose how an owner's data keys are protected.
type Settings struct {
	Mode Mode
	// Recipient is the person's own age X25519 recipient ("age1…"),
	// bring-your-own-key. Leave it empty and set GenerateIdentity to have
	// the hub generate a key pair and hand over the identity once. Leave
	// both empty only in hub-assisted mode for an owner without a person
	// (a household with no account yet).
	Recipient        string
	GenerateIdentity bool
}

// Enrollment is the result of Enroll.
type Enrollment struct {
	Recipient string // the recipient keys are now wrapped to ("" for none)
	// Identity is the generated age identity ("AGE-SECRET-KEY-1…") when
	// GenerateIdentity was set. It is returned once and never stored:
	// hand it to the person and forget it.
	Identity string
	// KeyID is the data key new readings are sealed under ("" if it
	// could not be created yet; Seal retries).
	KeyID string
	// NotRewrapped lists keys still wrapped as before the change: keys
	// the hub cannot unwrap (user-held ones, which need the person's old
	// identity: see Rewrap) or could not (ErrLocked).
	NotRewrapped []string
}

// Enroll creates or changes an owner's settings. A change of mode or
// recipient takes effect at once for new readings (a new data key is
// started) and for history as far as the hub can reach:
//   - every key the hub can unwrap is rewrapped to the new setting, in
//     the same transaction as the setting itself. In particular, switching
//     to user-held removes the hub's copy of every such key: the hub can no
//     longer read that history;
//   - keys only the person can unwrap stay as they are (NotRewrapped); the
//     person moves them with Rewrap and their identity.
//
// Enrolling a shredded owner fails with ErrShredded.
func (v *Vault) Enroll(ctx context.Context, ownerID string, s Settings) (Enrollment, error) {
	if v.closed.Load() {
		return Enrollment{}, ErrClosed
	}
	if ownerID == "" {
		return Enrollment{}, errors.New("vault: enroll: empty owner id")
	}
	var res Enrollment
	switch s.Mode {
	case HubAssisted:
		if v.hub == nil {
			return res, fmt.Errorf("vault: enroll %q: hub-assisted mode needs a hub key: %w", ownerID, ErrLocked)
		}
	case UserHeld:
	default:
		return res, fmt.Errorf("vault: enroll %q: unknown mode %q", ownerID, s.Mode)
	}
	recipient := strings.TrimSpace(s.Recipient)
	switch {
	case s.GenerateIdentity && recipient != "":
		return res, fmt.Errorf("vault: enroll %q: give a recipient or ask for a generated identity, not both", ownerID)
	case s.GenerateIdentity:
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return res, fmt.Errorf("vault: enroll %q: generate identity: %w", ownerID, err)
		}
		recipient, res.Identity = id.Recipient().String(), id.String()
	case recipient == "" && s.Mode == UserHeld:
		return res, fmt.Errorf("vault: enroll %q: user-held mode needs the person's age recipient (or a generated identity)", ownerID)
	}
	recip, err := parseRecipient(recipient)
	if err != nil {
		return res, fmt.Errorf("vault: enroll %q: %w", ownerID, err)
	}
	res.Recipient = recipient

	o := v.lookupOrAdd(ownerID)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shredded {
		return Enrollment{}, fmt.Errorf("vault: enroll %q: %w", ownerID, ErrShredded)
	}
	if o.enrolled && o.mode == s.Mode && o.recipient == recipient {
		if o.live != nil {
			res.KeyID = o.live.chain.id.String()
		}
		return res, nil
	}
	now := time.Now().UTC()
	target := v.recipients(s.Mode, recip)
	var (
		recs    []store.KeyRecord
		changed []*chain
	)
	for _, c := range o.chains {
		if c.rec.Mode == s.Mode && c.rec.Recipient == recipient {
			continue
		}
		c.mu.Lock()
		hw := c.hubWrapped
		c.mu.Unlock()
		if hw == nil || v.hub == nil {
			res.NotRewrapped = append(res.NotRewrapped, c.id.String())
			continue
		}
		rec, err := v.rewrapChain(o.id, c, hw, v.hub, s.Mode, recipient, target)
		if err != nil {
			res.NotRewrapped = append(res.NotRewrapped, c.id.String())
			continue
		}
		recs = append(recs, rec)
		changed = append(changed, c)
	}
	ko := store.KeyOwner{OwnerID: o.id, Mode: s.Mode, Recipient: recipient, CreatedAt: o.createdAt, UpdatedAt: now}
	if ko.CreatedAt.IsZero() {
		ko.CreatedAt = now
	}
	if err := v.st.SetKeyOwner(ctx, ko, recs...); err != nil {
		if errors.Is(err, store.ErrShredded) {
			o.shredLocked()
			return Enrollment{}, fmt.Errorf("vault: enroll %q: %w", ownerID, ErrShredded)
		}
		return Enrollment{}, fmt.Errorf("vault: enroll %q: %w", ownerID, err)
	}
	o.enrolled, o.mode, o.recipient, o.recip, o.createdAt = true, s.Mode, recipient, recip, ko.CreatedAt
	applyRewraps(changed, recs)
	// New readings go under a new data key wrapped the new way. If it
	// cannot be made now, Seal makes it.
	o.retireLiveLocked()
	if err := v.startChainLocked(ctx, o); err == nil {
		res.KeyID = o.live.chain.id.String()
	}
	return res, nil
}

// Rewrapped is the result of Rewrap.
type Rewrapped struct {
	Keys    int      // keys now wrapped per the owner's current setting
	Skipped []string // keys neither the identity nor the hub could unwrap
}

// Rewrap brings every key of the owner that is wrapped otherwise than the
// owner's current setting up to it, unwrapping with the person's identity
// (or the hub key, where the hub holds a copy). Use it when a person
// replaced their age key (Enroll with the new recipient, then Rewrap with
// the old identity) or switched from user-held to hub-assisted and wants
// the hub to read their earlier history too. Readings are not touched:
// only keys are rewrapped.
func (v *Vault) Rewrap(ctx context.Context, ownerID string, identity age.Identity) (Rewrapped, error) {
	if v.closed.Load() {
		return Rewrapped{}, ErrClosed
	}
	if identity == nil {
		return Rewrapped{}, fmt.Errorf("vault: rewrap %q: no identity", ownerID)
	}
	o := v.lookup(ownerID)
	if o == nil {
		return Rewrapped{}, fmt.Errorf("vault: rewrap %q: %w", ownerID, ErrUnknownOwner)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shredded {
		return Rewrapped{}, fmt.Errorf("vault: rewrap %q: %w", ownerID, ErrShredded)
	}
	if !o.enrolled {
		return Rewrapped{}, fmt.Errorf("vault: rewrap %q: %w", ownerID, ErrUnknownOwner)
	}
	var (
		res     Rewrapped
		recs    []store.KeyRecord
		changed []*chain
	)
	target := v.recipients(o.mode, o.recip)
	for _, c := range o.chains {
		if c.rec.Mode == o.mode && c.rec.Recipient == o.recipient {
			continue
		}
		rec, err := v.rewrapChain(o.id, c, c.rec.Wrapped, identity, o.mode, o.recipient, target)
		if err != nil && v.hub != nil {
			c.mu.Lock()
			hw := c.hubWrapped
			c.mu.Unlock()
			if hw != nil {
				rec, err = v.rewrapChain(o.id, c, hw, v.hub, o.mode, o.recipient, target)
			}
		}
		if err != nil {
			res.Skipped = append(res.Skipped, c.id.String())
			continue
		}
		recs = append(recs, rec)
		changed = append(changed, c)
	}
	if len(recs) == 0 {
		return res, nil
	}
	ko := store.KeyOwner{OwnerID: o.id, Mode: o.mode, Recipient: o.recipient, CreatedAt: o.createdAt, UpdatedAt: time.Now().UTC()}
	if err := v.st.SetKeyOwner(ctx, ko, recs...); err != nil {
		if errors.Is(err, store.ErrShredded) {
			o.shredLocked()
			return Rewrapped{}, fmt.Errorf("vault: rewrap %q: %w", ownerID, ErrShredded)
		}
		return Rewrapped{}, fmt.Errorf("vault: rewrap %q: %w", ownerID, err)
	}
	applyRewraps(changed, recs)
	res.Keys = len(recs)
	return res, nil
}

// rewrapChain unwraps c's key from wrapped with id and wraps it to target.
func (v *Vault) rewrapChain(ownerID string, c *chain, wrapped []byte, id age.Identity, mode Mode, recipient string, target []age.Recipient) (store.KeyRecord, error) {
	p, err := unwrap(wrapped, id)
	if err != nil {
		return store.KeyRecord{}, err
	}
	defer clear(p)
	root, err := decodePayload(p, ownerID, c.id)
	clear(root[:])
	if err != nil {
		return store.KeyRecord{}, err
	}
	w, err := wrap(p, target)
	if err != nil {
		return store.KeyRecord{}, err
	}
	rec := c.rec
	rec.Mode, rec.Recipient, rec.Wrapped = mode, recipient, w
	return rec, nil
}

// applyRewraps installs stored rewraps in memory. The caller holds the
// owner's lock.
func applyRewraps(changed []*chain, recs []store.KeyRecord) {
	for i, c := range changed {
		c.rec = recs[i]
		c.mu.Lock()
		if recs[i].Mode == HubAssisted {
			c.hubWrapped = recs[i].Wrapped
		} else {
			c.hubWrapped = nil
			if c.hub != nil {
				c.hub.erase()
				c.hub = nil
			}
		}
		c.mu.Unlock()
	}
}

// recipients returns who keys of an owner with this setting are wrapped to.
func (v *Vault) recipients(mode Mode, person *age.X25519Recipient) []age.Recipient {
	var rs []age.Recipient
	if person != nil {
		rs = append(rs, person)
	}
	if mode == HubAssisted && v.hubRecipient != nil {
		rs = append(rs, v.hubRecipient)
	}
	return rs
}

func (o *owner) setRecipient(s string) error {
	r, err := parseRecipient(s)
	if err != nil {
		return err
	}
	o.recipient, o.recip = s, r
	return nil
}

// parseRecipient parses an age X25519 recipient; "" gives nil.
func parseRecipient(s string) (*age.X25519Recipient, error) {
	if s == "" {
		return nil, nil
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		// Not echoed: people paste the wrong line, and it may be their
		// secret key.
		return nil, fmt.Errorf("%w: the recipient is not an age X25519 recipient (age1…): only those are supported", ErrBadRecipient)
	}
	return r, nil
}

// ParseIdentity parses an age X25519 identity ("AGE-SECRET-KEY-1…") as a
// person pastes it, for OpenWithIdentity, Unlock and Rewrap. Its errors
// never echo the input, which is a secret.
func ParseIdentity(s string) (age.Identity, error) {
	id, err := age.ParseX25519Identity(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("vault: not an age X25519 identity (AGE-SECRET-KEY-1…)")
	}
	return id, nil
}

// --- rotation and shredding -------------------------------------------

// Prepare makes sure the owner has a data key in use, so that its next
// Seal does not have to write one to the store. Call it for every owner at
// start-up to keep key creation off the ingest path.
func (v *Vault) Prepare(ctx context.Context, ownerID string) error {
	o := v.lookup(ownerID)
	if o == nil {
		return fmt.Errorf("vault: prepare %q: %w", ownerID, ErrUnknownOwner)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usableLocked(); err != nil {
		return fmt.Errorf("vault: prepare %q: %w", ownerID, err)
	}
	if o.live != nil {
		return nil
	}
	return v.startChainLocked(ctx, o)
}

// Rotate retires the owner's data key in use and starts a new one, which
// it returns. Readings sealed before stay readable under the retired key.
func (v *Vault) Rotate(ctx context.Context, ownerID string) (string, error) {
	if v.closed.Load() {
		return "", ErrClosed
	}
	o := v.lookup(ownerID)
	if o == nil {
		return "", fmt.Errorf("vault: rotate %q: %w", ownerID, ErrUnknownOwner)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usableLocked(); err != nil {
		return "", fmt.Errorf("vault: rotate %q: %w", ownerID, err)
	}
	if err := v.startChainLocked(ctx, o); err != nil {
		return "", err
	}
	return o.live.chain.id.String(), nil
}

// Shred destroys the owner's keys: every reading ever sealed for the
// owner becomes unreadable by anyone, at once. The cost is one store
// statement over the owner's keys (a handful), independent of how many
// readings exist. Afterwards Open and Seal fail with ErrShredded, also
// after a restart; the owner id can never be enrolled again. Removing the
// now unreadable readings is left to a background job.
//
// Shredding an unknown owner records the mark all the same. An error
// wrapping store.ErrKeyRemnants means the keys are destroyed in the
// store and in memory, but the store could not yet clear old copies from
// its own log.
func (v *Vault) Shred(ctx context.Context, ownerID string) error {
	if ownerID == "" {
		return errors.New("vault: shred: empty owner id")
	}
	o := v.lookupOrAdd(ownerID)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shredded {
		return nil
	}
	if err := v.st.ShredOwner(ctx, ownerID, time.Now().UTC()); err != nil {
		if errors.Is(err, store.ErrKeyRemnants) {
			// The keys are deleted from the store: forget them here too,
			// and let the caller know copies may remain in the engine's log.
			o.shredLocked()
		}
		return fmt.Errorf("vault: shred %q: %w", ownerID, err)
	}
	o.shredLocked()
	return nil
}

// usableLocked reports why the owner cannot be used, or nil.
func (o *owner) usableLocked() error {
	switch {
	case o.shredded:
		return ErrShredded
	case !o.enrolled:
		return ErrUnknownOwner
	}
	return nil
}

// shredLocked erases everything in memory and marks the owner shredded.
func (o *owner) shredLocked() {
	o.eraseLocked()
	for _, c := range o.chains {
		c.mu.Lock()
		c.shredded = true
		c.hubWrapped = nil
		c.mu.Unlock()
	}
	o.chains = map[KeyID]*chain{}
	o.shredded, o.enrolled = true, false
	o.recipient, o.recip = "", nil
}

// eraseLocked erases every key of the owner held in memory.
func (o *owner) eraseLocked() {
	o.retireLiveLocked()
	for _, c := range o.chains {
		c.mu.Lock()
		if c.hub != nil {
			c.hub.erase()
			c.hub = nil
		}
		c.mu.Unlock()
	}
}

// --- status -----------------------------------------------------------

// Status describes an owner's protection for people and the API.
type Status struct {
	OwnerID   string
	Mode      Mode
	Recipient string
	Shredded  bool
	Keys      []KeyStatus
	// HubCanRead says in one paragraph exactly what the hub can read of
	// this owner's data. Show it as it is.
	HubCanRead string
}

// KeyStatus describes one data key.
type KeyStatus struct {
	KeyID     string
	Mode      Mode
	Recipient string
	CreatedAt time.Time
	RetiredAt time.Time
	InUse     bool // new readings are sealed under it
	// HubReadable says the hub holds a copy of the key it can unwrap
	// (as far as the wrapping goes; ErrLocked if the hub key changed).
	HubReadable bool
}

// Status reports an owner's setting and keys.
func (v *Vault) Status(ownerID string) (Status, error) {
	o := v.lookup(ownerID)
	if o == nil {
		return Status{}, fmt.Errorf("vault: status %q: %w", ownerID, ErrUnknownOwner)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	s := Status{OwnerID: o.id, Mode: o.mode, Recipient: o.recipient, Shredded: o.shredded}
	switch {
	case o.shredded:
		s.HubCanRead = "Nothing: this owner's keys were destroyed; nobody, the hub included, can read their readings any more."
		return s, nil
	case !o.enrolled:
		return Status{}, fmt.Errorf("vault: status %q: %w", ownerID, ErrUnknownOwner)
	}
	userOnly := 0
	for _, c := range o.chains {
		c.mu.Lock()
		hub := c.hubWrapped != nil
		c.mu.Unlock()
		if !hub {
			userOnly++
		}
		s.Keys = append(s.Keys, KeyStatus{
			KeyID: c.id.String(), Mode: c.rec.Mode, Recipient: c.rec.Recipient,
			CreatedAt: c.rec.CreatedAt, RetiredAt: c.rec.RetiredAt,
			InUse:       o.live != nil && o.live.chain == c,
			HubReadable: hub,
		})
	}
	sortKeys(s.Keys)
	s.HubCanRead = v.describe(o.mode, o.recipient != "", userOnly, len(o.chains))
	return s, nil
}

func (v *Vault) describe(mode Mode, person bool, userOnly, total int) string {
	var b strings.Builder
	switch mode {
	case HubAssisted:
		b.WriteString("Hub-assisted: the hub keeps a copy of this owner's data keys, wrapped to the hub's own key, so automations and the UI can read the stored history.")
		if person {
			b.WriteString(" The person's age identity opens the same keys.")
		}
		if userOnly > 0 {
			fmt.Fprintf(&b, " Exception: %d of %d keys are held by the person only (made in user-held mode); the hub cannot read readings sealed under them until the person rewraps them with their identity.", userOnly, total)
		}
	case UserHeld:
		fmt.Fprintf(&b, "User-held: only the person's age identity can unwrap this owner's data keys, so the hub cannot read stored history. "+
			"To seal new readings the hub holds one epoch key at a time and erases it when the epoch ends, after %d readings or %s from its first reading, whichever comes first. "+
			"So the hub can read at most the readings of the current epoch, while that key is in its memory; nothing sealed in an earlier epoch, and nothing at all after a restart.",
			v.userEpoch.Readings, v.userEpoch.Duration)
		if hub := total - userOnly; hub > 0 {
			fmt.Fprintf(&b, " Exception: %d of %d keys still carry a hub copy that could not be removed (hub key missing or replaced).", hub, total)
		}
	}
	return b.String()
}

func sortKeys(ks []KeyStatus) {
	slices.SortFunc(ks, func(a, b KeyStatus) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
}

// StatusReader reports key owners' settings (a *Vault, or one wrapped).
type StatusReader interface {
	Status(ownerID string) (Status, error)
}

// AnyUserHeld reports whether the readings of any of devs are sealed,
// in part, under a key the hub holds no copy of (user-held mode), so the
// hub could not read all of their history. Owners never enrolled have
// nothing sealed and do not count.
func AnyUserHeld(sr StatusReader, devs []store.Device) bool {
	seen := map[string]bool{}
	for _, d := range devs {
		owner := d.KeyOwnerID()
		if seen[owner] {
			continue
		}
		seen[owner] = true
		st, err := sr.Status(owner)
		if err != nil {
			continue
		}
		for _, k := range st.Keys {
			if !k.HubReadable {
				return true
			}
		}
	}
	return false
}
