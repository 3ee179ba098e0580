// Package retention removes readings once they are older than the hub
// may keep them: the shorter of what the device type's manifest declares
// and what the person chose for the stream.
//
// It serves clause 2B of the IoT Good Practice paper (people decide how
// long their data is kept, and the promise in the label is kept by the
// hub, not by goodwill). Freed database pages are reused by later
// readings, and the erasure purger returns spare ones to the file system
// in bounded steps (incremental auto_vacuum), so the file shrinks over time.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/store"
)

// Store is what the job needs from storage.
type Store interface {
	AllDevices(ctx context.Context) ([]store.Device, error)
	DeleteReadings(ctx context.Context, q store.ReadingQuery, limit int) (int64, error)
}

// Consent gives the retention a person chose for a stream.
type Consent interface {
	Allowed(deviceID, stream string) consent.Decision
}

// chunk bounds one delete transaction, so ingest commits are never held
// up for long behind a large expiry.
const chunk = 5000

// Job sweeps expired readings.
type Job struct {
	Store   Store
	Catalog *catalog.Catalog
	Consent Consent           // optional: without it the manifest's retention applies
	Log     auditlog.Recorder // optional: records every deletion
	Logger  *slog.Logger
}

// Run sweeps every interval until ctx ends.
func (j *Job) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := j.Sweep(ctx); err != nil && ctx.Err() == nil {
			j.logger().Error("retention sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (j *Job) logger() *slog.Logger {
	if j.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Logger
}

// Sweep deletes every reading past its retention once and reports how
// many it removed.
func (j *Job) Sweep(ctx context.Context) (int64, error) { return j.SweepAt(ctx, time.Now()) }

// SweepAt is Sweep as if the time were now.
func (j *Job) SweepAt(ctx context.Context, now time.Time) (int64, error) {
	devs, err := j.Store.AllDevices(ctx)
	if err != nil {
		return 0, fmt.Errorf("list devices: %w", err)
	}
	var total int64
	for _, d := range devs {
		e, err := j.Catalog.Current(d.Type)
		if err != nil {
			continue // no manifest in force: nothing was stored under one either
		}
		for _, s := range e.Manifest.Streams {
			keep := s.Retention.D
			if j.Consent != nil {
				if dec := j.Consent.Allowed(d.ID, s.Name); dec.Resolved && !dec.Retention.IsZero() && dec.Retention.D < keep {
					keep = dec.Retention.D
				}
			}
			if keep <= 0 {
				continue
			}
			cutoff := now.UTC().Add(-keep)
			var n int64
			for {
				k, err := j.Store.DeleteReadings(ctx, store.ReadingQuery{DeviceID: d.ID, Stream: s.Name, Until: cutoff}, chunk)
				if err != nil {
					return total, err
				}
				n += k
				if k < chunk {
					break
				}
			}
			if n == 0 {
				continue
			}
			total += n
			j.logger().Info("expired readings deleted", "device", d.ID, "stream", s.Name, "readings", n)
			if j.Log != nil {
				ev := auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}, Action: auditlog.ActionDataDelete,
					Household: d.HouseholdID, Subject: auditlog.Subject{Device: d.ID, Stream: s.Name, To: cutoff},
					Purpose: "retention", Detail: map[string]string{"readings": strconv.FormatInt(n, 10), "kept_for": keep.String()}}
				if err := j.Log.Record(ctx, ev); err != nil {
					return total, fmt.Errorf("record deletion in the transparency log: %w", err)
				}
			}
		}
	}
	return total, nil
}
