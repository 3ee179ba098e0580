package updates

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// Versions tells the firmware version a device reported as installed
// ("" when it never reported one).
type Versions interface {
	InstalledVersion(ctx context.Context, deviceID string) (string, error)
}

// Recorder appends to the transparency log.
type Recorder interface {
	Record(ctx context.Context, ev auditlog.Event) error
}

// Announcer tells a device that its offer changed (the hub): it publishes
// what Offer says at the moment it sends on the device's OfferTopic, not
// retained, an empty message when there is no offer. The offer is not
// kept in the broker's retained store: a device that subscribes later is
// sent Offer's answer by the hub, marked retained, like its other control
// messages.
type Announcer interface {
	OfferChanged(deviceID string)
}

// Device is what the service needs to know about one device.
type Device struct {
	ID, Household, Type string
}

// DeviceOf is the part of a stored device the updates service needs.
func DeviceOf(d store.Device) Device {
	return Device{ID: d.ID, Household: d.HouseholdID, Type: d.Type}
}

// reuseRefresh is how long one repository refresh serves the checks of
// every device of its types.
const reuseRefresh = time.Minute

// DefaultMaxPostpone bounds how long an owner can postpone an update.
const DefaultMaxPostpone = 30 * 24 * time.Hour

// Config wires a Service.
type Config struct {
	Dir      string        // per-repository caches go under it (e.g. <data>/updates)
	BaseURL  func() string // the hub's URL as devices reach it, asked at each offer; file URLs start with it
	Versions Versions
	Recorder Recorder
	Announce Announcer
	HTTP     *http.Client
	Logger   *slog.Logger
	// Now is the clock for postponements; nil means time.Now.
	Now         func() time.Time
	MaxPostpone time.Duration
	// Stages keeps each device's stage across restarts (the store);
	// nil keeps it in memory only.
	Stages StageStore
}

// Errors callers act on.
var (
	ErrNoUpdate = &problem.Kind{Status: http.StatusConflict, Type: "no-update",
		Text: "no update is waiting for this device"}
	ErrPostponeLimit = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "postpone-refused",
		Text: "postponement refused"}
	ErrNoSource = &problem.Kind{Status: http.StatusConflict, Type: "no-update-source",
		Text: "this device type's manifest names no update repository"}
)

// State is what a person sees about one device's updates.
type State struct {
	Device     string    `json:"device"`
	Household  string    `json:"household"`
	DeviceType string    `json:"deviceType"`
	Installed  string    `json:"installed,omitempty"`
	Available  *Release  `json:"available,omitempty"` // the newest verified update, if newer than installed
	Stage      string    `json:"stage"`               // see the Status* constants and Stage values
	Reason     Reason    `json:"reason,omitempty"`    // why the last update was refused
	Plain      string    `json:"plain,omitempty"`     // the refusal or failure in plain words
	FailCode   string    `json:"failCode,omitempty"`  // the device's failure reason code
	Automatic  bool      `json:"automatic"`           // security updates are offered without asking
	Postponed  time.Time `json:"postponedUntil,omitzero"`
	Updated    time.Time `json:"updated,omitzero"`

	target        *Target
	client        *Client
	postponedOnce string // the version already postponed once
	refusedKey    string // the refusal last recorded, so a schedule does not repeat it
	// savedVersion and savedSHA name the image of a stage restored from
	// the store, until a check finds that image again.
	savedVersion, savedSHA string
	// offer is the message on the device's offer topic (offerMessage), nil
	// when none stands: set when the hub offers, cleared when the offer is
	// withdrawn or the device reports the end of the update. Never
	// changed in place, so Offer may hand it out.
	offer []byte
}

// The hub's own stages, beside the device-reported Stage values.
const (
	StatusNone      = "none"       // no repository, or nothing newer than installed
	StatusUnknown   = "unknown"    // the device has not reported its firmware version
	StatusAvailable = "available"  // an update waits for the owner (not a security update, or automatic updates off)
	StatusPostponed = "postponed"  // the owner postponed it
	StatusOffered   = "offered"    // offered on the control topic, the device has not answered yet
	StatusRefused   = "refused"    // the hub refused the repository's metadata or the image
	StatusUpToDate  = "up-to-date" // installed is the newest the maker signed
)

// Service decides, per device, which update it is offered, and follows
// the update to the end. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	sources map[string]*Client // by device type
	clients map[string]*Client // by repository (URL and pinned root), shared by device types
	states  map[string]*State  // by device id
}

// New returns a service.
func New(cfg Config) (*Service, error) {
	if cfg.Dir == "" || cfg.BaseURL == nil || cfg.Versions == nil || cfg.Recorder == nil || cfg.Announce == nil {
		return nil, errors.New("updates: Dir, BaseURL, Versions, Recorder and Announce are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxPostpone <= 0 {
		cfg.MaxPostpone = DefaultMaxPostpone
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	svc := &Service{cfg: cfg, log: log.With("component", "updates"),
		sources: map[string]*Client{}, clients: map[string]*Client{}, states: map[string]*State{}}
	policies, err := loadPolicies(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for id, p := range policies {
		svc.states[id] = &State{Device: id, Stage: StatusNone, Automatic: !p.Manual,
			Postponed: p.PostponedUntil, postponedOnce: p.PostponedOnce}
	}
	if err := svc.loadStages(context.Background()); err != nil {
		return nil, err
	}
	return svc, nil
}

// SetSource names the repository a device type's manifest points to.
func (s *Service) SetSource(deviceType string, src Source) error {
	key := src.MetadataURL + "\x00" + src.RootSHA256 + "\x00" + string(src.TrustedRoot)
	h := sha256.Sum256([]byte(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[key]
	if !ok {
		var err error
		if c, err = NewClient(src, filepath.Join(s.cfg.Dir, hex.EncodeToString(h[:8])), s.cfg.HTTP); err != nil {
			return fmt.Errorf("update source of %s: %w", deviceType, err)
		}
		s.clients[key] = c
	}
	s.sources[deviceType] = c
	return nil
}

// client returns the repository client of a device type.
func (s *Service) client(deviceType string) (*Client, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.sources[deviceType]
	return c, ok
}

func (s *Service) state(d Device) *State {
	st, ok := s.states[d.ID]
	if !ok {
		st = &State{Device: d.ID, Automatic: true, Stage: StatusNone}
		s.states[d.ID] = st
	}
	st.Household, st.DeviceType = d.Household, d.Type
	return st
}

// Status returns a copy of a device's update state.
func (s *Service) Status(deviceID string) (State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[deviceID]
	if !ok {
		return State{}, false
	}
	return *st, true
}

// Household returns the update state of every device of a household the
// service knows, by device id.
func (s *Service) Household(householdID string) []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []State
	for _, st := range s.states {
		if st.Household == householdID {
			out = append(out, *st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// Check refreshes the device type's repository, decides what the device
// should get and offers it when the policy says so. A refusal is recorded
// (once per distinct refusal) and returned as a *RefusedError.
func (s *Service) Check(ctx context.Context, d Device) (State, error) {
	return s.check(ctx, d, reuseRefresh)
}

// CheckNow is Check with a fresh walk of the repository, on a person's
// request.
func (s *Service) CheckNow(ctx context.Context, d Device) (State, error) {
	return s.check(ctx, d, 0)
}

func (s *Service) check(ctx context.Context, d Device, reuse time.Duration) (State, error) {
	c, ok := s.client(d.Type)
	if !ok {
		return State{}, fmt.Errorf("check device %s: %w", d.ID, ErrNoSource)
	}
	cat, err := c.Recent(ctx, reuse)
	if err != nil {
		return s.refuse(ctx, d, err)
	}
	installed, err := s.cfg.Versions.InstalledVersion(ctx, d.ID)
	if err != nil {
		return State{}, fmt.Errorf("check device %s: installed version: %w", d.ID, err)
	}
	var newest *Target
	for i := range cat.Targets {
		if cat.Targets[i].Release.DeviceType == d.Type {
			newest = &cat.Targets[i]
			break
		}
	}
	s.mu.Lock()
	st := s.state(d)
	st.Installed, st.Updated = installed, s.cfg.Now()
	reannounce := false
	switch {
	case installed == "" || !validVersion(installed):
		st.Stage, st.Available, st.target = StatusUnknown, nil, nil
	case newest == nil:
		st.Stage, st.Available, st.target = StatusNone, nil, nil
	case compareVersions(newest.Release.Version, installed) < 0:
		s.mu.Unlock()
		return s.refuse(ctx, d, &RefusedError{Reason: ReasonDowngrade, Where: newest.Path,
			Err: fmt.Errorf("newest signed version %s is older than installed %s", newest.Release.Version, installed)})
	case compareVersions(newest.Release.Version, installed) == 0:
		st.Stage, st.Available, st.target = StatusUpToDate, nil, nil
	default:
		if st.target == nil && st.savedSHA == newest.SHA256 && restorable[st.Stage] {
			// Decided for this image before a restart: keep its stage.
			rel := newest.Release
			st.Available, st.target, st.client = &rel, newest, c
			st.savedVersion, st.savedSHA = "", ""
			reannounce = inProgress[st.Stage]
			break
		}
		if st.target != nil && st.target.SHA256 == newest.SHA256 && st.Stage != StatusRefused {
			// Already decided for this image: keep its stage.
			break
		}
		rel := newest.Release
		st.Available, st.target, st.client = &rel, newest, c
		st.Stage, st.Reason, st.Plain = StatusAvailable, "", ""
		if st.postponedOnce == rel.Version && s.cfg.Now().Before(st.Postponed) {
			st.Stage = StatusPostponed // decided before a restart
		}
	}
	// A check that passed ends the refusal, so the next one is recorded again.
	st.refusedKey = ""
	auto := st.Stage == StatusAvailable && st.Available.Security && st.Automatic
	if st.Stage == StatusPostponed && !s.cfg.Now().Before(st.Postponed) {
		st.Stage, st.Postponed = StatusAvailable, time.Time{}
		auto = st.Available.Security && st.Automatic
	}
	out := *st
	target := st.target
	s.mu.Unlock()
	if auto {
		return s.offer(ctx, d, cat, auditlog.Actor{Kind: auditlog.ActorHub}, "automatic security update")
	}
	s.saveStage(ctx, d.ID)
	if reannounce {
		if err := s.reannounce(ctx, d, target, cat); err != nil {
			return out, err
		}
	}
	return out, nil
}

// refuse records a refusal and puts it in the device's state.
func (s *Service) refuse(ctx context.Context, d Device, err error) (State, error) {
	re := refused("", err)
	s.mu.Lock()
	st := s.state(d)
	st.Stage, st.Reason, st.Plain, st.Updated = StatusRefused, re.Reason, re.Reason.Plain(), s.cfg.Now()
	key := string(re.Reason) + "\x00" + re.Where
	repeat := st.refusedKey == key
	st.refusedKey = key
	out := *st
	s.mu.Unlock()
	s.saveStage(ctx, d.ID)
	if re.Reason == ReasonUnreachable {
		s.log.WarnContext(ctx, "update repository unreachable", "device", d.ID, "type", d.Type, "err", err)
		return out, re
	}
	s.log.WarnContext(ctx, "update refused", "device", d.ID, "type", d.Type, "reason", re.Reason, "where", re.Where, "err", err)
	if !repeat {
		if rerr := s.record(ctx, d, auditlog.ActionUpdateRefuse, auditlog.Actor{Kind: auditlog.ActorHub}, "update check",
			map[string]string{"reason": string(re.Reason)}); rerr != nil {
			return out, rerr
		}
	}
	return out, re
}

func (s *Service) record(ctx context.Context, d Device, action string, actor auditlog.Actor, purpose string, detail map[string]string) error {
	if err := s.cfg.Recorder.Record(ctx, auditlog.Event{Actor: actor, Action: action, Household: d.Household,
		Subject: auditlog.Subject{Device: d.ID}, Purpose: purpose, Detail: detail}); err != nil {
		return fmt.Errorf("record %s for device %s: %w", action, d.ID, err)
	}
	return nil
}

// offerMessage is the message on the device's offer topic.
type offerMessage struct {
	Version  string          `json:"version"`
	Path     string          `json:"path"`
	URL      string          `json:"url"`
	Length   int64           `json:"length"`
	SHA256   string          `json:"sha256"`
	Security bool            `json:"security"`
	Fixes    []string        `json:"fixes,omitempty"`
	Targets  json.RawMessage `json:"targets"` // the maker's signed targets metadata
}

// FileURL is where a device downloads the image it was offered.
func (s *Service) FileURL(deviceID, sha string) string {
	return s.cfg.BaseURL() + "/updates/v1/" + deviceID + "/" + sha
}

// offer fetches and verifies the image, then offers it on the device's
// control topic. The hub never offers a file it has not verified itself.
func (s *Service) offer(ctx context.Context, d Device, cat *Catalog, actor auditlog.Actor, purpose string) (State, error) {
	s.mu.Lock()
	st := s.state(d)
	t, c := st.target, st.client
	s.mu.Unlock()
	if t == nil {
		return State{}, fmt.Errorf("offer to device %s: %w", d.ID, ErrNoUpdate)
	}
	if _, err := c.Download(ctx, *t); err != nil {
		return s.refuse(ctx, d, err)
	}
	msg, err := json.Marshal(offerMessage{Version: t.Release.Version, Path: t.Path, URL: s.FileURL(d.ID, t.SHA256),
		Length: t.Length, SHA256: t.SHA256, Security: t.Release.Security, Fixes: t.Release.Fixes, Targets: cat.TargetsMetadata})
	if err != nil {
		return State{}, err
	}
	// The state first, then the device is told: the hub reads the offer
	// from the state when it sends (Offer).
	s.mu.Lock()
	st.offer = msg
	st.Stage, st.Updated = StatusOffered, s.cfg.Now()
	out := *st
	s.mu.Unlock()
	s.cfg.Announce.OfferChanged(d.ID)
	s.saveStage(ctx, d.ID)
	if err := s.record(ctx, d, auditlog.ActionUpdateOffer, actor, purpose,
		map[string]string{"version": t.Release.Version, "sha256": t.SHA256}); err != nil {
		return State{}, err
	}
	s.log.InfoContext(ctx, "update offered", "device", d.ID, "version", t.Release.Version)
	return out, nil
}

// Install offers the waiting update now, on the owner's request (for an
// update that is not automatic, one postponed earlier, or one that failed).
func (s *Service) Install(ctx context.Context, actor auditlog.Actor, d Device) (State, error) {
	c, ok := s.client(d.Type)
	if !ok {
		return State{}, fmt.Errorf("install on device %s: %w", d.ID, ErrNoSource)
	}
	s.mu.Lock()
	st := s.state(d)
	// A failed install may be tried again on the owner's word.
	waiting := st.target != nil && (st.Stage == StatusAvailable || st.Stage == StatusPostponed || st.Stage == string(StageFailed))
	st.Postponed = time.Time{}
	s.mu.Unlock()
	if !waiting {
		return State{}, fmt.Errorf("install on device %s: %w", d.ID, ErrNoUpdate)
	}
	c.mu.Lock()
	cat := c.catalog
	c.mu.Unlock()
	return s.offer(ctx, d, cat, actor, "owner asked to install")
}

// Postpone holds the waiting update back until now+d (at most
// MaxPostpone), once per version; an offer made is withdrawn.
func (s *Service) Postpone(ctx context.Context, actor auditlog.Actor, dev Device, d time.Duration) (State, error) {
	if d <= 0 || d > s.cfg.MaxPostpone {
		return State{}, ErrPostponeLimit.Errorf("postpone by more than zero and at most %d days", int(s.cfg.MaxPostpone/(24*time.Hour)))
	}
	s.mu.Lock()
	st := s.state(dev)
	if st.target == nil || (st.Stage != StatusAvailable && st.Stage != StatusOffered) {
		s.mu.Unlock()
		return State{}, fmt.Errorf("postpone on device %s: %w", dev.ID, ErrNoUpdate)
	}
	if st.postponedOnce == st.target.Release.Version {
		s.mu.Unlock()
		return State{}, ErrPostponeLimit.Errorf("version %s was already postponed once; install it or switch automatic updates off", st.target.Release.Version)
	}
	withdraw := st.Stage == StatusOffered
	if withdraw {
		st.offer = nil
	}
	until := s.cfg.Now().Add(d)
	st.Stage, st.Postponed, st.postponedOnce = StatusPostponed, until, st.target.Release.Version
	version := st.target.Release.Version
	out := *st
	err := s.savePolicies()
	s.mu.Unlock()
	if err != nil {
		return out, err
	}
	s.saveStage(ctx, dev.ID)
	if withdraw {
		s.cfg.Announce.OfferChanged(dev.ID)
	}
	return out, s.record(ctx, dev, auditlog.ActionUpdatePostpone, actor, "owner postponed an update",
		map[string]string{"version": version, "until": until.UTC().Format(time.RFC3339)})
}

// SetAutomatic switches automatic security updates on or off for a device.
func (s *Service) SetAutomatic(ctx context.Context, actor auditlog.Actor, d Device, on bool) error {
	s.mu.Lock()
	s.state(d).Automatic = on
	err := s.savePolicies()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.record(ctx, d, auditlog.ActionUpdatePolicy, actor, "automatic security updates",
		map[string]string{"automatic": fmt.Sprint(on)})
}

// HandleProgress takes a device's progress report (from its progress
// topic). A report for a version the device was not offered is refused.
func (s *Service) HandleProgress(ctx context.Context, d Device, payload []byte) error {
	p, err := ParseProgress(payload)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	s.mu.Lock()
	st := s.state(d)
	offered := st.savedVersion // restored after a restart, before the next check
	if st.target != nil {
		offered = st.target.Release.Version
	}
	if offered == "" || !validVersion(offered) || compareVersions(offered, p.Version) != 0 {
		s.mu.Unlock()
		return fmt.Errorf("progress from device %s for version %s: %w", d.ID, p.Version, ErrNoUpdate)
	}
	st.Stage, st.Updated, st.FailCode, st.Plain = string(p.Stage), s.cfg.Now(), p.Reason, ""
	if p.Stage == StageInstalled {
		st.Installed, st.Available = p.Version, nil
	}
	if p.Stage == StageFailed {
		st.Plain = "The device could not install the update (" + p.Reason + ")."
	}
	if p.Stage == StageInstalled || p.Stage == StageFailed {
		st.offer = nil // the update is over
	}
	s.mu.Unlock()
	s.saveStage(ctx, d.ID)
	s.log.InfoContext(ctx, "update progress", "device", d.ID, "version", p.Version, "stage", p.Stage, "reason", p.Reason)
	switch p.Stage {
	case StageInstalled, StageFailed:
		action, detail := auditlog.ActionUpdateInstall, map[string]string{"version": p.Version}
		if p.Stage == StageFailed {
			action, detail["reason"] = auditlog.ActionUpdateFail, p.Reason
		}
		s.cfg.Announce.OfferChanged(d.ID)
		return s.record(ctx, d, action, auditlog.Actor{Kind: auditlog.ActorDevice, ID: d.ID}, "firmware update", detail)
	}
	return nil
}

// Offer returns the message on the device's offer topic while an offer
// stands, nil otherwise: what the hub sends a device that subscribes, and
// publishes when the offer changes (Announcer).
func (s *Service) Offer(deviceID string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.states[deviceID]; ok {
		return st.offer
	}
	return nil
}

// FixReady reports whether a verified update that fixes advisoryID is
// ready for the device (offered, waiting for the owner, or postponed),
// and its version: the advisories service says so instead of only giving
// the advisory's workaround.
func (s *Service) FixReady(_ context.Context, deviceID, advisoryID string) (string, bool) {
	st, ok := s.Status(deviceID)
	if !ok || st.Available == nil {
		return "", false
	}
	for _, id := range st.Available.Fixes {
		if strings.EqualFold(id, advisoryID) {
			return st.Available.Version, true
		}
	}
	return "", false
}
