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

// Oldest is what a store may offer so a sweep skips the devices with
// nothing to delete (issue #19: an idle hub with 18,000 devices spent 43%
// of its CPU in sweeps that deleted nothing, one writer transaction per
// device and stream). OldestReadings returns, for every device with
// stored readings, a time no later than its oldest reading's (the zero
// time: unknown); a device it leaves out has none. It may be too early,
// never too late: a device is skipped only when that time is at or after
// every cutoff of its streams, so no reading past its retention is left.
type Oldest interface {
	OldestReadings(ctx context.Context) (map[string]time.Time, error)
}

// SweepAt is Sweep as if the time were now.
func (j *Job) SweepAt(ctx context.Context, now time.Time) (int64, error) {
	devs, err := j.Store.AllDevices(ctx)
	if err != nil {
		return 0, fmt.Errorf("list devices: %w", err)
	}
	// Read after the devices: a device listed but added since has no
	// readings yet, or they are newer than this read and wait for the
	// next sweep, as readings stored after a sweep passed their device
	// always have.
	var oldest map[string]time.Time
	if o, ok := j.Store.(Oldest); ok {
		if oldest, err = o.OldestReadings(ctx); err != nil {
			return 0, fmt.Errorf("oldest readings: %w", err)
		}
	}
	dropped := map[string][]droppedStream{} // by device type
	var total int64
	var due []droppedStream // this device's streams, reused
	for _, d := range devs {
		e, err := j.Catalog.Current(d.Type)
		if err != nil {
			continue // no manifest in force: nothing was stored under one either
		}
		ds, ok := dropped[d.Type]
		if !ok {
			if ds, err = j.droppedStreams(ctx, e); err != nil {
				return total, err
			}
			dropped[d.Type] = ds
		}
		due = due[:0]
		for _, s := range e.Manifest.Streams {
			keep := s.Retention.D
			if j.Consent != nil {
				if dec := j.Consent.Allowed(d.ID, s.Name); dec.Resolved && !dec.Retention.IsZero() && dec.Retention.D < keep {
					keep = dec.Retention.D
				}
			}
			due = append(due, droppedStream{stream: s.Name, keep: keep})
		}
		due = append(due, ds...)
		if oldest != nil && nothingBefore(oldest, d.ID, due, now) {
			continue
		}
		for _, s := range due {
			n, err := j.expire(ctx, d, s.stream, s.version, s.keep, now)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// nothingBefore reports whether oldest shows that the device has no
// reading older than any of its streams' cutoffs at now.
func nothingBefore(oldest map[string]time.Time, deviceID string, streams []droppedStream, now time.Time) bool {
	t, ok := oldest[deviceID]
	if !ok {
		return true // no readings stored
	}
	if t.IsZero() {
		return false // unknown
	}
	for _, s := range streams {
		if s.keep > 0 && t.Before(cutoff(now, s.keep)) {
			return false
		}
	}
	return true
}

// cutoff is the time before which a reading kept for keep is deleted.
func cutoff(now time.Time, keep time.Duration) time.Time { return now.UTC().Add(-keep) }

// droppedStream is a stream an older manifest version declared and the
// version in force does not: its readings stored under that version keep
// the retention that version promised. With version 0 it is a stream the
// version in force declares (all its readings, whatever the version).
type droppedStream struct {
	stream  string
	version int
	keep    time.Duration
}

// droppedStreams lists, for the version in force e, every (stream,
// version) pair of older versions whose stream e no longer declares.
func (j *Job) droppedStreams(ctx context.Context, e *catalog.Entry) ([]droppedStream, error) {
	vs, err := j.Catalog.Versions(ctx, e.Manifest.DeviceType)
	if err != nil {
		return nil, fmt.Errorf("manifest versions of %s: %w", e.Manifest.DeviceType, err)
	}
	var out []droppedStream
	for _, v := range vs {
		if v.Draft || v.Manifest == nil || v.Version == e.Version {
			continue
		}
		for _, s := range v.Manifest.Streams {
			if e.Manifest.Stream(s.Name) == nil {
				out = append(out, droppedStream{stream: s.Name, version: v.Version, keep: s.Retention.D})
			}
		}
	}
	return out, nil
}

// expire deletes a device's readings of one stream older than keep (only
// those stored under version, when it is not 0), in bounded chunks, and
// records the deletion.
func (j *Job) expire(ctx context.Context, d store.Device, stream string, version int, keep time.Duration, now time.Time) (int64, error) {
	if keep <= 0 {
		return 0, nil
	}
	until := cutoff(now, keep)
	var n int64
	for {
		k, err := j.Store.DeleteReadings(ctx, store.ReadingQuery{DeviceID: d.ID, Stream: stream, Until: until, ManifestVersion: version}, chunk)
		if err != nil {
			return n, err
		}
		n += k
		if k < chunk {
			break
		}
	}
	if n == 0 {
		return 0, nil
	}
	j.logger().Info("expired readings deleted", "device", d.ID, "stream", stream, "readings", n)
	if j.Log != nil {
		detail := map[string]string{"readings": strconv.FormatInt(n, 10), "kept_for": keep.String()}
		if version != 0 {
			detail["manifest_version"] = strconv.Itoa(version)
		}
		ev := auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}, Action: auditlog.ActionDataDelete,
			Household: d.HouseholdID, Subject: auditlog.Subject{Device: d.ID, Stream: stream, To: until},
			Purpose: "retention", Detail: detail}
		if err := j.Log.Record(ctx, ev); err != nil {
			return n, fmt.Errorf("record deletion in the transparency log: %w", err)
		}
	}
	return n, nil
}
