// Package history reads people's readings back to them. Every read that
// returns readings is recorded in the transparency log before the
// readings are handed over, and a read that cannot be recorded returns
// nothing. The API and the pages both read through one Service, so
// neither can show history without the record.
package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// Store is the part of storage the service reads.
type Store interface {
	Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error)
}

// Opener decrypts sealed readings under their device's key owner
// (*vault.Vault is one).
type Opener interface {
	OpenReadings(ownerID, deviceID string, rs []store.Reading) error
}

// Options configure a Service.
type Options struct {
	Store Store
	// Vault opens what Latest returns. Without it readings come back as
	// stored.
	Vault Opener
	// Log, when set, records every read that returns readings.
	Log auditlog.Recorder
	// PageSize is the most readings one store query returns in Latest
	// (default 1000).
	PageSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultPageSize is the default of Options.PageSize.
const DefaultPageSize = 1000

// maxPages bounds the rows Latest reads per stream and time window.
const maxPages = 20

// recentWindows are the time spans Latest searches, smallest first: the
// store returns readings oldest first, so the newest are found by
// narrowing the time instead of reading them all.
var recentWindows = []time.Duration{
	15 * time.Minute, 2 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 60 * 24 * time.Hour, 0,
}

// Service reads history. It is safe for concurrent use.
type Service struct {
	st   Store
	v    Opener
	log  auditlog.Recorder
	page int
	now  func() time.Time
}

// New returns a Service.
func New(opts Options) *Service {
	s := &Service{st: opts.Store, v: opts.Vault, log: opts.Log, page: opts.PageSize, now: opts.Now}
	if s.page <= 0 {
		s.page = DefaultPageSize
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// ActionReadingsRefused is the transparency-log action of a read the hub
// could not serve because it could not open the readings (they are
// sealed under the person's own key, shredded, or the identity given was
// wrong): a refusal, not a view.
const ActionReadingsRefused = "readings.refuse"

// Open decrypts readings in place; Read takes one from its caller, who
// knows whether to use the hub's keys or the person's own identity.
type Open func(rs []store.Reading) error

// Read returns the readings of device d that q selects, opened with open
// (nil returns them as stored). The read is recorded first, with the
// stream and time range asked for and the number of readings, for the
// purpose given; a read open fails on is recorded as refused, with the
// reason, and returns open's error.
func (s *Service) Read(ctx context.Context, d store.Device, q store.ReadingQuery, purpose string, open Open) ([]store.Reading, error) {
	q.DeviceID = d.ID
	list, err := s.st.Readings(ctx, q)
	if err != nil {
		return nil, err
	}
	ev := auditlog.Event{Action: auditlog.ActionReadingsRead, Household: d.HouseholdID,
		Subject: auditlog.Subject{Device: d.ID, Stream: q.Stream, From: q.Since, To: q.Until},
		Purpose: purpose, Detail: map[string]string{"readings": strconv.Itoa(len(list))}}
	if open != nil {
		if err := open(list); err != nil {
			return nil, s.refused(ctx, ev, err)
		}
	}
	if err := s.record(ctx, len(list), ev); err != nil {
		return nil, err
	}
	return list, nil
}

// Latest returns up to want of the latest readings of each stream of d,
// oldest first, opened under the device's key owner. The whole view is
// recorded as one read, with the number of readings returned; a view the
// hub cannot open is recorded as refused and returns the vault's error
// (vault.ErrUserHeld when only the person's own key opens it).
func (s *Service) Latest(ctx context.Context, d store.Device, streams []string, want int, purpose string) (map[string][]store.Reading, error) {
	var open Open
	if s.v != nil {
		open = func(rs []store.Reading) error { return s.v.OpenReadings(d.KeyOwnerID(), d.ID, rs) }
	}
	return s.LatestOpened(ctx, d, streams, want, purpose, open)
}

// LatestOpened is Latest with the caller's way of opening the readings:
// with the person's own identity, for history only their key opens
// (user-held mode). nil returns them as stored.
func (s *Service) LatestOpened(ctx context.Context, d store.Device, streams []string, want int, purpose string, open Open) (map[string][]store.Reading, error) {
	out := make(map[string][]store.Reading, len(streams))
	n := 0
	for _, stream := range streams {
		rs, err := s.recent(ctx, d.ID, stream, want)
		if err != nil {
			return nil, err
		}
		out[stream] = rs
		n += len(rs)
	}
	ev := auditlog.Event{Action: auditlog.ActionReadingsRead, Household: d.HouseholdID,
		Subject: auditlog.Subject{Device: d.ID}, Purpose: purpose,
		Detail: map[string]string{"readings": strconv.Itoa(n)}}
	if open != nil {
		for _, stream := range streams {
			if err := open(out[stream]); err != nil {
				return nil, s.refused(ctx, ev, fmt.Errorf("open readings of %s/%s: %w", d.ID, stream, err))
			}
		}
	}
	if err := s.record(ctx, n, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// refused records a read that could not be served as a refusal, with a
// reason in a word, and returns err (or the log's failure with it).
func (s *Service) refused(ctx context.Context, ev auditlog.Event, err error) error {
	if s.log == nil {
		return err
	}
	ev.Action = ActionReadingsRefused
	ev.Detail["reason"] = refusalReason(err)
	if lerr := s.log.Record(ctx, ev); lerr != nil {
		return errors.Join(err, fmt.Errorf("record the refused read in the transparency log: %w", lerr))
	}
	return err
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, vault.ErrUserHeld):
		return "user-held"
	case errors.Is(err, vault.ErrShredded):
		return "shredded"
	case errors.Is(err, vault.ErrWrongIdentity):
		return "wrong-identity"
	}
	return "unreadable"
}

// record logs a read that returned readings; a read of nothing is not
// logged.
func (s *Service) record(ctx context.Context, n int, ev auditlog.Event) error {
	if s.log == nil || n == 0 {
		return nil
	}
	if err := s.log.Record(ctx, ev); err != nil {
		return fmt.Errorf("record the read in the transparency log: %w", err)
	}
	return nil
}

// recent returns up to want of a stream's latest readings, oldest first.
func (s *Service) recent(ctx context.Context, deviceID, stream string, want int) ([]store.Reading, error) {
	now := s.now()
	var kept []store.Reading
	for _, w := range recentWindows {
		q := store.ReadingQuery{DeviceID: deviceID, Stream: stream, Limit: s.page}
		if w > 0 {
			q.Since = now.Add(-w)
		}
		kept = kept[:0]
		for range maxPages {
			batch, err := s.st.Readings(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("readings of %s/%s: %w", deviceID, stream, err)
			}
			kept = append(kept, batch...)
			if len(kept) > want {
				kept = append(kept[:0], kept[len(kept)-want:]...)
			}
			if len(batch) < s.page {
				break
			}
			q.AfterSeq = batch[len(batch)-1].Seq
		}
		if len(kept) >= want {
			break
		}
	}
	return kept, nil
}
