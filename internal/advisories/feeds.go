package advisories

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
)

// Transparency-log actions of feeds.
const (
	ActionFeedAdd    = "advisory.feed.add"
	ActionFeedRemove = "advisory.feed.remove"
)

// StaleAfter is how long a feed may go without a successful refresh
// before it is itself a warning: advisories that stopped arriving look
// exactly like "no known flaws".
const StaleAfter = 7 * 24 * time.Hour

// feedRefreshTimeout bounds the fetching of one feed: each request has
// its own timeout, and this stops a feed listing many slow documents from
// holding the schedule.
const feedRefreshTimeout = 10 * time.Minute

// OriginOperator marks a feed the operator added; a feed a manifest names
// has the origin "manifest:<device type>".
const OriginOperator = "operator"

// FeedStore is the part of store.Store that keeps feeds.
type FeedStore interface {
	PutAdvisoryFeed(ctx context.Context, f store.AdvisoryFeed) error
	AdvisoryFeeds(ctx context.Context) ([]store.AdvisoryFeed, error)
	DeleteAdvisoryFeed(ctx context.Context, url string) error
}

// FeedStatus is a feed and how its refreshes went.
type FeedStatus struct {
	URL         string    `json:"url"`
	Kind        string    `json:"kind"`
	Origin      string    `json:"origin"`
	AddedAt     time.Time `json:"added"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	Documents   int       `json:"documents"`
	// Fingerprint is the OpenPGP key the operator pinned for a CSAF feed.
	Fingerprint string `json:"fingerprint,omitempty"`
	// UnsignedAllowed is the operator's choice to let unsigned CSAF
	// documents in.
	UnsignedAllowed bool `json:"unsignedAllowed,omitempty"`
	// Signatures says how the last refresh checked OpenPGP signatures,
	// including when the provider lists no keys.
	Signatures string `json:"signatures,omitempty"`
	// Stale is true when the feed has not refreshed for StaleAfter.
	Stale bool `json:"stale"`
	// Plain says the feed's state in plain words.
	Plain string `json:"plain"`
}

func (s *Service) feedStore() (FeedStore, error) {
	if s.opts.Feeds == nil {
		return nil, ErrNoFeeds
	}
	return s.opts.Feeds, nil
}

// AddFeed adds a feed (or changes the kind of one already known) and
// records it. The actor comes from ctx (auditlog.WithActor). A CSAF feed
// added so requires OpenPGP signatures when its provider lists keys.
func (s *Service) AddFeed(ctx context.Context, url, kind, origin string) (FeedStatus, error) {
	return s.AddFeedWith(ctx, url, kind, origin, FeedSignatures{})
}

// AddFeedWith is AddFeed with the operator's choices about a CSAF feed's
// signatures: a pinned key fingerprint, and whether unsigned documents
// are let in. Adding a known feed again with other choices replaces them.
func (s *Service) AddFeedWith(ctx context.Context, url, kind, origin string, sig FeedSignatures) (FeedStatus, error) {
	fs, err := s.feedStore()
	if err != nil {
		return FeedStatus{}, err
	}
	if _, err := checkFeedURL(url); err != nil {
		return FeedStatus{}, err
	}
	if kind != FeedCSAF && kind != FeedOSV {
		return FeedStatus{}, ErrFeedURL.Errorf("feed kind %q is neither %q nor %q", kind, FeedCSAF, FeedOSV)
	}
	if kind == FeedCSAF && !strings.HasSuffix(url, "/provider-metadata.json") {
		return FeedStatus{}, ErrFeedURL.Errorf("a CSAF feed is the URL of the maker's provider-metadata.json, not %q", url)
	}
	if kind != FeedCSAF && sig != (FeedSignatures{}) {
		return FeedStatus{}, ErrFeedURL.Errorf("only a CSAF feed has OpenPGP signatures to pin or allow without")
	}
	if sig.Fingerprint != "" {
		if sig.Fingerprint, err = normFingerprint(sig.Fingerprint); err != nil {
			return FeedStatus{}, err
		}
	}
	if origin == "" {
		origin = OriginOperator
	}
	f := store.AdvisoryFeed{URL: url, Kind: kind, Origin: origin, AddedAt: s.opts.Now().UTC(),
		Fingerprint: sig.Fingerprint, UnsignedAllowed: sig.UnsignedAllowed}
	if old, ok, err := s.feed(ctx, url); err != nil {
		return FeedStatus{}, err
	} else if ok {
		if old.Kind == kind && old.Fingerprint == f.Fingerprint && old.UnsignedAllowed == f.UnsignedAllowed {
			return s.status(old), nil
		}
		// The kind or the signature choices changed: refresh history
		// starts again, the feed's age does not.
		f.AddedAt = old.AddedAt
	}
	if err := fs.PutAdvisoryFeed(ctx, f); err != nil {
		return FeedStatus{}, err
	}
	if err := s.recordFeed(ctx, ActionFeedAdd, f); err != nil {
		return FeedStatus{}, err
	}
	return s.status(f), nil
}

// RemoveFeed forgets a feed; the advisories it brought stay.
func (s *Service) RemoveFeed(ctx context.Context, url string) error {
	fs, err := s.feedStore()
	if err != nil {
		return err
	}
	f, ok, err := s.feed(ctx, url)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("remove feed %q: %w", url, store.ErrNotFound)
	}
	if err := fs.DeleteAdvisoryFeed(ctx, url); err != nil {
		return err
	}
	return s.recordFeed(ctx, ActionFeedRemove, f)
}

func (s *Service) recordFeed(ctx context.Context, action string, f store.AdvisoryFeed) error {
	if s.opts.Log == nil {
		return nil
	}
	if err := s.opts.Log.Record(ctx, auditlog.Event{Action: action, Purpose: "advisory feeds",
		Detail: feedDetail(f)}); err != nil {
		return fmt.Errorf("record %s %s: %w", action, f.URL, err)
	}
	return nil
}

func feedDetail(f store.AdvisoryFeed) map[string]string {
	d := map[string]string{"feed": clip(f.URL, auditlog.MaxDetailValLen), "kind": f.Kind, "origin": clip(f.Origin, auditlog.MaxDetailValLen)}
	if f.Fingerprint != "" {
		d["fingerprint"] = f.Fingerprint
	}
	if f.UnsignedAllowed {
		d["unsigned"] = "allowed"
	}
	return d
}

func (s *Service) feed(ctx context.Context, url string) (store.AdvisoryFeed, bool, error) {
	fs, err := s.feedStore()
	if err != nil {
		return store.AdvisoryFeed{}, false, err
	}
	all, err := fs.AdvisoryFeeds(ctx)
	if err != nil {
		return store.AdvisoryFeed{}, false, fmt.Errorf("list advisory feeds: %w", err)
	}
	for _, f := range all {
		if f.URL == url {
			return f, true, nil
		}
	}
	return store.AdvisoryFeed{}, false, nil
}

// Feeds lists every feed with its refresh state, stale ones first.
func (s *Service) Feeds(ctx context.Context) ([]FeedStatus, error) {
	if s.opts.Feeds == nil {
		return nil, nil
	}
	all, err := s.opts.Feeds.AdvisoryFeeds(ctx)
	if err != nil {
		return nil, fmt.Errorf("list advisory feeds: %w", err)
	}
	out := make([]FeedStatus, 0, len(all))
	for _, f := range all {
		out = append(out, s.status(f))
	}
	// Stale first, then by URL (the store's order), so a warning leads.
	stale := out[:0:0]
	var fresh []FeedStatus
	for _, f := range out {
		if f.Stale {
			stale = append(stale, f)
		} else {
			fresh = append(fresh, f)
		}
	}
	return append(stale, fresh...), nil
}

// StaleFeeds lists the feeds not refreshed for StaleAfter.
func (s *Service) StaleFeeds(ctx context.Context) ([]FeedStatus, error) {
	all, err := s.Feeds(ctx)
	if err != nil {
		return nil, err
	}
	var out []FeedStatus
	for _, f := range all {
		if f.Stale {
			out = append(out, f)
		}
	}
	return out, nil
}

// status works out whether a feed is stale and says so in plain words.
func (s *Service) status(f store.AdvisoryFeed) FeedStatus {
	now := s.opts.Now()
	since := f.LastSuccess
	if since.IsZero() {
		since = f.AddedAt
	}
	st := FeedStatus{URL: f.URL, Kind: f.Kind, Origin: f.Origin, AddedAt: f.AddedAt, LastAttempt: f.LastAttempt,
		LastSuccess: f.LastSuccess, LastError: f.LastError, Documents: f.Documents, Stale: now.Sub(since) >= StaleAfter,
		Fingerprint: f.Fingerprint, UnsignedAllowed: f.UnsignedAllowed, Signatures: f.Signatures}
	days := int(now.Sub(since) / (24 * time.Hour))
	switch {
	case st.Stale && f.LastSuccess.IsZero():
		st.Plain = fmt.Sprintf("This feed has never been read, and it was added %d days ago. New flaws may be missed.", days)
	case st.Stale:
		st.Plain = fmt.Sprintf("This feed was last read %d days ago. New flaws may be missed.", days)
	case f.LastSuccess.IsZero() && f.LastAttempt.IsZero():
		st.Plain = "This feed has not been read yet."
	case f.LastSuccess.IsZero():
		st.Plain = "The hub could not read this feed yet."
	case f.LastError != "":
		st.Plain = "This feed was read, but some of its files were refused."
	default:
		st.Plain = "This feed is up to date."
	}
	return st
}

// RefreshResult is what one refresh of one feed did.
type RefreshResult struct {
	Feed     FeedStatus `json:"feed"`
	Imported []string   `json:"imported,omitempty"` // ids of new or changed advisories
	Refused  []string   `json:"refused,omitempty"`  // why each refused document was refused
}

// RefreshFeed reads one feed now. Each document is imported on its own,
// all or nothing, with the checks of a file import; a refused document
// keeps nothing of itself and does not stop the others. The feed counts
// as refreshed when its index was read; an error means it was not.
func (s *Service) RefreshFeed(ctx context.Context, url string) (RefreshResult, error) {
	fs, err := s.feedStore()
	if err != nil {
		return RefreshResult{}, err
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	f, ok, err := s.feed(ctx, url)
	if err != nil {
		return RefreshResult{}, err
	}
	if !ok {
		return RefreshResult{}, fmt.Errorf("refresh feed %q: %w", url, store.ErrNotFound)
	}
	f.LastAttempt = s.opts.Now().UTC()
	fctx, cancel := context.WithTimeout(ctx, feedRefreshTimeout)
	got, ferr := newFetcher(s.opts.HTTP).fetch(fctx, f.Kind, f.URL, FeedSignatures{Fingerprint: f.Fingerprint, UnsignedAllowed: f.UnsignedAllowed})
	cancel()
	var res RefreshResult
	if ferr == nil {
		refused := got.errs
		for _, d := range got.docs {
			as, err := s.importDocs(ctx, []Document{d}, f.URL, true)
			var ve *ValidationError
			switch {
			case err == nil:
				for _, a := range as {
					res.Imported = append(res.Imported, a.ID)
				}
			case errors.As(err, &ve), errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLarge):
				refused = append(refused, err)
			default:
				// The store or the log failed: the refresh did not happen.
				ferr = err
			}
			if ferr != nil {
				break
			}
		}
		for _, e := range refused {
			res.Refused = append(res.Refused, e.Error())
		}
		if ferr == nil {
			f.LastSuccess, f.Documents, f.LastError, f.Signatures = f.LastAttempt, len(got.docs)+len(got.errs), "", got.signatures
			if got.unsigned > 0 {
				f.Signatures += fmt.Sprintf(" %d unsigned documents were let in.", got.unsigned)
			}
			if len(refused) > 0 {
				f.LastError = clip(fmt.Sprintf("%d of %d documents refused: %s", len(refused), f.Documents, refused[0]), 1000)
			}
		}
	}
	if ferr != nil {
		f.LastError = clip(ferr.Error(), 1000)
		s.opts.Logger.WarnContext(ctx, "advisory feed not refreshed", "feed", f.URL, "err", ferr)
	} else {
		s.opts.Logger.InfoContext(ctx, "advisory feed refreshed", "feed", f.URL, "documents", f.Documents,
			"imported", len(res.Imported), "refused", len(res.Refused))
	}
	if err := fs.PutAdvisoryFeed(ctx, f); err != nil {
		return res, fmt.Errorf("record refresh of feed %s: %w", f.URL, err)
	}
	res.Feed = s.status(f)
	if ferr != nil {
		return res, ferr
	}
	return res, nil
}

// RefreshFeeds refreshes every feed; one failing feed does not stop the
// others. It returns the results and the errors joined.
func (s *Service) RefreshFeeds(ctx context.Context) ([]RefreshResult, error) {
	all, err := s.Feeds(ctx)
	if err != nil {
		return nil, err
	}
	var (
		out  []RefreshResult
		errs []error
	)
	for _, f := range all {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		r, err := s.RefreshFeed(ctx, f.URL)
		out = append(out, r)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}
