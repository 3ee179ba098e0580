package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// SaveAuditRun upserts the open findings of a run and closes the rest.
func (db *DB) SaveAuditRun(ctx context.Context, open []store.AuditFinding, at time.Time) error {
	now, err := encTime(at)
	if err != nil {
		return fmt.Errorf("save audit run: %w", err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("save audit run: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// Mark every open finding closed, then reopen those found again: one
	// statement each way instead of a diff in Go.
	if _, err := tx.Exec(ctx, `UPDATE audit_findings SET closed_at = $1 WHERE closed_at = 0`, now); err != nil {
		return fmt.Errorf("save audit run: close: %w", err)
	}
	for _, f := range open {
		ts, err := encTimes(f.FirstSeen, f.LastSeen)
		if err != nil {
			return fmt.Errorf("save audit run: finding %q: %w", f.ID, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_findings
			(id, check_name, severity, household_id, subject, doc, first_seen, last_seen, closed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)
			ON CONFLICT (id) DO UPDATE SET check_name = excluded.check_name, severity = excluded.severity,
				household_id = excluded.household_id, subject = excluded.subject, doc = excluded.doc,
				first_seen = CASE WHEN audit_findings.closed_at IN (0, $9) THEN audit_findings.first_seen ELSE excluded.first_seen END,
				last_seen = excluded.last_seen, closed_at = 0`,
			f.ID, f.Check, f.Severity, f.HouseholdID, f.Subject, f.Doc, ts[0], ts[1], now); err != nil {
			return wrapErr(err, "save audit finding %q", f.ID)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("save audit run: commit: %w", err)
	}
	return nil
}

// AuditFindings lists findings, open first.
func (db *DB) AuditFindings(ctx context.Context, withClosed bool) ([]store.AuditFinding, error) {
	q := `SELECT id, check_name, severity, household_id, subject, doc, first_seen, last_seen, closed_at FROM audit_findings`
	if !withClosed {
		q += ` WHERE closed_at = 0`
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY closed_at <> 0, id`)
	if err != nil {
		return nil, fmt.Errorf("list audit findings: %w", err)
	}
	defer rows.Close()
	var out []store.AuditFinding
	for rows.Next() {
		var (
			f                   store.AuditFinding
			first, last, closed int64
		)
		if err := rows.Scan(&f.ID, &f.Check, &f.Severity, &f.HouseholdID, &f.Subject, &f.Doc, &first, &last, &closed); err != nil {
			return nil, fmt.Errorf("list audit findings: %w", err)
		}
		f.FirstSeen, f.LastSeen, f.ClosedAt = decTime(first), decTime(last), decTime(closed)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit findings: %w", err)
	}
	return out, nil
}

// PutAuditSuppression creates or replaces a finding's suppression.
func (db *DB) PutAuditSuppression(ctx context.Context, s store.AuditSuppression) error {
	ts, err := encTimes(s.CreatedAt, s.Until)
	if err != nil {
		return fmt.Errorf("put audit suppression %q: %w", s.FindingID, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO audit_suppressions (finding_id, household_id, reason, by_account, created_at, until)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (finding_id) DO UPDATE SET household_id = excluded.household_id, reason = excluded.reason,
			by_account = excluded.by_account, created_at = excluded.created_at, until = excluded.until`,
		s.FindingID, s.HouseholdID, s.Reason, s.By, ts[0], ts[1])
	if err != nil {
		return wrapErr(err, "put audit suppression %q", s.FindingID)
	}
	return nil
}

// DeleteAuditSuppression removes a finding's suppression.
func (db *DB) DeleteAuditSuppression(ctx context.Context, findingID string) error {
	res, err := db.pool.Exec(ctx, `DELETE FROM audit_suppressions WHERE finding_id = $1`, findingID)
	if err != nil {
		return fmt.Errorf("delete audit suppression: %w", err)
	}
	return notFoundIfNone(res, "delete audit suppression of finding", findingID)
}

// AuditSuppressions lists every suppression.
func (db *DB) AuditSuppressions(ctx context.Context) ([]store.AuditSuppression, error) {
	rows, err := db.pool.Query(ctx, `SELECT finding_id, household_id, reason, by_account, created_at, until
		FROM audit_suppressions ORDER BY finding_id`)
	if err != nil {
		return nil, fmt.Errorf("list audit suppressions: %w", err)
	}
	defer rows.Close()
	var out []store.AuditSuppression
	for rows.Next() {
		var (
			s              store.AuditSuppression
			created, until int64
		)
		if err := rows.Scan(&s.FindingID, &s.HouseholdID, &s.Reason, &s.By, &created, &until); err != nil {
			return nil, fmt.Errorf("list audit suppressions: %w", err)
		}
		s.CreatedAt, s.Until = decTime(created), decTime(until)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit suppressions: %w", err)
	}
	return out, nil
}

// SetAuditMark records the latest time of a named event.
func (db *DB) SetAuditMark(ctx context.Context, name string, at time.Time) error {
	n, err := encTime(at)
	if err != nil {
		return fmt.Errorf("set audit mark %q: %w", name, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO audit_marks (name, at) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET at = GREATEST(audit_marks.at, excluded.at)`, name, n)
	if err != nil {
		return wrapErr(err, "set audit mark %q", name)
	}
	return nil
}

// AuditMark returns the latest time of a named event, zero when never.
func (db *DB) AuditMark(ctx context.Context, name string) (time.Time, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT at FROM audit_marks WHERE name = $1`, name).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("audit mark %q: %w", name, err)
	}
	return decTime(n), nil
}

// SetDeviceSecretOrigin records who chose a device's current secret.
func (db *DB) SetDeviceSecretOrigin(ctx context.Context, deviceID string, chosen bool, at time.Time) error {
	n, err := encTime(at)
	if err != nil {
		return fmt.Errorf("set secret origin of device %q: %w", deviceID, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO device_secret_origin (device_id, chosen, set_at) VALUES ($1, $2, $3)
		ON CONFLICT (device_id) DO UPDATE SET chosen = excluded.chosen, set_at = excluded.set_at`, deviceID, chosen, n)
	if err != nil {
		return wrapErr(err, "set secret origin of device %q", deviceID)
	}
	return nil
}

// ChosenSecretDevices lists devices whose current secret a person chose.
func (db *DB) ChosenSecretDevices(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT o.device_id FROM device_secret_origin o
		JOIN devices d ON d.id = o.device_id WHERE o.chosen ORDER BY o.device_id`)
	if err != nil {
		return nil, fmt.Errorf("list devices with chosen secrets: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list devices with chosen secrets: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// LastReadingAt is the arrival time of the device's newest reading. The
// newest by seq is looked for in the partitions by their seq spans, newest
// first (firstBySpan), not by ORDER BY seq DESC on readings, which
// descended the (device_id, seq) index of every month stored (issue #19).
func (db *DB) LastReadingAt(ctx context.Context, deviceID string) (time.Time, error) {
	type last struct{ seq, ts int64 }
	r := everySeq()
	r.newest = true
	got, err := firstBySpan(ctx, db, r, 1, func(l last) int64 { return l.seq }, func(table string, lo, hi int64) ([]last, error) {
		var l last
		err := db.pool.QueryRow(ctx, `SELECT seq, ts FROM `+table+` WHERE device_id = $1 AND seq BETWEEN $2 AND $3
			ORDER BY seq DESC LIMIT 1`, deviceID, lo, hi).Scan(&l.seq, &l.ts)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []last{l}, nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("last reading of device %q: %w", deviceID, err)
	}
	if len(got) == 0 {
		return time.Time{}, nil
	}
	return decTime(got[0].ts), nil
}

// PutAssessment stores the next version of a report.
func (db *DB) PutAssessment(ctx context.Context, d store.AssessmentDoc) (store.AssessmentDoc, error) {
	n, err := encTime(d.CreatedAt)
	if err != nil {
		return store.AssessmentDoc{}, fmt.Errorf("put assessment: %w", err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return store.AssessmentDoc{}, fmt.Errorf("put assessment: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM assessments WHERE kind = $1 AND household_id = $2`,
		d.Kind, d.HouseholdID).Scan(&d.Version); err != nil {
		return store.AssessmentDoc{}, fmt.Errorf("put assessment: next version: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO assessments (kind, household_id, version, digest, doc, signature, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.Kind, d.HouseholdID, d.Version, d.Digest, d.Doc, d.Signature, n); err != nil {
		return store.AssessmentDoc{}, wrapErr(err, "put assessment %s", d.Kind)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.AssessmentDoc{}, fmt.Errorf("put assessment: commit: %w", err)
	}
	return d, nil
}

// Assessments lists versions of one report, newest first.
func (db *DB) Assessments(ctx context.Context, kind, householdID string, limit int) ([]store.AssessmentDoc, error) {
	q := `SELECT kind, household_id, version, digest, doc, signature, created_at FROM assessments
		WHERE kind = $1 AND household_id = $2 ORDER BY version DESC`
	args := []any{kind, householdID}
	if limit > 0 {
		q += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list assessments: %w", err)
	}
	defer rows.Close()
	var out []store.AssessmentDoc
	for rows.Next() {
		var (
			d  store.AssessmentDoc
			at int64
		)
		if err := rows.Scan(&d.Kind, &d.HouseholdID, &d.Version, &d.Digest, &d.Doc, &d.Signature, &at); err != nil {
			return nil, fmt.Errorf("list assessments: %w", err)
		}
		d.CreatedAt = decTime(at)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list assessments: %w", err)
	}
	return out, nil
}
