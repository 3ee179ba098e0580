package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/candor-iot/candor/internal/store"
)

// RecordFirmware appends a firmware report when it differs from the
// device's latest one.
func (db *DB) RecordFirmware(ctx context.Context, r store.FirmwareReport) (bool, error) {
	at, err := encTime(r.ReportedAt)
	if err != nil {
		return false, fmt.Errorf("record firmware of device %q: %w", r.DeviceID, err)
	}
	changed := false
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		var (
			seq      int64
			fw, hw   string
			hasPrior = true
		)
		err := tx.QueryRowContext(ctx, `SELECT seq, firmware, hardware FROM firmware_reports WHERE device_id = ? ORDER BY seq DESC LIMIT 1`, r.DeviceID).Scan(&seq, &fw, &hw)
		if errors.Is(err, sql.ErrNoRows) {
			hasPrior = false
		} else if err != nil {
			return err
		}
		if hasPrior && fw == r.Firmware && hw == r.Hardware {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_reports (device_id, seq, firmware, hardware, reported_at) VALUES (?, ?, ?, ?, ?)`,
			r.DeviceID, seq+1, r.Firmware, r.Hardware, at); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if missingParent(err) {
		return false, fmt.Errorf("record firmware: device %q: %w", r.DeviceID, store.ErrNotFound)
	}
	if err != nil {
		return false, wrapErr(err, "record firmware of device %q", r.DeviceID)
	}
	return changed, nil
}

// FirmwareHistory lists a device's versions, newest first.
func (db *DB) FirmwareHistory(ctx context.Context, deviceID string) ([]store.FirmwareReport, error) {
	return db.firmware(ctx, `SELECT device_id, firmware, hardware, reported_at FROM firmware_reports WHERE device_id = ? ORDER BY seq DESC`, deviceID)
}

// CurrentFirmware lists the latest report of every device.
func (db *DB) CurrentFirmware(ctx context.Context) ([]store.FirmwareReport, error) {
	return db.firmware(ctx, `SELECT f.device_id, f.firmware, f.hardware, f.reported_at FROM firmware_reports f
		JOIN (SELECT device_id, MAX(seq) AS seq FROM firmware_reports GROUP BY device_id) l
		ON f.device_id = l.device_id AND f.seq = l.seq ORDER BY f.device_id`)
}

func (db *DB) firmware(ctx context.Context, q string, args ...any) ([]store.FirmwareReport, error) {
	rows, err := db.readers.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list firmware reports: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareReport
	for rows.Next() {
		var (
			r  store.FirmwareReport
			at int64
		)
		if err := rows.Scan(&r.DeviceID, &r.Firmware, &r.Hardware, &at); err != nil {
			return nil, fmt.Errorf("list firmware reports: %w", err)
		}
		r.ReportedAt = decTime(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list firmware reports: %w", err)
	}
	return out, nil
}

// PutAdvisories stores advisories in one transaction.
func (db *DB) PutAdvisories(ctx context.Context, as []store.Advisory) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for _, a := range as {
			ts, err := encTimes(a.Modified, a.ImportedAt)
			if err != nil {
				return fmt.Errorf("advisory %q: %w", a.ID, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO advisories (id, format, modified, document, imported_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET format = excluded.format, modified = excluded.modified, document = excluded.document, imported_at = excluded.imported_at`,
				a.ID, a.Format, ts[0], a.Document, ts[1]); err != nil {
				return fmt.Errorf("advisory %q: %w", a.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put advisories: %w", err)
	}
	return nil
}

// Advisories lists every stored advisory by id.
func (db *DB) Advisories(ctx context.Context) ([]store.Advisory, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT id, format, modified, document, imported_at FROM advisories ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list advisories: %w", err)
	}
	defer rows.Close()
	var out []store.Advisory
	for rows.Next() {
		var (
			a        store.Advisory
			mod, imp int64
		)
		if err := rows.Scan(&a.ID, &a.Format, &mod, &a.Document, &imp); err != nil {
			return nil, fmt.Errorf("list advisories: %w", err)
		}
		a.Modified, a.ImportedAt = decTime(mod), decTime(imp)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list advisories: %w", err)
	}
	return out, nil
}

// Operator returns the hub's operator, or the zero value.
func (db *DB) Operator(ctx context.Context) (store.Operator, error) {
	var (
		o  store.Operator
		at int64
	)
	err := db.readers.QueryRowContext(ctx, `SELECT name, contact, privacy_contact, disclosure_policy, updated_at FROM operator WHERE one = 1`).
		Scan(&o.Name, &o.Contact, &o.PrivacyContact, &o.DisclosurePolicy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Operator{}, nil
	}
	if err != nil {
		return store.Operator{}, fmt.Errorf("read operator: %w", err)
	}
	o.UpdatedAt = decTime(at)
	return o, nil
}

// SetOperator replaces the hub's operator.
func (db *DB) SetOperator(ctx context.Context, o store.Operator) error {
	at, err := encTime(o.UpdatedAt)
	if err != nil {
		return fmt.Errorf("set operator: %w", err)
	}
	if _, err := db.writer.ExecContext(ctx, `INSERT INTO operator (one, name, contact, privacy_contact, disclosure_policy, updated_at) VALUES (1, ?, ?, ?, ?, ?)
		ON CONFLICT (one) DO UPDATE SET name = excluded.name, contact = excluded.contact, privacy_contact = excluded.privacy_contact,
		disclosure_policy = excluded.disclosure_policy, updated_at = excluded.updated_at`,
		o.Name, o.Contact, o.PrivacyContact, o.DisclosurePolicy, at); err != nil {
		return fmt.Errorf("set operator: %w", err)
	}
	return nil
}
