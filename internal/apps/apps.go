// Package apps lets a household's local programs (Home Assistant,
// Node-RED, a script) receive its readings live over MQTT as recipients
// of their own: each app has its own generated credential (shown once,
// stored as an argon2id hash, rotatable and revocable, as a device's) and
// receives a device's stream only once a person of the household has
// switched that use on. Nothing is on by default.
//
// It serves clause 2B of the IoT Good Practice paper: people choose where
// their data goes, at the finest grain (one stream of one device to one
// app), and the choice holds from the next reading on. Every change is
// recorded in the transparency log by this package, never by a front end.
//
// The broker asks Visible for every reading it is about to hand to an
// app and MayMatch for every filter an app subscribes with; ingest hands
// each accepted reading to Deliver once it is committed to the store (or,
// when the person chose not to keep it, once it is acknowledged), so an
// app never sees a reading the store then loses. The decisions are answered from an
// in-memory table rebuilt after each change.
package apps

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/credential"
	"github.com/candor-iot/candor/internal/names"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// IDPrefix starts every app id, so the broker tells apps from devices by
// their MQTT username alone.
const IDPrefix = "app_"

// Audit actions this package records.
const (
	ActionAppCreate = "app.create"
	ActionAppRotate = "app.credential.rotate"
	ActionAppRevoke = "app.credential.revoke"
)

// Errors callers act on.
var (
	// ErrInvalid is input that breaks a rule; the detail names the field.
	ErrInvalid = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-input", Text: "invalid input"}
	// ErrUnauthenticated is a wrong, unknown or revoked app credential.
	ErrUnauthenticated = errors.New("unauthenticated")
)

// Store is the storage the service needs.
type Store interface {
	store.AppStore
	Device(ctx context.Context, id string) (store.Device, error)
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
}

// Manifests resolves the manifest in force for a device.
type Manifests interface {
	ForDevice(ctx context.Context, deviceID string) (*catalog.Entry, error)
}

// Publisher hands a reading to the MQTT broker for the apps subscribed
// to its topic.
type Publisher interface {
	PublishReading(deviceID, stream string, payload []byte)
	// Publish sends a hub message (Home Assistant discovery), retained
	// if asked.
	Publish(topic string, payload []byte, retain bool) error
}

// Options configure a Service.
type Options struct {
	Store     Store     // required
	Manifests Manifests // required
	// Log records every app added, rotated or revoked and every grant
	// switched (ids only).
	Log    auditlog.Recorder
	Logger *slog.Logger
	// Hasher hashes and verifies app secrets (default: a shared one).
	Hasher *credential.Hasher
	Now    func() time.Time
}

// Service keeps the household's apps and what each may receive.
type Service struct {
	st        Store
	manifests Manifests
	audit     auditlog.Recorder
	log       *slog.Logger
	hasher    *credential.Hasher
	now       func() time.Time

	mu    sync.Mutex // serialises changes of the table and their writes
	table atomic.Pointer[table]
	pub   atomic.Pointer[publisherBox]
	cmd   atomic.Pointer[senderBox]
	// schemas are the compiled schemas of declared commands.
	schemas commandSchemas
	stats   sync.Map // app id → *Stats

	lastMu sync.Mutex
	last   map[streamKey]lastValue // last values, in memory only (lastvalue.go)

	revokeMu  sync.Mutex // guards onRevoke and onChange
	onRevoke  []func(appID string)
	onChange  []func(appID string)
	verifiedM sync.Mutex
	verified  map[string]verifiedSecret
}

// verifiedSecret remembers, in memory only, the SHA-256 of a secret that
// passed the slow hash, bound to the stored hash it matched, so an app's
// reconnects stay cheap.
type verifiedSecret struct {
	sum        string
	secretHash string
}

type publisherBox struct{ p Publisher }

// New builds a service and loads every app and grant.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.Manifests == nil {
		return nil, errors.New("apps: Store and Manifests are required")
	}
	s := &Service{st: opts.Store, manifests: opts.Manifests, audit: opts.Log, log: opts.Logger,
		hasher: opts.Hasher, now: opts.Now, verified: map[string]verifiedSecret{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// SetPublisher connects the service to the broker, which starts after
// ingest; until then Deliver hands nothing on.
func (s *Service) SetPublisher(p Publisher) { s.pub.Store(&publisherBox{p}) }

// OnRevoke registers a function called with an app's id after its
// credential was rotated or revoked, to end its connections.
func (s *Service) OnRevoke(f func(appID string)) {
	s.revokeMu.Lock()
	s.onRevoke = append(s.onRevoke, f)
	s.revokeMu.Unlock()
}

// OnChange registers a function called with an app's id after the app
// was added or what it may receive or send changed (Set), once the change
// is stored and in force here. A hub node passes the change on to the
// other nodes with it. Rotations and revocations are told to OnRevoke;
// Reload and Forget tell nobody. f may run while the service holds its
// lock, so it must not call the service.
func (s *Service) OnChange(f func(appID string)) {
	s.revokeMu.Lock()
	s.onChange = append(s.onChange, f)
	s.revokeMu.Unlock()
}

func (s *Service) notifyChanged(id string) {
	s.revokeMu.Lock()
	fs := slices.Clone(s.onChange)
	s.revokeMu.Unlock()
	for _, f := range fs {
		f(id)
	}
}

func (s *Service) notifyRevoked(id string) {
	s.verifiedM.Lock()
	delete(s.verified, id)
	s.verifiedM.Unlock()
	s.revokeMu.Lock()
	fs := slices.Clone(s.onRevoke)
	s.revokeMu.Unlock()
	for _, f := range fs {
		f(id)
	}
}

func (s *Service) record(ctx context.Context, ev auditlog.Event) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("record %s in the transparency log: %w", ev.Action, err)
	}
	return nil
}

// purposeRE accepts DPV purpose terms and Candor's own, as manifests do.
var purposeRE = regexp.MustCompile(`^(dpv|candor):[A-Z][A-Za-z0-9]*$`)

// NewApp describes an app to add.
type NewApp struct {
	HouseholdID string
	Name        string
	Description string   // what the app is for, in the owner's words
	Purposes    []string // DPV purpose terms, e.g. dpv:ServiceProvision
	// Kind is KindHomeAssistant for an app that gets Home Assistant
	// discovery messages, KindZigbee2MQTT for a Zigbee2MQTT bridge, else
	// empty.
	Kind  string
	Actor auditlog.Actor
}

func checkText(field, v string, max int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return ErrInvalid.Errorf("%s: must not be empty", field)
	}
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max {
		return ErrInvalid.Errorf("%s: must be valid text of at most %d characters", field, max)
	}
	if v != "" {
		if err := names.Check(v); err != nil {
			return ErrInvalid.Errorf("%s: %w", field, err)
		}
	}
	return nil
}

// Add creates an app with a fresh credential and returns the secret,
// which is shown exactly once and stored only as its argon2id hash.
func (s *Service) Add(ctx context.Context, na NewApp) (store.App, string, error) {
	if na.HouseholdID == "" {
		return store.App{}, "", ErrInvalid.Errorf("household: an app belongs to a household")
	}
	if err := checkText("name", na.Name, 64, true); err != nil {
		return store.App{}, "", err
	}
	if err := checkText("description", na.Description, 280, false); err != nil {
		return store.App{}, "", err
	}
	if len(na.Purposes) == 0 {
		return store.App{}, "", ErrInvalid.Errorf("purpose: say what the app uses the readings for, as a DPV term such as dpv:ServiceProvision")
	}
	for _, p := range na.Purposes {
		if !purposeRE.MatchString(p) {
			return store.App{}, "", ErrInvalid.Errorf("purpose: %q is not a DPV purpose term such as dpv:ServiceProvision", p)
		}
	}
	if na.Kind != "" && na.Kind != KindHomeAssistant && na.Kind != KindZigbee2MQTT {
		return store.App{}, "", ErrInvalid.Errorf("kind: %q is not a kind of app the hub knows; leave it out, or say %q or %q", na.Kind, KindHomeAssistant, KindZigbee2MQTT)
	}
	id := credential.NewID(IDPrefix)
	secret := credential.NewSecret()
	hash, err := s.hasher.Hash(ctx, secret)
	if err != nil {
		return store.App{}, "", fmt.Errorf("hash app secret: %w", err)
	}
	now := s.now().UTC()
	a := store.App{ID: id, HouseholdID: na.HouseholdID, Name: na.Name, Description: na.Description,
		Purposes: slices.Compact(slices.Sorted(slices.Values(na.Purposes))), Kind: na.Kind, SecretHash: hash, CredentialSetAt: now, CreatedAt: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.CreateApp(ctx, a); err != nil {
		return store.App{}, "", fmt.Errorf("create app: %w", err)
	}
	s.log.Info("app added", "app", id, "household", na.HouseholdID)
	s.notifyChanged(id) // stored: the other nodes hear of it even if the reload fails
	if err := s.reloadLocked(ctx); err != nil {
		return store.App{}, "", err
	}
	if err := s.record(ctx, auditlog.Event{Actor: na.Actor, Action: ActionAppCreate, Household: a.HouseholdID,
		Subject: auditlog.Subject{Recipient: id}, Detail: map[string]string{"purposes": strings.Join(a.Purposes, " ")}}); err != nil {
		return store.App{}, "", err
	}
	return a, secret, nil
}

// App returns one app.
func (s *Service) App(ctx context.Context, id string) (store.App, error) {
	return s.st.App(ctx, id)
}

// List returns a household's apps (every app when householdID is empty).
func (s *Service) List(ctx context.Context, householdID string) ([]store.App, error) {
	return s.st.Apps(ctx, householdID)
}

// Rotate gives an app a fresh secret and ends connections that used the
// old one.
func (s *Service) Rotate(ctx context.Context, actor auditlog.Actor, id string) (string, error) {
	a, err := s.st.App(ctx, id)
	if err != nil {
		return "", fmt.Errorf("rotate app %s: %w", id, err)
	}
	if a.Revoked() {
		return "", ErrInvalid.Errorf("rotate app %s: the app is revoked; add it again instead", id)
	}
	secret := credential.NewSecret()
	hash, err := s.hasher.Hash(ctx, secret)
	if err != nil {
		return "", fmt.Errorf("hash app secret: %w", err)
	}
	if err := s.st.SetAppSecret(ctx, id, hash, s.now().UTC()); err != nil {
		return "", fmt.Errorf("rotate app %s: %w", id, err)
	}
	s.log.Info("app credential rotated", "app", id)
	s.notifyRevoked(id)
	return secret, s.record(ctx, auditlog.Event{Actor: actor, Action: ActionAppRotate, Household: a.HouseholdID,
		Subject: auditlog.Subject{Recipient: id}})
}

// Revoke revokes an app's credential for good, withdraws everything it
// was allowed to receive and ends its connections.
func (s *Service) Revoke(ctx context.Context, actor auditlog.Actor, id string) error {
	a, err := s.st.App(ctx, id)
	if err != nil {
		return fmt.Errorf("revoke app %s: %w", id, err)
	}
	// Its Home Assistant entities go with it.
	if gs, gerr := s.st.AppGrants(ctx, id); gerr == nil {
		for _, g := range gs {
			if isReadingGrant(g.Stream) {
				_ = s.announce(ctx, a, g.DeviceID, g.Stream, false)
			}
		}
	}
	s.mu.Lock()
	err = s.st.RevokeApp(ctx, id, s.now().UTC())
	if err == nil {
		err = s.reloadLocked(ctx)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("revoke app %s: %w", id, err)
	}
	s.log.Info("app revoked", "app", id)
	s.notifyRevoked(id)
	return s.record(ctx, auditlog.Event{Actor: actor, Action: ActionAppRevoke, Household: a.HouseholdID,
		Subject: auditlog.Subject{Recipient: id}})
}

// Authenticate checks an app's id and secret. Any failure is
// ErrUnauthenticated, without saying whether the id exists.
func (s *Service) Authenticate(ctx context.Context, id, secret string) (store.App, error) {
	if id == "" || secret == "" || len(secret) > 1024 {
		return store.App{}, ErrUnauthenticated
	}
	a, err := s.st.App(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Spend comparable time so ids cannot be probed by timing.
			_, _ = s.hasher.Verify(ctx, secret, dummyHash())
			return store.App{}, ErrUnauthenticated
		}
		return store.App{}, fmt.Errorf("look up app: %w", err)
	}
	if a.Revoked() {
		_, _ = s.hasher.Verify(ctx, secret, dummyHash())
		return store.App{}, ErrUnauthenticated
	}
	sum := string(credential.HashToken(secret))
	s.verifiedM.Lock()
	cached, ok := s.verified[id]
	s.verifiedM.Unlock()
	if ok && cached.secretHash == a.SecretHash && subtle.ConstantTimeCompare([]byte(cached.sum), []byte(sum)) == 1 {
		return a, nil
	}
	good, err := s.hasher.Verify(ctx, secret, a.SecretHash)
	if err != nil {
		return store.App{}, fmt.Errorf("verify app %s: %w", id, err)
	}
	if !good {
		return store.App{}, ErrUnauthenticated
	}
	// A rotation or revocation may have landed during the slow hash.
	now, err := s.st.App(ctx, id)
	if err != nil || now.Revoked() || now.SecretHash != a.SecretHash {
		return store.App{}, ErrUnauthenticated
	}
	s.verifiedM.Lock()
	s.verified[id] = verifiedSecret{sum: sum, secretHash: a.SecretHash}
	s.verifiedM.Unlock()
	return now, nil
}

// dummyHash is verified against when the id is unknown, so that a
// failure takes as long either way.
var dummyHash = sync.OnceValue(func() string {
	h, err := credential.Hash("candor-apps-dummy-secret")
	if err != nil {
		panic(err) // argon2id over a constant cannot fail
	}
	return h
})
