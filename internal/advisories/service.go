package advisories

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
)

// ActionAdvisoryImport is the transparency-log action of an import.
const ActionAdvisoryImport = "advisory.import"

// Store is the part of store.Store the service uses.
type Store interface {
	PutAdvisories(ctx context.Context, as []store.Advisory) error
	Advisories(ctx context.Context) ([]store.Advisory, error)
}

// Inventory lists the devices to match, with their type's identifiers and
// their reported firmware.
type Inventory interface {
	Devices(ctx context.Context) ([]Device, error)
}

// Recorder appends to the transparency log.
type Recorder interface {
	Record(ctx context.Context, ev auditlog.Event) error
}

// Fixes tells whether a signed update that fixes a flaw is ready for a
// device. The updates service provides it; without it, findings give the
// advisory's own remediation.
type Fixes interface {
	FixReady(ctx context.Context, deviceID, advisoryID string) (version string, ok bool)
}

// FixProgress, when Fixes implements it, tells whether the ready fix is
// already on its way to the device.
type FixProgress interface {
	FixInstalling(ctx context.Context, deviceID, advisoryID string) bool
}

// Options configure a Service.
type Options struct {
	Store     Store     // required
	Inventory Inventory // required
	Log       Recorder  // records imports; nil records nothing
	Fixes     Fixes     // optional
	// Holder puts devices on hold until a flaw is fixed (the abuse
	// monitor's quarantine); nil means findings offer no hold.
	Holder Holder
	// Feeds keeps the advisory feeds; nil means the hub has no feeds.
	Feeds FeedStore
	// HTTP fetches feeds (a test passes its TLS server's client); nil
	// means a default client. Only https is ever fetched.
	HTTP   *http.Client
	Logger *slog.Logger
	Now    func() time.Time
}

// Service imports advisories and answers which devices they concern. It
// keeps the parsed advisories and their index in memory, rebuilt from the
// store at start and after each import.
type Service struct {
	opts Options

	mu     sync.Mutex
	loaded bool
	byID   map[string]*Advisory
	sums   map[string]string // SHA-256 of each stored document, by id
	ix     *Index

	refreshMu sync.Mutex // one feed refresh at a time
}

// New returns a Service.
func New(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{opts: opts}
}

// Document is one file to import.
type Document struct {
	Source string // a label for errors: the file name
	Data   []byte
}

// Import validates every document and stores them all in one
// transaction. If any is invalid, nothing is stored and the error names
// the document and the JSON path; a *ValidationError for each refused
// document is joined into the error.
func (s *Service) Import(ctx context.Context, docs []Document) ([]*Advisory, error) {
	return s.importDocs(ctx, docs, "", false)
}

// importDocs is Import. feed names the feed the documents came from in
// the log; skipSame leaves out documents whose stored copy is byte for
// byte the same, so a scheduled refresh does not log the same import
// again and again.
func (s *Service) importDocs(ctx context.Context, docs []Document, feed string, skipSame bool) ([]*Advisory, error) {
	if len(docs) == 0 {
		return nil, ErrInvalid.Errorf("no advisory documents to import")
	}
	var (
		parsed []*Advisory
		recs   []store.Advisory
		sums   []string
		errs   []error
	)
	now := s.opts.Now().UTC()
	seen := map[string]string{}
	for _, d := range docs {
		a, err := Parse(d.Source, d.Data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[a.ID]; dup {
			errs = append(errs, ErrInvalid.Errorf("%s and %s both carry advisory id %q", prev, d.Source, a.ID))
			continue
		}
		seen[a.ID] = d.Source
		sum := sha256.Sum256(d.Data)
		if skipSame && s.storedSum(ctx, a.ID) == hex.EncodeToString(sum[:]) {
			continue
		}
		parsed = append(parsed, a)
		sums = append(sums, hex.EncodeToString(sum[:]))
		recs = append(recs, store.Advisory{ID: a.ID, Format: string(a.Format), Modified: a.Modified, Document: d.Data, ImportedAt: now})
	}
	switch {
	case len(errs) == 1:
		return nil, errs[0]
	case len(errs) > 1:
		// One error that carries every refusal, so a caller showing its
		// detail shows them all.
		return nil, ErrInvalid.Errorf("%d of %d documents refused, so nothing was imported: %w", len(errs), len(docs), errors.Join(errs...))
	}
	if len(recs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return nil, err
	}
	if err := s.opts.Store.PutAdvisories(ctx, recs); err != nil {
		return nil, fmt.Errorf("store advisories: %w", err)
	}
	for i, a := range parsed {
		s.byID[a.ID] = a
		s.sums[a.ID] = sums[i]
	}
	s.reindexLocked()
	for i, a := range parsed {
		s.opts.Logger.InfoContext(ctx, "advisory imported", "advisory", a.ID, "format", a.Format)
		if s.opts.Log == nil {
			continue
		}
		detail := map[string]string{"advisory": a.ID, "format": string(a.Format), "sha256": sums[i]}
		if feed != "" {
			detail["feed"] = clip(feed, auditlog.MaxDetailValLen)
		}
		if err := s.opts.Log.Record(ctx, auditlog.Event{Action: ActionAdvisoryImport, Detail: detail}); err != nil {
			return parsed, fmt.Errorf("record advisory import %s: %w", a.ID, err)
		}
	}
	return parsed, nil
}

// loadLocked reads stored advisories once. A stored document that no
// longer parses (a newer schema rule) is skipped and logged by id, so one
// bad row does not hide the others.
func (s *Service) loadLocked(ctx context.Context) error {
	if s.loaded {
		return nil
	}
	rows, err := s.opts.Store.Advisories(ctx)
	if err != nil {
		return fmt.Errorf("load advisories: %w", err)
	}
	s.byID = make(map[string]*Advisory, len(rows))
	s.sums = make(map[string]string, len(rows))
	for _, r := range rows {
		sum := sha256.Sum256(r.Document)
		s.sums[r.ID] = hex.EncodeToString(sum[:])
		a, err := Parse(r.ID, r.Document)
		if err != nil {
			s.opts.Logger.WarnContext(ctx, "stored advisory no longer parses", "advisory", r.ID, "err", err)
			continue
		}
		s.byID[a.ID] = a
	}
	s.reindexLocked()
	s.loaded = true
	return nil
}

func (s *Service) reindexLocked() {
	all := make([]*Advisory, 0, len(s.byID))
	for _, a := range s.byID {
		all = append(all, a)
	}
	s.ix = NewIndex(all)
}

func (s *Service) index(ctx context.Context) (*Index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return nil, err
	}
	return s.ix, nil
}

// Findings returns the open findings of a household's devices ("" for
// every household), worst first.
func (s *Service) Findings(ctx context.Context, householdID string) ([]Finding, error) {
	ix, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	devs, err := s.opts.Inventory.Devices(ctx)
	if err != nil {
		return nil, fmt.Errorf("list devices to match: %w", err)
	}
	var mine []Device
	for _, d := range devs {
		if householdID == "" || d.HouseholdID == householdID {
			mine = append(mine, d)
		}
	}
	return ix.MatchAll(mine), nil
}

// DeviceFindings returns the open findings of one device.
func (s *Service) DeviceFindings(ctx context.Context, deviceID string) ([]Finding, error) {
	all, err := s.Findings(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, f := range all {
		if f.Device.ID == deviceID {
			out = append(out, f)
		}
	}
	return out, nil
}

// Has reports whether an advisory with this id is held.
func (s *Service) Has(ctx context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return false, err
	}
	_, ok := s.byID[id]
	return ok, nil
}

// storedSum is the SHA-256 of the stored document with this id, or "".
func (s *Service) storedSum(ctx context.Context, id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return ""
	}
	return s.sums[id]
}

// clip cuts v to n bytes, for log fields with a hard limit.
func clip(v string, n int) string {
	if len(v) <= n {
		return v
	}
	return v[:n]
}

// Count is the number of advisories held.
func (s *Service) Count(ctx context.Context) (int, error) {
	ix, err := s.index(ctx)
	if err != nil {
		return 0, err
	}
	return ix.Len(), nil
}
