package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// OldestReadings returns, for every device with stored readings, the time
// of its oldest one; a device with none is absent. It lets a retention
// sweep skip a device with nothing to delete (issue #19: one DELETE per
// device and stream, each its own transaction, cost an idle hub with
// 18,000 devices 43% of its CPU). Each device's minimum is a descent of
// the (device_id, ts, stream) index of its earliest month: PostgreSQL
// reads the months' partitions in time order and stops at the first
// that holds any of the device's readings. One statement, one snapshot.
func (db *DB) OldestReadings(ctx context.Context) (map[string]time.Time, error) {
	rows, err := db.pool.Query(ctx, `SELECT d.id, m.ts FROM devices d
		CROSS JOIN LATERAL (SELECT min(r.ts) AS ts FROM readings r WHERE r.device_id = d.id) m
		WHERE m.ts IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("oldest readings: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var ts int64
		if err := rows.Scan(&id, &ts); err != nil {
			return nil, fmt.Errorf("oldest readings: %w", err)
		}
		out[id] = store.DecodeTime(ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("oldest readings: %w", err)
	}
	return out, nil
}
