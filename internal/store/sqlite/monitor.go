package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// PutQuarantine creates or replaces the monitor's hold on a device.
func (db *DB) PutQuarantine(ctx context.Context, q store.Quarantine) error {
	since, err := encTime(q.Since)
	if err != nil {
		return fmt.Errorf("put quarantine: %w", err)
	}
	_, err = db.writer.ExecContext(ctx, `INSERT INTO quarantines (device_id, kind, stream, severity, observed, lim, rate_limited, since, advisory, rate)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET kind = excluded.kind, stream = excluded.stream, severity = excluded.severity,
			observed = excluded.observed, lim = excluded.lim, rate_limited = excluded.rate_limited, since = excluded.since,
			advisory = excluded.advisory, rate = excluded.rate`,
		q.DeviceID, q.Kind, q.Stream, q.Severity, q.Observed, q.Limit, q.RateLimited, since, q.Advisory, q.Rate)
	if missingParent(err) {
		return fmt.Errorf("put quarantine: device %q: %w", q.DeviceID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "put quarantine of device %q", q.DeviceID)
	}
	return nil
}

// DeleteQuarantine lifts the hold on a device.
func (db *DB) DeleteQuarantine(ctx context.Context, deviceID string) error {
	res, err := db.writer.ExecContext(ctx, `DELETE FROM quarantines WHERE device_id = ?`, deviceID)
	if err != nil {
		return fmt.Errorf("delete quarantine: %w", err)
	}
	return notFoundIfNone(res, "delete quarantine of device", deviceID)
}

// Quarantines lists every hold.
func (db *DB) Quarantines(ctx context.Context) ([]store.Quarantine, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT device_id, kind, stream, severity, observed, lim, rate_limited, since, advisory, rate
		FROM quarantines ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("list quarantines: %w", err)
	}
	defer rows.Close()
	var out []store.Quarantine
	for rows.Next() {
		var (
			q     store.Quarantine
			since int64
		)
		if err := rows.Scan(&q.DeviceID, &q.Kind, &q.Stream, &q.Severity, &q.Observed, &q.Limit, &q.RateLimited, &since, &q.Advisory, &q.Rate); err != nil {
			return nil, fmt.Errorf("list quarantines: %w", err)
		}
		q.Since = decTime(since)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list quarantines: %w", err)
	}
	return out, nil
}

// PutAlertPrefs creates or replaces an account's alert choices.
func (db *DB) PutAlertPrefs(ctx context.Context, p store.AlertPrefs) error {
	_, err := db.writer.ExecContext(ctx, `INSERT INTO alert_prefs (account_id, min_severity, email) VALUES (?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET min_severity = excluded.min_severity, email = excluded.email`,
		p.AccountID, p.MinSeverity, p.Email)
	if missingParent(err) {
		return fmt.Errorf("put alert choices: account %q: %w", p.AccountID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr(err, "put alert choices of account %q", p.AccountID)
	}
	return nil
}

// AlertPrefs returns the alert choices of a household's accounts.
func (db *DB) AlertPrefs(ctx context.Context, householdID string) ([]store.AlertPrefs, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT p.account_id, p.min_severity, p.email
		FROM alert_prefs p JOIN accounts a ON a.id = p.account_id
		WHERE a.household_id = ? ORDER BY p.account_id`, householdID)
	if err != nil {
		return nil, fmt.Errorf("list alert choices: %w", err)
	}
	defer rows.Close()
	var out []store.AlertPrefs
	for rows.Next() {
		var p store.AlertPrefs
		if err := rows.Scan(&p.AccountID, &p.MinSeverity, &p.Email); err != nil {
			return nil, fmt.Errorf("list alert choices: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alert choices: %w", err)
	}
	return out, nil
}

const addWindowSQL = `INSERT INTO monitor_windows (device_id, start, length, readings, bytes, max_bytes, refused, wrong_secrets, probes, connects)
	SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?)
	ON CONFLICT (device_id, start) DO UPDATE SET readings = readings + excluded.readings, bytes = bytes + excluded.bytes,
		max_bytes = max(max_bytes, excluded.max_bytes), refused = refused + excluded.refused,
		wrong_secrets = wrong_secrets + excluded.wrong_secrets, probes = probes + excluded.probes,
		connects = connects + excluded.connects`

// AddMonitorWindows stores the monitor's counts, in one transaction.
func (db *DB) AddMonitorWindows(ctx context.Context, ws []store.MonitorWindow) error {
	if len(ws) == 0 {
		return nil
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add monitor windows: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, addWindowSQL)
	if err != nil {
		return fmt.Errorf("add monitor windows: %w", err)
	}
	defer stmt.Close()
	for _, w := range ws {
		start, err := encTime(w.Start)
		if err != nil {
			return fmt.Errorf("add monitor window of device %q: %w", w.DeviceID, err)
		}
		if _, err := stmt.ExecContext(ctx, w.DeviceID, start, int64(w.Length), w.Readings, w.Bytes, w.MaxBytes,
			w.Refused, w.WrongSecrets, w.Probes, w.Connects, w.DeviceID); err != nil {
			return wrapErr(err, "add monitor window of device %q", w.DeviceID)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add monitor windows: %w", err)
	}
	return nil
}

// MonitorWindows lists a device's windows from since on.
func (db *DB) MonitorWindows(ctx context.Context, deviceID string, since time.Time) ([]store.MonitorWindow, error) {
	from, err := encTime(since)
	if err != nil {
		return nil, fmt.Errorf("list monitor windows: %w", err)
	}
	rows, err := db.readers.QueryContext(ctx, `SELECT start, length, readings, bytes, max_bytes, refused, wrong_secrets, probes, connects
		FROM monitor_windows WHERE device_id = ? AND start >= ? ORDER BY start`, deviceID, from)
	if err != nil {
		return nil, fmt.Errorf("list monitor windows of device %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.MonitorWindow
	for rows.Next() {
		w := store.MonitorWindow{DeviceID: deviceID}
		var start, length int64
		if err := rows.Scan(&start, &length, &w.Readings, &w.Bytes, &w.MaxBytes, &w.Refused, &w.WrongSecrets, &w.Probes, &w.Connects); err != nil {
			return nil, fmt.Errorf("list monitor windows of device %q: %w", deviceID, err)
		}
		w.Start, w.Length = decTime(start), time.Duration(length)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list monitor windows of device %q: %w", deviceID, err)
	}
	return out, nil
}

// PurgeMonitorWindows deletes the windows that started before before.
func (db *DB) PurgeMonitorWindows(ctx context.Context, before time.Time) (int64, error) {
	b, err := encTime(before)
	if err != nil {
		return 0, fmt.Errorf("purge monitor windows: %w", err)
	}
	res, err := db.writer.ExecContext(ctx, `DELETE FROM monitor_windows WHERE start < ?`, b)
	if err != nil {
		return 0, fmt.Errorf("purge monitor windows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge monitor windows: %w", err)
	}
	return n, nil
}

// PutMonitorActions replaces the admin's actions per severity.
func (db *DB) PutMonitorActions(ctx context.Context, actions map[string]string) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put monitor actions: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM monitor_actions`); err != nil {
		return fmt.Errorf("put monitor actions: %w", err)
	}
	for sev, act := range actions {
		if _, err := tx.ExecContext(ctx, `INSERT INTO monitor_actions (severity, action) VALUES (?, ?)`, sev, act); err != nil {
			return wrapErr(err, "put monitor action for %q", sev)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put monitor actions: %w", err)
	}
	return nil
}

// MonitorActions returns the admin's actions per severity.
func (db *DB) MonitorActions(ctx context.Context) (map[string]string, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT severity, action FROM monitor_actions`)
	if err != nil {
		return nil, fmt.Errorf("list monitor actions: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var sev, act string
		if err := rows.Scan(&sev, &act); err != nil {
			return nil, fmt.Errorf("list monitor actions: %w", err)
		}
		out[sev] = act
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list monitor actions: %w", err)
	}
	return out, nil
}
