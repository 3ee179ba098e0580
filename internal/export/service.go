package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// Store is the storage the export service reads.
type Store interface {
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
	Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error)
}

// A Store that is also a StreamCounter (store.Store is) spares an export
// one pass over every reading: see Device.Streams.

// Catalog supplies the manifest versions that go into an export.
type Catalog interface {
	Versions(ctx context.Context, deviceType string) ([]*catalog.Entry, error)
	Version(ctx context.Context, deviceType string, version int) (*catalog.Entry, error)
}

// Opener decrypts sealed readings under their device's key owner (the
// vault).
type Opener interface {
	OpenReadings(ownerID, deviceID string, rs []store.Reading) error
}

// IdentityOpener decrypts sealed readings with the person's own age
// identity (user-held mode).
type IdentityOpener interface {
	OpenReadingsWithIdentity(ownerID, deviceID string, rs []store.Reading, identity age.Identity) error
}

// ConsentHistory supplies consent records.
type ConsentHistory interface {
	History(ctx context.Context, q consent.HistoryQuery) ([]consent.Record, error)
}

// LogExporter writes entries of the transparency log with their proofs
// (*auditlog.Log does).
type LogExporter interface {
	Export(ctx context.Context, w io.Writer, opts auditlog.ExportOptions) (auditlog.ExportSummary, error)
}

// Recorder records the service's actions in the transparency log
// (*auditlog.Log does).
type Recorder interface {
	Record(ctx context.Context, ev auditlog.Event) error
}

// ServiceConfig wires the export service to the rest of the hub. Store
// and Catalog are required; what else is set decides what an export
// holds and how it is made.
type ServiceConfig struct {
	Store   Store
	Catalog Catalog
	// Opener opens sealed readings; without it readings are exported as
	// stored.
	Opener Opener
	// IdentityOpener opens history under keys only their owner holds,
	// with the identity the person gives for one export.
	IdentityOpener IdentityOpener
	// Keys tells whether history is under such keys, so that an export
	// the hub could not complete is refused before it starts.
	Keys vault.StatusReader
	// Consent supplies the consent records of the household's devices.
	Consent ConsentHistory
	// Log supplies the person's and the household's transparency-log
	// entries, with proofs.
	Log LogExporter
	// Recorder records every export before any data is read: an export
	// that cannot be recorded is not made.
	Recorder Recorder
	// Jobs prepares exports in the background (Start and the job
	// methods); without it those return ErrJobsOff.
	Jobs *Jobs
	// Elsewhere, when set, returns the account's jobs that other hub
	// nodes run (each job lives on the node that started it), so that
	// List is whole on any node, and names the nodes whose jobs it
	// could not have (JobList.Unanswered, JobList.NotAsked).
	Elsewhere func(ctx context.Context, accountID string) (JobList, error)
}

// JobList is a person's exports as List found them: the jobs, and the
// hub nodes whose jobs are missing from it. On a hub of several nodes
// each job lives on the node that started it, and a node that does not
// answer leaves its jobs out; the person is told rather than shown a
// shorter list as if it were whole.
type JobList struct {
	// Jobs are the exports the hub still keeps, newest first.
	Jobs []JobStatus
	// Unanswered names the hub nodes that were asked for their jobs and
	// did not answer in time, sorted.
	Unanswered []string
	// NotAsked names the live hub nodes that do not answer such requests
	// (an older version during a rolling upgrade, or a node still
	// starting), sorted: nobody waited for them.
	NotAsked []string
}

// Complete reports whether no hub node's jobs are missing.
func (l JobList) Complete() bool { return len(l.Unanswered) == 0 && len(l.NotAsked) == 0 }

// Missing returns the number of hub nodes whose jobs are missing.
func (l JobList) Missing() int { return len(l.Unanswered) + len(l.NotAsked) }

// Service makes people's data exports, for the API and the pages alike:
// it decides what goes into a person's export (their household's devices,
// readings, manifests and consent records, and their log entries),
// refuses up front an export it could not complete, and records each
// export in the transparency log. Transports authenticate the person and
// write the response; they decide nothing here.
type Service struct {
	cfg ServiceConfig
}

// NewService returns the export service.
func NewService(cfg ServiceConfig) *Service {
	return &Service{cfg: cfg}
}

// Errors of the export service.
var (
	// ErrNotAPerson refuses an export with no account to make it for (the
	// hub operator): an export is one person's.
	ErrNotAPerson = &problem.Kind{Status: http.StatusBadRequest, Type: "bad-request",
		Text: "export: no person to export for", Detail: "an export is a person's: log in as a member of the household"}
	// ErrLocked is the kind of a LockedError: history sealed under a key
	// only its owner holds.
	ErrLocked = &problem.Kind{Status: http.StatusConflict, Type: "user-held",
		Text: "export: history sealed under a key only its owner holds"}
	// ErrJobsOff: the service was built without Jobs.
	ErrJobsOff = errors.New("export: background exports not configured")
)

// Prepared is an export that was checked and recorded, ready to write.
type Prepared struct {
	src    Source
	person Person
}

// Write writes the archive to w (see the package documentation for its
// layout and what a failure leaves behind).
func (p *Prepared) Write(ctx context.Context, w io.Writer, now time.Time) error {
	return Write(ctx, w, p.src, p.person, now, nil)
}

// Prepare checks that acc's household data can be exported, records the
// export, and returns it ready to write. It reads no data before the
// record is made. History under a key only its owner holds is refused
// with a *LockedError, before anything is recorded.
func (s *Service) Prepare(ctx context.Context, acc store.Account) (*Prepared, error) {
	if acc.ID == "" {
		return nil, ErrNotAPerson
	}
	if err := s.checkExportable(ctx, acc); err != nil {
		return nil, err
	}
	if err := s.record(ctx, acc); err != nil {
		return nil, err
	}
	return &Prepared{src: s.source(acc, nil), person: personOf(acc)}, nil
}

// Start starts preparing acc's export in the background, or returns acc's
// export that is already running (started false), here or, with
// Elsewhere, on another hub node. identity, if not nil,
// opens history under keys only the person holds (user-held mode), for
// this job only; without it such history makes the export refused up
// front with a *LockedError. The export is recorded only when a new job
// starts, before it reads anything.
//
// The job reads the household's data as acc for as long as it runs, with
// ctx's values but not its cancellation: it outlives the request that
// started it.
func (s *Service) Start(ctx context.Context, acc store.Account, identity age.Identity) (st JobStatus, started bool, err error) {
	if s.cfg.Jobs == nil {
		return JobStatus{}, false, ErrJobsOff
	}
	if acc.ID == "" {
		return JobStatus{}, false, ErrNotAPerson
	}
	if identity == nil {
		if err := s.checkExportable(ctx, acc); err != nil {
			return JobStatus{}, false, err
		}
	}
	if st, ok := s.runningElsewhere(ctx, acc.ID); ok {
		return st, false, nil
	}
	ctx = auditlog.WithActor(ctx, auditlog.Actor{Kind: auditlog.ActorPerson, ID: acc.ID})
	return s.cfg.Jobs.Start(ctx, acc.ID, personOf(acc), func(ctx context.Context) (Source, error) {
		if err := s.record(ctx, acc); err != nil {
			return nil, err
		}
		return s.source(acc, identity), nil
	})
}

// runningElsewhere finds the account's export running on another hub
// node, when none runs here: a person has one running export at a time,
// whichever node they ask, as on one hub. A node that does not answer
// in time may hold one; a second job then starts here, which is only
// work done twice.
func (s *Service) runningElsewhere(ctx context.Context, accountID string) (JobStatus, bool) {
	if s.cfg.Elsewhere == nil {
		return JobStatus{}, false
	}
	for _, st := range s.cfg.Jobs.List(accountID) {
		if st.State == JobRunning {
			return JobStatus{}, false // Jobs.Start finds it
		}
	}
	more, _ := s.cfg.Elsewhere(ctx, accountID)
	for _, st := range more.Jobs {
		if st.Owner == accountID && st.State == JobRunning {
			return st, true
		}
	}
	return JobStatus{}, false
}

// Background reports whether the service prepares exports in the
// background (it was given Jobs).
func (s *Service) Background() bool { return s.cfg.Jobs != nil }

// List returns the account's exports the hub still keeps, newest first:
// on a hub of several nodes, those of every node that answered
// (Elsewhere), with the nodes that did not named in the list. An error
// (the other nodes could not be asked) comes with the jobs it could have
// and, when known, those nodes named.
func (s *Service) List(ctx context.Context, accountID string) (JobList, error) {
	if s.cfg.Jobs == nil || accountID == "" {
		return JobList{}, nil
	}
	out := JobList{Jobs: s.cfg.Jobs.List(accountID)}
	if s.cfg.Elsewhere == nil {
		return out, nil
	}
	more, err := s.cfg.Elsewhere(ctx, accountID)
	out.Unanswered, out.NotAsked = more.Unanswered, more.NotAsked
	seen := make(map[string]bool, len(out.Jobs))
	for _, st := range out.Jobs {
		seen[st.ID] = true
	}
	for _, st := range more.Jobs {
		// Another node's answer is trusted no further than this: a job
		// of another account never reaches this one's list.
		if st.Owner == accountID && !seen[st.ID] {
			seen[st.ID] = true
			out.Jobs = append(out.Jobs, st)
		}
	}
	sortJobs(out.Jobs)
	if err != nil {
		return out, fmt.Errorf("export jobs on other hub nodes: %w", err)
	}
	return out, nil
}

// Status reports how far one of the account's exports got.
func (s *Service) Status(accountID, jobID string) (JobStatus, error) {
	if s.cfg.Jobs == nil {
		return JobStatus{}, ErrJobsOff
	}
	return s.cfg.Jobs.Status(accountID, jobID)
}

// Open returns the archive of one of the account's finished exports,
// decrypted as it is read.
func (s *Service) Open(ctx context.Context, accountID, jobID string) (io.ReadCloser, JobStatus, error) {
	if s.cfg.Jobs == nil {
		return nil, JobStatus{}, ErrJobsOff
	}
	return s.cfg.Jobs.Open(ctx, accountID, jobID)
}

// Cancel stops one of the account's exports if it runs, and deletes it
// and its archive either way.
func (s *Service) Cancel(accountID, jobID string) error {
	if s.cfg.Jobs == nil {
		return ErrJobsOff
	}
	return s.cfg.Jobs.Cancel(accountID, jobID)
}

func personOf(acc store.Account) Person { return Person{ID: acc.ID, Username: acc.Username} }

// record notes in the transparency log that acc takes a copy of the
// household's data.
func (s *Service) record(ctx context.Context, acc store.Account) error {
	if s.cfg.Recorder == nil {
		return nil
	}
	ev := auditlog.Event{Action: auditlog.ActionReadingsExport, Household: acc.HouseholdID,
		Subject: auditlog.Subject{Account: acc.ID}, Purpose: "data export requested by the person"}
	if err := s.cfg.Recorder.Record(ctx, ev); err != nil {
		return fmt.Errorf("record the export in the transparency log: %w", err)
	}
	return nil
}

// checkExportable refuses an export the hub could not complete: history
// sealed under a key only its owner holds (user-held mode) cannot be put
// in it. Saying so up front beats a broken archive half way through.
func (s *Service) checkExportable(ctx context.Context, acc store.Account) error {
	if s.cfg.Keys == nil {
		return nil
	}
	devs, err := s.cfg.Store.Devices(ctx, acc.HouseholdID)
	if err != nil {
		return err
	}
	if vault.AnyUserHeld(s.cfg.Keys, devs) {
		return &LockedError{Msg: "some of this household's history is locked with a key only its owner holds (user-held mode), so the hub cannot put it in an export; switch back to hub-assisted mode with the age identity (PUT /api/v1/keys/me or /household, or My data, Your keys), then export again"}
	}
	return nil
}
