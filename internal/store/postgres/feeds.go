package postgres

import (
	"context"
	"fmt"

	"github.com/candor-iot/candor/internal/store"
)

// PutAdvisoryFeed adds or replaces a feed.
func (db *DB) PutAdvisoryFeed(ctx context.Context, f store.AdvisoryFeed) error {
	ts, err := encTimes(f.AddedAt, f.LastAttempt, f.LastSuccess)
	if err != nil {
		return fmt.Errorf("put advisory feed %q: %w", f.URL, err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO advisory_feeds (url, kind, origin, added_at, last_attempt, last_success, last_error, documents,
			fingerprint, unsigned_allowed, signatures)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (url) DO UPDATE SET kind = excluded.kind, origin = excluded.origin, added_at = excluded.added_at,
			last_attempt = excluded.last_attempt, last_success = excluded.last_success, last_error = excluded.last_error,
			documents = excluded.documents, fingerprint = excluded.fingerprint, unsigned_allowed = excluded.unsigned_allowed,
			signatures = excluded.signatures`,
		f.URL, f.Kind, f.Origin, ts[0], ts[1], ts[2], f.LastError, f.Documents, f.Fingerprint, f.UnsignedAllowed, f.Signatures); err != nil {
		return wrapErr(err, "put advisory feed %q", f.URL)
	}
	return nil
}

// AdvisoryFeeds lists every feed by URL.
func (db *DB) AdvisoryFeeds(ctx context.Context) ([]store.AdvisoryFeed, error) {
	rows, err := db.pool.Query(ctx, `SELECT url, kind, origin, added_at, last_attempt, last_success, last_error, documents,
		fingerprint, unsigned_allowed, signatures FROM advisory_feeds ORDER BY url`)
	if err != nil {
		return nil, fmt.Errorf("list advisory feeds: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.AdvisoryFeed, error) {
		var (
			f                 store.AdvisoryFeed
			added, try, works int64
		)
		err := r.Scan(&f.URL, &f.Kind, &f.Origin, &added, &try, &works, &f.LastError, &f.Documents,
			&f.Fingerprint, &f.UnsignedAllowed, &f.Signatures)
		f.AddedAt, f.LastAttempt, f.LastSuccess = decTime(added), decTime(try), decTime(works)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("list advisory feeds: %w", err)
	}
	return out, nil
}

// DeleteAdvisoryFeed removes a feed.
func (db *DB) DeleteAdvisoryFeed(ctx context.Context, url string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM advisory_feeds WHERE url = $1`, url)
	if err != nil {
		return fmt.Errorf("delete advisory feed %q: %w", url, err)
	}
	return notFoundIfNone(tag, "delete advisory feed", url)
}

// PutUpdateStage replaces a device's update stage.
func (db *DB) PutUpdateStage(ctx context.Context, s store.UpdateStage) error {
	at, err := encTime(s.UpdatedAt)
	if err != nil {
		return fmt.Errorf("put update stage of device %q: %w", s.DeviceID, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO update_stages (device_id, version, sha256, stage, reason, plain, fail_code, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, sha256 = excluded.sha256, stage = excluded.stage,
			reason = excluded.reason, plain = excluded.plain, fail_code = excluded.fail_code, updated_at = excluded.updated_at`,
		s.DeviceID, s.Version, s.SHA256, s.Stage, s.Reason, s.Plain, s.FailCode, at)
	if missingParent(err) {
		return fmt.Errorf("put update stage: device %q: %w", s.DeviceID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "put update stage of device %q", s.DeviceID)
	}
	return nil
}

// UpdateStages lists every device's update stage.
func (db *DB) UpdateStages(ctx context.Context) ([]store.UpdateStage, error) {
	rows, err := db.pool.Query(ctx, `SELECT device_id, version, sha256, stage, reason, plain, fail_code, updated_at FROM update_stages ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("list update stages: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.UpdateStage, error) {
		var (
			s  store.UpdateStage
			at int64
		)
		err := r.Scan(&s.DeviceID, &s.Version, &s.SHA256, &s.Stage, &s.Reason, &s.Plain, &s.FailCode, &at)
		s.UpdatedAt = decTime(at)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list update stages: %w", err)
	}
	return out, nil
}
