package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// RecordFirmware appends a firmware report when it differs from the
// device's latest one. The device's row is locked first, so two reports
// of one device arriving at once (on one hub or two) take turns instead
// of both reading the same latest entry.
func (db *DB) RecordFirmware(ctx context.Context, r store.FirmwareReport) (bool, error) {
	at, err := encTime(r.ReportedAt)
	if err != nil {
		return false, fmt.Errorf("record firmware of device %q: %w", r.DeviceID, err)
	}
	changed := false
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR NO KEY UPDATE`, r.DeviceID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("device %q: %w", r.DeviceID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var (
			seq    int64
			fw, hw string
		)
		err = tx.QueryRow(ctx, `SELECT seq, firmware, hardware FROM firmware_reports WHERE device_id = $1 ORDER BY seq DESC LIMIT 1`,
			r.DeviceID).Scan(&seq, &fw, &hw)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case fw == r.Firmware && hw == r.Hardware:
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO firmware_reports (device_id, seq, firmware, hardware, reported_at) VALUES ($1, $2, $3, $4, $5)`,
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
	return db.firmware(ctx, `SELECT device_id, firmware, hardware, reported_at FROM firmware_reports WHERE device_id = $1 ORDER BY seq DESC`, deviceID)
}

// CurrentFirmware lists the latest report of every device.
func (db *DB) CurrentFirmware(ctx context.Context) ([]store.FirmwareReport, error) {
	return db.firmware(ctx, `SELECT DISTINCT ON (device_id) device_id, firmware, hardware, reported_at
		FROM firmware_reports ORDER BY device_id, seq DESC`)
}

func (db *DB) firmware(ctx context.Context, q string, args ...any) ([]store.FirmwareReport, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list firmware reports: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.FirmwareReport, error) {
		var (
			f  store.FirmwareReport
			at int64
		)
		err := r.Scan(&f.DeviceID, &f.Firmware, &f.Hardware, &at)
		f.ReportedAt = decTime(at)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("list firmware reports: %w", err)
	}
	return out, nil
}

// PutAdvisories stores advisories in one transaction.
func (db *DB) PutAdvisories(ctx context.Context, as []store.Advisory) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		for _, a := range as {
			ts, err := encTimes(a.Modified, a.ImportedAt)
			if err != nil {
				return fmt.Errorf("advisory %q: %w", a.ID, err)
			}
			doc := a.Document
			if doc == nil {
				doc = []byte{}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO advisories (id, format, modified, document, imported_at) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (id) DO UPDATE SET format = excluded.format, modified = excluded.modified,
					document = excluded.document, imported_at = excluded.imported_at`,
				a.ID, a.Format, ts[0], doc, ts[1]); err != nil {
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
	rows, err := db.pool.Query(ctx, `SELECT id, format, modified, document, imported_at FROM advisories ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list advisories: %w", err)
	}
	out, err := collect(rows, func(r rowScanner) (store.Advisory, error) {
		var (
			a        store.Advisory
			mod, imp int64
		)
		err := r.Scan(&a.ID, &a.Format, &mod, &a.Document, &imp)
		a.Modified, a.ImportedAt = decTime(mod), decTime(imp)
		return a, err
	})
	if err != nil {
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
	err := db.pool.QueryRow(ctx, `SELECT name, contact, privacy_contact, disclosure_policy, updated_at FROM operator WHERE one = 1`).
		Scan(&o.Name, &o.Contact, &o.PrivacyContact, &o.DisclosurePolicy, &at)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := db.pool.Exec(ctx, `INSERT INTO operator (one, name, contact, privacy_contact, disclosure_policy, updated_at)
		VALUES (1, $1, $2, $3, $4, $5)
		ON CONFLICT (one) DO UPDATE SET name = excluded.name, contact = excluded.contact, privacy_contact = excluded.privacy_contact,
			disclosure_policy = excluded.disclosure_policy, updated_at = excluded.updated_at`,
		o.Name, o.Contact, o.PrivacyContact, o.DisclosurePolicy, at); err != nil {
		return fmt.Errorf("set operator: %w", err)
	}
	return nil
}
