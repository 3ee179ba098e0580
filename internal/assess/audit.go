package assess

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/tlscert"
)

// Store is the part of storage the assessments read and write.
type Store interface {
	Households(ctx context.Context) ([]store.Household, error)
	Accounts(ctx context.Context, householdID string) ([]store.Account, error)
	AllDevices(ctx context.Context) ([]store.Device, error)
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
	ConsentDecisions(ctx context.Context, deviceID string) ([]store.ConsentDecision, error)
	ConsentRoutings(ctx context.Context, deviceID string) ([]store.ConsentRouting, error)
	KeyOwner(ctx context.Context, ownerID string) (store.KeyOwner, error)
	RecipientEndpoints(ctx context.Context, householdID string) ([]store.RecipientEndpoint, error)
	store.AssessStore
}

// Manifests gives the manifest in force of a device type.
type Manifests interface {
	Current(deviceType string) (*catalog.Entry, error)
}

// Presence tells whether a device is connected now.
type Presence interface {
	Connected(deviceID string) bool
}

// Listener is one network listener of the hub as configured.
type Listener struct {
	Name string // "MQTT", "MQTT over WebSocket", "HTTP", …
	Flag string // the setting that moves it, such as --mqtt-addr
	Addr string // host:port as configured
	TLS  bool
}

// Config wires the assessments to the hub. Store, Manifests and Log are
// required; the optional parts are described in optional.go.
type Config struct {
	Store     Store
	Manifests Manifests
	Log       auditlog.Recorder
	Presence  Presence // optional
	Logger    *slog.Logger

	// DataDir is the hub's data directory, whose files must stay private.
	DataDir string
	// Listeners are the hub's listeners as configured.
	Listeners []Listener
	// Certificate is the TLS certificate the hub serves (nil: no TLS);
	// Hosts are the names and addresses devices may use to reach it.
	Certificate *x509.Certificate
	Hosts       tlscert.Hosts
	// MetricsURL is /metrics on the hub's own HTTP listener, fetched
	// without credentials to check that it asks for them (also settable
	// later with SetMetricsURL, once the listener is bound); Client
	// fetches it (default http.DefaultClient).
	MetricsURL string
	Client     *http.Client
	// RotationPeriod is how old a device credential may grow (0: no
	// limit).
	RotationPeriod time.Duration
	// UnseenAfter is how long a device may stay silent while holding a
	// valid credential (default 90 days).
	UnseenAfter time.Duration
	// CheckpointMaxAge is how long the log's checkpoint may go without
	// being fetched or exported (default 30 days). LogSize reports how
	// many entries the log has.
	CheckpointMaxAge time.Duration
	LogSize          func() uint64

	// Consent gives the state of each use for the privacy impact
	// assessment (optional: without it every use counts as its default).
	Consent ConsentState
	// Key signs each version of a generated report (PIA, conformance).
	Key ed25519.PrivateKey
	// Live runs the conformance report's tests against the hub's own
	// listeners (optional).
	Live LiveTests

	Support    SupportStatus
	Advisories OpenAdvisories
	Feeds      AdvisoryFeeds
	Updates    UpdateMetadata
	Quarantine Quarantined
	SecondFA   SecondFactors
	// AdminSecondFactorRequired says the hub makes the admin enrol a
	// second factor before anything else.
	AdminSecondFactorRequired bool
	// MonitorKeep is how long abuse monitoring keeps its counts per
	// device and window, for the assessment to say (0: not said).
	MonitorKeep time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Marks kept in the store.
const (
	// MarkCheckpoint is the last time the log's signed checkpoint left
	// the hub: fetched from /api/v1/log/checkpoint or in a log export.
	MarkCheckpoint = "log.checkpoint.fetched"
	markLastRun    = "audit.run"
)

// Errors callers act on.
var (
	ErrInvalid = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-input", Text: "invalid input"}
	// ErrForbidden is a person acting on a finding of their own household
	// that only its owners (or, for the hub, the admin) may act on.
	ErrForbidden = &problem.Kind{Status: http.StatusForbidden, Type: "forbidden", Text: "forbidden"}
)

// Service runs the audit and keeps its findings.
type Service struct {
	cfg Config
	log *slog.Logger

	runMu sync.Mutex // one run at a time: runs replace the open set

	markMu     sync.Mutex
	lastMarked time.Time

	urlMu      sync.Mutex
	metricsURL string

	pubMu sync.Mutex // one new report version at a time
}

// SetMetricsURL sets the URL the metrics check probes.
func (s *Service) SetMetricsURL(u string) {
	s.urlMu.Lock()
	s.metricsURL = u
	s.urlMu.Unlock()
}

func (s *Service) metricsURLNow() string {
	s.urlMu.Lock()
	defer s.urlMu.Unlock()
	return s.metricsURL
}

// New builds the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UnseenAfter <= 0 {
		cfg.UnseenAfter = 90 * 24 * time.Hour
	}
	if cfg.CheckpointMaxAge <= 0 {
		cfg.CheckpointMaxAge = 30 * 24 * time.Hour
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &Service{cfg: cfg, log: cfg.Logger, metricsURL: cfg.MetricsURL}
}

// Run runs every check now, stores what it found (closing what it no
// longer finds) and returns the whole report.
func (s *Service) Run(ctx context.Context) (Report, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	now := s.cfg.Now().UTC()
	r := &run{s: s, now: now}
	statuses := make([]CheckStatus, 0, len(checks))
	for _, c := range checks {
		st := CheckStatus{Name: c.name, Title: c.title, Available: true}
		if c.available != nil {
			if note := c.available(s); note != "" {
				st.Available, st.Note = false, note
			}
		}
		if st.Available {
			if err := c.run(r, ctx); err != nil {
				return Report{}, fmt.Errorf("audit check %s: %w", c.name, err)
			}
		}
		statuses = append(statuses, st)
	}
	rows := make([]store.AuditFinding, 0, len(r.found))
	for _, f := range r.found {
		doc, err := json.Marshal(f)
		if err != nil {
			return Report{}, fmt.Errorf("audit: encode finding %s: %w", f.ID, err)
		}
		rows = append(rows, store.AuditFinding{ID: f.ID, Check: f.Check, Severity: string(f.Severity),
			HouseholdID: f.Household, Subject: f.Subject, Doc: doc, FirstSeen: now, LastSeen: now})
	}
	if err := s.cfg.Store.SaveAuditRun(ctx, rows, now); err != nil {
		return Report{}, err
	}
	if err := s.cfg.Store.SetAuditMark(ctx, markLastRun, now); err != nil {
		return Report{}, err
	}
	s.log.Info("audit run", "findings", len(rows))
	rep, err := s.report(ctx, access.Operator(), false)
	if err != nil {
		return Report{}, err
	}
	rep.Checks = statuses
	return rep, nil
}

// Findings returns the latest findings p may see: a person their own
// household's, the admin and the operator all of them.
func (s *Service) Findings(ctx context.Context, p access.Principal, withClosed bool) (Report, error) {
	rep, err := s.report(ctx, p, withClosed)
	if err != nil {
		return Report{}, err
	}
	for _, c := range checks {
		st := CheckStatus{Name: c.name, Title: c.title, Available: true}
		if c.available != nil {
			if note := c.available(s); note != "" {
				st.Available, st.Note = false, note
			}
		}
		rep.Checks = append(rep.Checks, st)
	}
	return rep, nil
}

func (s *Service) report(ctx context.Context, p access.Principal, withClosed bool) (Report, error) {
	rows, err := s.cfg.Store.AuditFindings(ctx, withClosed)
	if err != nil {
		return Report{}, err
	}
	sups, err := s.activeSuppressions(ctx)
	if err != nil {
		return Report{}, err
	}
	ran, err := s.cfg.Store.AuditMark(ctx, markLastRun)
	if err != nil {
		return Report{}, err
	}
	rep := Report{RanAt: ran, Findings: []Finding{}}
	for _, row := range rows {
		if !p.CanSeeFinding(row.HouseholdID) {
			continue
		}
		var f Finding
		if err := json.Unmarshal(row.Doc, &f); err != nil {
			return Report{}, fmt.Errorf("audit: finding %s: %w", row.ID, err)
		}
		f.FirstSeen, f.LastSeen = row.FirstSeen, row.LastSeen
		if !row.Open() {
			c := row.ClosedAt
			f.ClosedAt = &c
		} else if sup, ok := sups[row.ID]; ok {
			f.Suppressed = &sup
		}
		rep.Findings = append(rep.Findings, f)
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int {
		if a.ClosedAt == nil != (b.ClosedAt == nil) {
			if a.ClosedAt == nil {
				return -1
			}
			return 1
		}
		return b.Severity.Rank() - a.Severity.Rank()
	})
	return rep, nil
}

// activeSuppressions are those not yet expired, by finding id: an
// expired one no longer hides its finding, which so comes back.
func (s *Service) activeSuppressions(ctx context.Context) (map[string]Suppression, error) {
	all, err := s.cfg.Store.AuditSuppressions(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := make(map[string]Suppression, len(all))
	for _, sup := range all {
		if now.Before(sup.Until) {
			out[sup.FindingID] = Suppression{Reason: sup.Reason, By: sup.By, CreatedAt: sup.CreatedAt, Until: sup.Until}
		}
	}
	return out, nil
}

// Longest a suppression may last, so a hidden problem is looked at again.
const (
	MaxSuppression   = 365 * 24 * time.Hour
	maxReasonLen     = 500
	minReasonLetters = 3
)

// Suppress hides an open finding until until, for reason, and records it
// in the transparency log. Who may: the owners of the finding's
// household, or the admin for hub-wide findings.
func (s *Service) Suppress(ctx context.Context, p access.Principal, findingID, reason string, until time.Time) error {
	f, err := s.finding(ctx, p, findingID)
	if err != nil {
		return err
	}
	if !p.CanSuppressFinding(f.HouseholdID) {
		return ErrForbidden.Errorf("only an owner of the household, or the admin for the hub, may suppress this finding")
	}
	now := s.cfg.Now().UTC()
	switch {
	case len([]rune(reason)) < minReasonLetters || len(reason) > maxReasonLen:
		return ErrInvalid.Errorf("reason: say in 3 to %d characters why this finding may wait", maxReasonLen)
	case !until.After(now):
		return ErrInvalid.Errorf("until: give a time in the future")
	case until.Sub(now) > MaxSuppression:
		return ErrInvalid.Errorf("until: at most one year ahead, so the finding is looked at again")
	}
	sup := store.AuditSuppression{FindingID: f.ID, HouseholdID: f.HouseholdID, Reason: reason,
		By: p.Account.ID, CreatedAt: now, Until: until.UTC()}
	if err := s.cfg.Store.PutAuditSuppression(ctx, sup); err != nil {
		return err
	}
	return s.cfg.Log.Record(ctx, auditlog.Event{Actor: p.Actor(), Action: ActionFindingSuppress, Household: f.HouseholdID,
		Subject: subjectOf(f), Purpose: "security audit",
		Detail: map[string]string{"finding": f.ID, "check": f.Check, "until": sup.Until.Format(time.RFC3339)}})
}

// Unsuppress lifts a suppression at once, recorded like Suppress.
func (s *Service) Unsuppress(ctx context.Context, p access.Principal, findingID string) error {
	f, err := s.finding(ctx, p, findingID)
	if err != nil {
		return err
	}
	if !p.CanSuppressFinding(f.HouseholdID) {
		return ErrForbidden.Errorf("only an owner of the household, or the admin for the hub, may lift this suppression")
	}
	if err := s.cfg.Store.DeleteAuditSuppression(ctx, f.ID); err != nil {
		return err
	}
	return s.cfg.Log.Record(ctx, auditlog.Event{Actor: p.Actor(), Action: ActionFindingUnsuppress, Household: f.HouseholdID,
		Subject: subjectOf(f), Purpose: "security audit", Detail: map[string]string{"finding": f.ID, "check": f.Check}})
}

// Transparency-log actions of the audit.
const (
	ActionFindingSuppress   = "security.finding.suppress"
	ActionFindingUnsuppress = "security.finding.unsuppress"
)

func subjectOf(f store.AuditFinding) auditlog.Subject {
	if f.Check == checkDeviceCredentialAge || f.Check == checkUnseen || f.Check == checkChosenSecret {
		return auditlog.Subject{Device: f.Subject}
	}
	return auditlog.Subject{}
}

// finding returns a finding p may see; others are not found.
func (s *Service) finding(ctx context.Context, p access.Principal, id string) (store.AuditFinding, error) {
	rows, err := s.cfg.Store.AuditFindings(ctx, true)
	if err != nil {
		return store.AuditFinding{}, err
	}
	for _, f := range rows {
		if f.ID == id && p.CanSeeFinding(f.HouseholdID) {
			return f, nil
		}
	}
	return store.AuditFinding{}, &access.NotFoundError{Kind: "finding", ID: id}
}

// CheckpointFetched notes that the log's signed checkpoint left the hub.
// It writes at most once an hour, since anyone may fetch the checkpoint.
func (s *Service) CheckpointFetched(ctx context.Context) {
	now := s.cfg.Now()
	s.markMu.Lock()
	if now.Sub(s.lastMarked) < time.Hour {
		s.markMu.Unlock()
		return
	}
	s.lastMarked = now
	s.markMu.Unlock()
	if err := s.cfg.Store.SetAuditMark(ctx, MarkCheckpoint, now); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("note checkpoint fetch", "err", err)
	}
}

// Loop runs the audit at once and then every interval until ctx ends
// (interval ≤ 0: never). Reports whose facts changed get their new
// signed version on each tick after the first, rather than only when
// someone next asks; the first is left out so a starting hub writes
// nothing to the transparency log on its own.
func (s *Service) Loop(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		if _, err := s.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduled audit run", "err", err)
		}
		if !first && s.cfg.Key != nil {
			if err := s.RefreshPIAs(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("scheduled privacy impact assessments", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
