package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/candor-iot/candor/internal/store"
)

// insertConsentRecord appends one record inside tx.
func insertConsentRecord(ctx context.Context, tx pgx.Tx, rec store.ConsentRecord) error {
	created, err := encTime(rec.CreatedAt)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO consent_records
		(id, account_id, device_id, stream, purpose, recipient, created_at, doc)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
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
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := insertConsentRecord(ctx, tx, rec); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO consent_decisions
			(device_id, stream, purpose, recipient, is_on, account_id, record_id, decided_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (device_id, stream, purpose, recipient) DO UPDATE SET
				is_on = excluded.is_on, account_id = excluded.account_id,
				record_id = excluded.record_id, decided_at = excluded.decided_at`,
			rec.DeviceID, rec.Stream, rec.Purpose, rec.Recipient, d.On, rec.AccountID, rec.ID, decided)
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
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := insertConsentRecord(ctx, tx, rec); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO consent_routing
			(device_id, stream, keep_on_hub, retention, account_id, record_id, decided_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (device_id, stream) DO UPDATE SET
				keep_on_hub = excluded.keep_on_hub, retention = excluded.retention,
				account_id = excluded.account_id, record_id = excluded.record_id,
				decided_at = excluded.decided_at`,
			rec.DeviceID, rec.Stream, r.KeepOnHub, r.Retention, rec.AccountID, rec.ID, decided)
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
	rec, err := scanConsentRecord(db.pool.QueryRow(ctx, `SELECT `+consentRecordCols+` FROM consent_records WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ConsentRecord{}, fmt.Errorf("consent record %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.ConsentRecord{}, fmt.Errorf("consent record %q: %w", id, err)
	}
	return rec, nil
}

// ConsentRecords lists records matching q in append order.
func (db *DB) ConsentRecords(ctx context.Context, q store.ConsentRecordQuery) ([]store.ConsentRecord, error) {
	w := &whereClause{}
	if q.AccountID != "" {
		w.add("account_id = ?", q.AccountID)
	}
	if q.DeviceID != "" {
		w.add("device_id = ?", q.DeviceID)
	}
	if q.AfterSeq > 0 {
		w.add("seq > ?", q.AfterSeq)
	}
	query := `SELECT ` + consentRecordCols + ` FROM consent_records WHERE ` + w.String() + ` ORDER BY seq`
	if q.Limit > 0 {
		query += ` LIMIT ` + w.next(q.Limit)
	}
	rows, err := db.pool.Query(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list consent records: %w", err)
	}
	out, err := collect(rows, scanConsentRecord)
	if err != nil {
		return nil, fmt.Errorf("list consent records: %w", err)
	}
	return out, nil
}

// ConsentDecisions lists current decisions of one device, or of all
// devices when deviceID is empty.
func (db *DB) ConsentDecisions(ctx context.Context, deviceID string) ([]store.ConsentDecision, error) {
	w := &whereClause{}
	if deviceID != "" {
		w.add("device_id = ?", deviceID)
	}
	rows, err := db.pool.Query(ctx, `SELECT device_id, stream, purpose, recipient, is_on, account_id, record_id, decided_at
		FROM consent_decisions WHERE `+w.String()+` ORDER BY device_id, stream, purpose, recipient`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("consent decisions of %q: %w", deviceID, err)
	}
	out, err := collect(rows, func(r rowScanner) (store.ConsentDecision, error) {
		var (
			d       store.ConsentDecision
			decided int64
		)
		err := r.Scan(&d.DeviceID, &d.Stream, &d.Purpose, &d.Recipient, &d.On, &d.AccountID, &d.RecordID, &decided)
		d.DecidedAt = decTime(decided)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("consent decisions of %q: %w", deviceID, err)
	}
	return out, nil
}

// ConsentRoutings lists stream routings of one device, or of all devices
// when deviceID is empty.
func (db *DB) ConsentRoutings(ctx context.Context, deviceID string) ([]store.ConsentRouting, error) {
	w := &whereClause{}
	if deviceID != "" {
		w.add("device_id = ?", deviceID)
	}
	rows, err := db.pool.Query(ctx, `SELECT device_id, stream, keep_on_hub, retention, account_id, record_id, decided_at
		FROM consent_routing WHERE `+w.String()+` ORDER BY device_id, stream`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("consent routings of %q: %w", deviceID, err)
	}
	out, err := collect(rows, func(r rowScanner) (store.ConsentRouting, error) {
		var (
			c       store.ConsentRouting
			decided int64
		)
		err := r.Scan(&c.DeviceID, &c.Stream, &c.KeepOnHub, &c.Retention, &c.AccountID, &c.RecordID, &decided)
		c.DecidedAt = decTime(decided)
		return c, err
	})
	if err != nil {
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
	_, err = db.pool.Exec(ctx, `INSERT INTO consent_requests
		(id, household_id, device_id, account_id, stream, purpose, recipient, is_on, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.HouseholdID, r.DeviceID, r.AccountID, r.Stream, r.Purpose, r.Recipient, r.On, created)
	if err != nil {
		return wrapErr(err, "add consent request %q", r.ID)
	}
	return nil
}

// ConsentRequests lists a household's open requests, oldest first.
func (db *DB) ConsentRequests(ctx context.Context, householdID string) ([]store.ConsentRequest, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, household_id, device_id, account_id, stream, purpose, recipient, is_on, created_at
		FROM consent_requests WHERE household_id = $1 ORDER BY created_at, id`, householdID)
	if err != nil {
		return nil, fmt.Errorf("consent requests of %q: %w", householdID, err)
	}
	defer rows.Close()
	var out []store.ConsentRequest
	for rows.Next() {
		var (
			r       store.ConsentRequest
			created int64
		)
		if err := rows.Scan(&r.ID, &r.HouseholdID, &r.DeviceID, &r.AccountID, &r.Stream, &r.Purpose, &r.Recipient, &r.On, &created); err != nil {
			return nil, fmt.Errorf("consent requests of %q: %w", householdID, err)
		}
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
	_, err := db.pool.Exec(ctx, `DELETE FROM consent_requests
		WHERE device_id = $1 AND stream = $2 AND purpose = $3 AND recipient = $4`, deviceID, stream, purpose, recipient)
	if err != nil {
		return fmt.Errorf("close consent requests of %q: %w", deviceID, err)
	}
	return nil
}
