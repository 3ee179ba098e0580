package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/candor-iot/candor/internal/store"
)

// insertConsentRecord appends one record inside tx.
func insertConsentRecord(ctx context.Context, tx *sql.Tx, rec store.ConsentRecord) error {
	created, err := encTime(rec.CreatedAt)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO consent_records
		(id, account_id, device_id, stream, purpose, recipient, created_at, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.ID, rec.AccountID, rec.DeviceID, rec.Stream, rec.Purpose, rec.Recipient, created, rec.Doc)
	return err
}

func checkConsentRecord(rec store.ConsentRecord) error {
	switch {
	case rec.ID == "":
		return errors.New("empty record id")
	case rec.DeviceID == "":
		return errors.New("empty device id")
	case rec.Stream == "":
		return errors.New("empty stream")
	case rec.Recipient == "":
		return errors.New("empty recipient")
	case len(rec.Doc) == 0:
		return errors.New("empty record document")
	}
	return nil
}

// RecordConsentDecision appends rec and upserts the decision in one
// transaction.
func (db *DB) RecordConsentDecision(ctx context.Context, rec store.ConsentRecord, d store.ConsentDecision) error {
	if err := checkConsentRecord(rec); err != nil {
		return fmt.Errorf("record consent decision: %w", err)
	}
	if rec.Purpose == "" {
		return fmt.Errorf("record consent decision %q: empty purpose", rec.ID)
	}
	if d.DeviceID != rec.DeviceID || d.Stream != rec.Stream || d.Purpose != rec.Purpose || d.Recipient != rec.Recipient {
		return fmt.Errorf("record consent decision %q: the decision (%s %s %s %s) is not the one the record names (%s %s %s %s)",
			rec.ID, d.DeviceID, d.Stream, d.Purpose, d.Recipient, rec.DeviceID, rec.Stream, rec.Purpose, rec.Recipient)
	}
	decided, err := encTime(rec.CreatedAt)
	if err != nil {
		return fmt.Errorf("record consent decision %q: %w", rec.ID, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertConsentRecord(ctx, tx, rec); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO consent_decisions
			(device_id, stream, purpose, recipient, is_on, account_id, record_id, decided_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, stream, purpose, recipient) DO UPDATE SET
				is_on = excluded.is_on, account_id = excluded.account_id,
				record_id = excluded.record_id, decided_at = excluded.decided_at`,
			rec.DeviceID, rec.Stream, rec.Purpose, rec.Recipient, boolInt(d.On), rec.AccountID, rec.ID, decided)
		return err
	})
	if err != nil {
		return wrapErr(err, "record consent decision %q", rec.ID)
	}
	return nil
}

// RecordConsentRouting appends rec and upserts the stream routing in one
// transaction.
func (db *DB) RecordConsentRouting(ctx context.Context, rec store.ConsentRecord, r store.ConsentRouting) error {
	if err := checkConsentRecord(rec); err != nil {
		return fmt.Errorf("record consent routing: %w", err)
	}
	if r.DeviceID != rec.DeviceID || r.Stream != rec.Stream {
		return fmt.Errorf("record consent routing %q: the routing (%s %s) is not the one the record names (%s %s)",
			rec.ID, r.DeviceID, r.Stream, rec.DeviceID, rec.Stream)
	}
	decided, err := encTime(rec.CreatedAt)
	if err != nil {
		return fmt.Errorf("record consent routing %q: %w", rec.ID, err)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertConsentRecord(ctx, tx, rec); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO consent_routing
			(device_id, stream, keep_on_hub, retention, account_id, record_id, decided_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id, stream) DO UPDATE SET
				keep_on_hub = excluded.keep_on_hub, retention = excluded.retention,
				account_id = excluded.account_id, record_id = excluded.record_id,
				decided_at = excluded.decided_at`,
			rec.DeviceID, rec.Stream, boolInt(r.KeepOnHub), r.Retention, rec.AccountID, rec.ID, decided)
		return err
	})
	if err != nil {
		return wrapErr(err, "record consent routing %q", rec.ID)
	}
	return nil
}

const consentRecordCols = `seq, id, account_id, device_id, stream, purpose, recipient, created_at, doc`

func scanConsentRecord(r rowScanner) (store.ConsentRecord, error) {
	var (
		rec     store.ConsentRecord
		created int64
	)
	if err := r.Scan(&rec.Seq, &rec.ID, &rec.AccountID, &rec.DeviceID, &rec.Stream,
		&rec.Purpose, &rec.Recipient, &created, &rec.Doc); err != nil {
		return store.ConsentRecord{}, err
	}
	rec.CreatedAt = decTime(created)
	return rec, nil
}

// ConsentRecord returns the record with the given id.
func (db *DB) ConsentRecord(ctx context.Context, id string) (store.ConsentRecord, error) {
	row := db.readers.QueryRowContext(ctx, `SELECT `+consentRecordCols+` FROM consent_records WHERE id = ?`, id)
	rec, err := scanConsentRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ConsentRecord{}, fmt.Errorf("consent record %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.ConsentRecord{}, fmt.Errorf("consent record %q: %w", id, err)
	}
	return rec, nil
}

// ConsentRecords lists records matching q in append order.
func (db *DB) ConsentRecords(ctx context.Context, q store.ConsentRecordQuery) ([]store.ConsentRecord, error) {
	var (
		where []string
		args  []any
	)
	if q.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, q.AccountID)
	}
	if q.DeviceID != "" {
		where = append(where, "device_id = ?")
		args = append(args, q.DeviceID)
	}
	if q.AfterSeq > 0 {
		where = append(where, "seq > ?")
		args = append(args, q.AfterSeq)
	}
	query := `SELECT ` + consentRecordCols + ` FROM consent_records`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY seq`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := db.readers.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list consent records: %w", err)
	}
	defer rows.Close()
	var out []store.ConsentRecord
	for rows.Next() {
		rec, err := scanConsentRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list consent records: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list consent records: %w", err)
	}
	return out, nil
}

// ConsentDecisions lists current decisions of one device, or of all
// devices when deviceID is empty.
func (db *DB) ConsentDecisions(ctx context.Context, deviceID string) ([]store.ConsentDecision, error) {
	query := `SELECT device_id, stream, purpose, recipient, is_on, account_id, record_id, decided_at FROM consent_decisions`
	var args []any
	if deviceID != "" {
		query += ` WHERE device_id = ?`
		args = append(args, deviceID)
	}
	query += ` ORDER BY device_id, stream, purpose, recipient`
	rows, err := db.readers.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("consent decisions of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.ConsentDecision
	for rows.Next() {
		var (
			d       store.ConsentDecision
			on      int
			decided int64
		)
		if err := rows.Scan(&d.DeviceID, &d.Stream, &d.Purpose, &d.Recipient, &on, &d.AccountID, &d.RecordID, &decided); err != nil {
			return nil, fmt.Errorf("consent decisions of %q: %w", deviceID, err)
		}
		d.On = on != 0
		d.DecidedAt = decTime(decided)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("consent decisions of %q: %w", deviceID, err)
	}
	return out, nil
}

// ConsentRoutings lists stream routings of one device, or of all devices
// when deviceID is empty.
func (db *DB) ConsentRoutings(ctx context.Context, deviceID string) ([]store.ConsentRouting, error) {
	query := `SELECT device_id, stream, keep_on_hub, retention, account_id, record_id, decided_at FROM consent_routing`
	var args []any
	if deviceID != "" {
		query += ` WHERE device_id = ?`
		args = append(args, deviceID)
	}
	query += ` ORDER BY device_id, stream`
	rows, err := db.readers.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("consent routings of %q: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.ConsentRouting
	for rows.Next() {
		var (
			r       store.ConsentRouting
			keep    int
			decided int64
		)
		if err := rows.Scan(&r.DeviceID, &r.Stream, &keep, &r.Retention, &r.AccountID, &r.RecordID, &decided); err != nil {
			return nil, fmt.Errorf("consent routings of %q: %w", deviceID, err)
		}
		r.KeepOnHub = keep != 0
		r.DecidedAt = decTime(decided)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("consent routings of %q: %w", deviceID, err)
	}
	return out, nil
}

// AddConsentRequest stores one request.
func (db *DB) AddConsentRequest(ctx context.Context, r store.ConsentRequest) error {
	created, err := encTime(r.CreatedAt)
	if err != nil {
		return fmt.Errorf("add consent request %q: %w", r.ID, err)
	}
	on := 0
	if r.On {
		on = 1
	}
	_, err = db.writer.ExecContext(ctx, `INSERT INTO consent_requests
		(id, household_id, device_id, account_id, stream, purpose, recipient, is_on, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.HouseholdID, r.DeviceID, r.AccountID, r.Stream, r.Purpose, r.Recipient, on, created)
	if err != nil {
		return wrapErr(err, "add consent request %q", r.ID)
	}
	return nil
}

// ConsentRequests lists a household's open requests, oldest first.
func (db *DB) ConsentRequests(ctx context.Context, householdID string) ([]store.ConsentRequest, error) {
	rows, err := db.readers.QueryContext(ctx, `SELECT id, household_id, device_id, account_id, stream, purpose, recipient, is_on, created_at
		FROM consent_requests WHERE household_id = ? ORDER BY created_at, id`, householdID)
	if err != nil {
		return nil, fmt.Errorf("consent requests of %q: %w", householdID, err)
	}
	defer rows.Close()
	var out []store.ConsentRequest
	for rows.Next() {
		var (
			r       store.ConsentRequest
			on      int
			created int64
		)
		if err := rows.Scan(&r.ID, &r.HouseholdID, &r.DeviceID, &r.AccountID, &r.Stream, &r.Purpose, &r.Recipient, &on, &created); err != nil {
			return nil, fmt.Errorf("consent requests of %q: %w", householdID, err)
		}
		r.On = on != 0
		r.CreatedAt = decTime(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("consent requests of %q: %w", householdID, err)
	}
	return out, nil
}

// CloseConsentRequests removes the open requests about one use of a
// stream.
func (db *DB) CloseConsentRequests(ctx context.Context, deviceID, stream, purpose, recipient string) error {
	_, err := db.writer.ExecContext(ctx, `DELETE FROM consent_requests
		WHERE device_id = ? AND stream = ? AND purpose = ? AND recipient = ?`, deviceID, stream, purpose, recipient)
	if err != nil {
		return fmt.Errorf("close consent requests of %q: %w", deviceID, err)
	}
	return nil
}
