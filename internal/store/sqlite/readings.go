package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Reading query limits. The default is the one store.ReadingQuery
// documents; the cap keeps one request from pulling a device's whole
// history into memory.
const (
	DefaultReadingLimit = 1000
	MaxReadingLimit     = 10000
)

// AppendReadings stores rs in one transaction and sets each element's
// Seq. When it returns nil the readings are on disk (synchronous=FULL);
// on error none of them is stored and no Seq is changed, except for a
// *store.RefusedReadingsError: the readings it lists do not fit the
// packed key (each refusal wraps a *KeyRangeError naming the device) and
// were left out; every other reading is on disk with its Seq. The
// ingest batcher commits many devices' readings together, and one device
// past MaxDeviceKey must not keep the others out (readingkey.go). Such a
// device costs its batch no write (it is given no key), and a batch
// refused whole is rolled back: nothing written, nothing synced.
//
// Ingest runs at tens of thousands of readings a second in batches of up
// to a few thousand, so what matters is the commit: one fsync per batch,
// prepared statements reused for every row and every batch, one b-tree
// and at most one update of the seq high-water mark. A batch of fewer than
// stageBelow rows (a paced commit) goes to the staging table, whose last
// page or two is all it dirties; a larger one goes straight into the
// clustered table, where it already fills pages (see stage.go).
func (db *DB) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	// The merger yields the writer to a waiting commit (stage.go).
	db.ingestWaiting.Add(1)
	defer db.ingestDone()
	// Seq is only written back once the commit succeeded, so a failed
	// call leaves the caller's slice as it was.
	rows := make([]appendRow, 0, len(rs))
	var refused []store.RefusedReading // readings that do not fit the key, left out
	var fresh map[string]int64         // device keys made in this transaction
	marks := map[int64]markState{}     // mark states as of this transaction
	staged := len(rs) < db.stageBelow
	inserts := &db.stmts.insertMain
	if staged {
		inserts = &db.stmts.insertStage
	}
	// keyMu makes "commit, then remember the new keys" one step against
	// FinishPurge, which drops keys: otherwise a key dropped between the
	// two could be remembered after all. Writes are serialised on the one
	// writer connection anyway, so this costs no concurrency.
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	var hi int64
	var at seqAt
	batch := func(tx *sql.Tx) error {
		var err error
		if hi, at, err = db.nextSeq(ctx, tx); err != nil {
			return fmt.Errorf("append readings: %w", err)
		}
		first := hi + 1
		// Every reading's time and device key, in arrival order, and
		// the mark states of the devices whose states are not cached,
		// read together (loadMarks).
		pre, err := db.prepareBatch(ctx, tx, rs, &fresh, marks)
		if err != nil {
			return err
		}
		// Then every reading's seq and time marks, in arrival order
		// (seqs and marks follow it); then the rows, many to a
		// statement.
		var markStmt *sql.Stmt
		for i := range rs {
			r := &rs[i]
			ts, dkey := pre[i].ts, pre[i].dkey
			// A reading whose key would not fit is refused here, before
			// anything of it is written, rather than stored under a
			// wrapped key (readingkey.go); it takes no seq and no mark.
			// The rest of the batch goes on: only this device (or, with
			// the seqs used up, every reading from here on) is stuck.
			if _, err := packKey(dkey, hi+1); err != nil {
				kr := &KeyRangeError{DeviceID: r.DeviceID, DeviceKey: dkey, Seq: hi + 1}
				refused = append(refused, store.RefusedReading{Index: i, Err: fmt.Errorf("reading %d: %w", i, kr)})
				continue
			}
			mk := marks[dkey] // prepareBatch put every device's state there
			hi++
			if m, due := mk.add(ts); due {
				if markStmt == nil {
					markStmt = tx.StmtContext(ctx, db.stmts.insertMark)
				}
				if _, err := markStmt.ExecContext(ctx, dkey, m.maxTS, hi, m.minTS); err != nil {
					return fmt.Errorf("append readings: reading %d of device %q: mark: %w", i, r.DeviceID, err)
				}
			}
			marks[dkey] = mk
			rows = append(rows, appendRow{dkey: dkey, seq: hi, ts: ts, i: i})
		}
		if len(rows) == 0 {
			// Every reading refused: roll back what was done for them
			// (a key made for a device whose readings then found the
			// seqs used up) rather than commit and sync nothing.
			return errAllRefused
		}
		if !staged {
			// The clustered table in key order, so consecutive rows
			// land on the same leaf (seqs stay in arrival order).
			slices.SortFunc(rows, func(a, b appendRow) int {
				return cmp.Or(cmp.Compare(a.dkey, b.dkey), cmp.Compare(a.seq, b.seq))
			})
		}
		if err := db.insertRows(ctx, tx, inserts, rs, rows); err != nil {
			return err
		}
		if staged {
			return nil // the stage itself records the newest seq (see readSeq)
		}
		if _, err := tx.StmtContext(ctx, db.stmts.writeSeq).ExecContext(ctx, hi); err != nil {
			return fmt.Errorf("append readings: advance seq: %w", err)
		}
		if db.seq.top >= first {
			// Spares at this batch's seqs (or after them) would stay
			// in the stage unused: remove them with the batch.
			if _, err := tx.ExecContext(ctx, `DELETE FROM readings_stage WHERE seq >= ? AND dkey = 0`, first); err != nil {
				return fmt.Errorf("append readings: drop spare stage rows: %w", err)
			}
		}
		return nil
	}
	committing := false // the batch was written; a failure is its COMMIT's
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := batch(tx); err != nil {
			return err
		}
		committing = true
		return nil
	})
	if errors.Is(err, errAllRefused) {
		// Rolled back, having written nothing that stays: no key made
		// in it is remembered, and the seqs are as they were read.
		db.seq.next, db.seq.at = hi+1, at
		return &store.RefusedReadingsError{Refused: refused}
	}
	if err != nil {
		// What the transaction read or wrote is undone: look the seqs
		// up again next time. A failed COMMIT may even have landed:
		// then the cached mark states of the batch's devices, and what
		// warmCaches read before it, are stale, so both are dropped.
		db.seq.next = 0
		if committing {
			for k := range marks {
				delete(db.marks, k)
			}
			db.forgets++
		}
		return err
	}
	db.seq.next, db.seq.at = hi+1, at
	// Only keys and mark states that were committed are remembered.
	for id, k := range fresh {
		if k <= MaxDeviceKey { // see deviceKey
			db.dkeys.Store(id, k)
		}
	}
	for k, mk := range marks {
		db.marks[k] = mk
	}
	db.seq.staged = staged
	db.sinceCheckpoint.Add(int64(len(rows)))
	if staged {
		db.staged.Add(int64(len(rows)))
		var largest int64
		for _, row := range rows {
			r := &rs[row.i]
			largest = max(largest, int64(len(r.Stream)+len(r.Payload)))
		}
		db.noteRowBytes(largest)
	} else {
		// The batch's seqs are the newest, and no spare is left at or
		// after them: the next spares start at next (not above the
		// ones just deleted, which left up to spareRows seqs without).
		db.seq.top = hi
	}
	for _, row := range rows {
		rs[row.i].Seq = row.seq
	}
	if len(refused) > 0 {
		return &store.RefusedReadingsError{Refused: refused}
	}
	return nil
}

// prepared is a reading's encoded time and device key (prepareBatch).
type prepared struct{ ts, dkey int64 }

// prepareBatch checks every reading of rs and returns its encoded time
// and device key (deviceKey, making the keys of new devices in arrival
// order), and puts every device's mark state into pending: the cached
// one, empty for a key made in this transaction, or read from the
// database, for all those together in one loadMarks. An error names the first reading
// that is wrong, by position and device only: payloads are people's data
// and do not belong in logs. The caller holds keyMu.
func (db *DB) prepareBatch(ctx context.Context, tx *sql.Tx, rs []store.Reading, fresh *map[string]int64, pending map[int64]markState) ([]prepared, error) {
	pre := make([]prepared, len(rs))
	var load []int64
	for i := range rs {
		r := &rs[i]
		if r.DeviceID == "" {
			return nil, fmt.Errorf("append readings: reading %d: empty device id", i)
		}
		ts, err := encTime(r.Time)
		if err != nil {
			return nil, fmt.Errorf("append readings: reading %d of device %q: %w", i, r.DeviceID, err)
		}
		dkey, err := db.deviceKey(ctx, tx, r.DeviceID, fresh)
		if err != nil {
			return nil, fmt.Errorf("append readings: reading %d of device %q: %w", i, r.DeviceID, err)
		}
		pre[i] = prepared{ts: ts, dkey: dkey}
		if _, ok := pending[dkey]; ok || dkey > MaxDeviceKey {
			continue // seen, or its readings will be refused
		}
		if st, ok := db.marks[dkey]; ok {
			pending[dkey] = st
			continue
		}
		if _, made := (*fresh)[r.DeviceID]; made {
			pending[dkey] = noMarks() // a key made just now has no readings
			continue
		}
		pending[dkey] = markState{} // loaded below
		load = append(load, dkey)
	}
	if len(load) > 0 {
		if err := loadMarks(ctx, tx, load, pending); err != nil {
			return nil, fmt.Errorf("append readings: %d devices' marks, the first %q's: %w", len(load), rs[firstOf(pre, load[0])].DeviceID, err)
		}
	}
	return pre, nil
}

// firstOf returns the index of the first reading of pre with key dkey.
func firstOf(pre []prepared, dkey int64) int {
	for i, p := range pre {
		if p.dkey == dkey {
			return i
		}
	}
	return 0
}

// errAllRefused ends AppendReadings' transaction, rolling it back, when
// it refused every reading of the batch.
var errAllRefused = errors.New("append readings: every reading refused")

// appendRow is what AppendReadings works out for reading i of a batch
// before inserting it.
type appendRow struct {
	dkey, seq, ts int64
	i             int
}

// insertChunks are the row counts of the prepared multi-row INSERTs
// (insertStmts), largest first. database/sql and the driver add a fixed
// cost to every statement (locks, converting and binding its arguments,
// a result), so a batch is cut into as few statements as these sizes
// allow: 445 rows take 13.
var insertChunks = [...]int{64, 16, 4, 1}

// insertStmts holds one INSERT of insertChunks[k] rows at k.
type insertStmts [len(insertChunks)]*sql.Stmt

// insertTexts returns the multi-row INSERTs into the clustered table and
// the stage, for prepare. Both take the same arguments per row (see
// insertRows); the clustered table packs dkey and seq into its key
// (readingkey.go), which AppendReadings has checked fit.
//
// OR FAIL: a statement that fails keeps its earlier rows instead of
// undoing them, which spares SQLite a statement journal for a statement
// writing many rows (a temporary file written for every page it touches:
// without OR FAIL an append wrote 1.7-2 times the bytes per reading,
// BenchmarkAppendReadingsBatch). A failed append rolls the whole
// transaction back anyway. Into the rowid readings table SQLite keeps a
// statement journal all the same; the writer holds it in memory
// (temp_store, sqlite.go).
func (s *stmts) insertTexts(cols string) []stmtText {
	var out []stmtText
	for k, n := range insertChunks {
		values := strings.TrimSuffix(strings.Repeat(`(?, ?, ?, ?, ?, ?), `, n), `, `)
		packed := strings.TrimSuffix(strings.Repeat(`(? << `+sqlSeqBits+` | ?, ?, ?, ?, ?), `, n), `, `)
		out = append(out,
			stmtText{&s.insertMain[k], `INSERT OR FAIL INTO readings ` + packedCols + ` VALUES ` + packed},
			// A staged row takes the place of the spare at its seq, if
			// there is one (spare.go), and never of anything else.
			stmtText{&s.insertStage[k], `INSERT OR FAIL INTO readings_stage ` + cols + ` VALUES ` + values +
				` ON CONFLICT (seq) DO UPDATE SET dkey = excluded.dkey, stream = excluded.stream, ts = excluded.ts,
				manifest_version = excluded.manifest_version, payload = excluded.payload WHERE readings_stage.dkey = 0`})
	}
	return out
}

// insertRows inserts rows (readings of rs) in their order, as few
// statements as insertChunks allow.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, inserts *insertStmts, rs []store.Reading, rows []appendRow) error {
	var txStmts insertStmts // inserts bound to tx, as they are first needed
	args := make([]any, 0, 6*min(len(rows), insertChunks[0]))
	for len(rows) > 0 {
		k := 0
		for insertChunks[k] > len(rows) {
			k++
		}
		n := insertChunks[k]
		if txStmts[k] == nil {
			txStmts[k] = tx.StmtContext(ctx, inserts[k])
		}
		args = args[:0]
		for _, row := range rows[:n] {
			r := &rs[row.i]
			payload := r.Payload
			if payload == nil {
				payload = []byte{} // the column is NOT NULL; nil would bind as NULL
			}
			args = append(args, row.dkey, row.seq, r.Stream, row.ts, int64(r.ManifestVersion), payload)
		}
		res, err := txStmts[k].ExecContext(ctx, args...)
		if err == nil && inserts == &db.stmts.insertStage {
			// A staged row replaces only a spare (dkey 0): a row left
			// out means its seq was a reading's, which must not be
			// overwritten (nor the reading lost).
			var m int64
			if m, err = res.RowsAffected(); err == nil && m != int64(n) {
				err = fmt.Errorf("%w: %d of %d seqs already taken", errSeqTaken, int64(n)-m, n)
			}
		}
		if err != nil {
			// SQLite does not say which row of a statement failed:
			// name the first and how many more.
			r := rows[0]
			if n == 1 {
				return fmt.Errorf("append readings: reading %d of device %q: %w", r.i, rs[r.i].DeviceID, err)
			}
			return fmt.Errorf("append readings: reading %d of device %q or one of the %d stored with it: %w",
				r.i, rs[r.i].DeviceID, n-1, err)
		}
		rows = rows[n:]
	}
	return nil
}

// deviceKey returns the integer key readings of deviceID are stored
// under, making one if the device has none yet (recorded in *fresh until
// the transaction commits). It runs inside the writer's transaction, so it
// is serialised with FinishPurge (keyMu), which removes keys.
func (db *DB) deviceKey(ctx context.Context, tx *sql.Tx, deviceID string, fresh *map[string]int64) (int64, error) {
	if k, ok := db.dkeys.Load(deviceID); ok {
		return k, nil
	}
	if k, ok := (*fresh)[deviceID]; ok {
		return k, nil
	}
	var k int64
	err := tx.StmtContext(ctx, db.stmts.readKey).QueryRowContext(ctx, deviceID).Scan(&k)
	if errors.Is(err, sql.ErrNoRows) {
		// The key AUTOINCREMENT would give next, read before making it:
		// past MaxDeviceKey no reading can be stored under it
		// (AppendReadings refuses them), so the device is given none
		// and nothing is written. Making the key and deleting it again
		// would still advance the counter, and a batch of nothing but
		// such readings would commit, and sync, that alone.
		if err := tx.StmtContext(ctx, db.stmts.nextKey).QueryRowContext(ctx).Scan(&k); err != nil {
			return 0, fmt.Errorf("device key: next key: %w", err)
		}
		if k <= MaxDeviceKey {
			res, err := tx.StmtContext(ctx, db.stmts.insertKey).ExecContext(ctx, deviceID)
			if err != nil {
				return 0, fmt.Errorf("device key: %w", err)
			}
			if k, err = res.LastInsertId(); err != nil {
				return 0, fmt.Errorf("device key: %w", err)
			}
		}
		// An out-of-range key stays in fresh, unremembered after the
		// commit, so the batch's other readings of the device are
		// refused without another look.
		if *fresh == nil {
			*fresh = map[string]int64{}
		}
		(*fresh)[deviceID] = k
		return k, nil
	}
	if err != nil {
		return 0, fmt.Errorf("device key: %w", err)
	}
	db.dkeys.Store(deviceID, k) // committed by an earlier transaction
	return k, nil
}

// byDevice is the condition selecting one device's staged readings by
// its id (the first argument): the subquery runs once. (The packed table
// is read through deviceRange, readingkey.go.)
const byDevice = `dkey = (SELECT dkey FROM reading_devices WHERE device_id = ?)`

// Readings returns readings of q.DeviceID matching q, in increasing Seq
// order. Limit 0 means DefaultReadingLimit; larger limits are capped at
// MaxReadingLimit, so callers page with AfterSeq.
func (db *DB) Readings(ctx context.Context, q store.ReadingQuery) ([]store.Reading, error) {
	if q.DeviceID == "" {
		return nil, errors.New("query readings: empty device id")
	}
	// The conditions besides the device and seq (where, args), the
	// same on both tables.
	var (
		where strings.Builder
		args  []any
	)
	if q.Stream != "" {
		where.WriteString(` AND stream = ?`)
		args = append(args, q.Stream)
	}
	after := q.AfterSeq
	if !q.Since.IsZero() {
		since, err := encTime(q.Since)
		if err != nil {
			return nil, fmt.Errorf("query readings of device %q: since: %w", q.DeviceID, err)
		}
		where.WriteString(` AND ts >= ?`)
		args = append(args, since)
		// Start at the device's last time mark before since rather than
		// at its first reading.
		m, err := markSince(ctx, db.readers, q.DeviceID, since)
		if err != nil {
			return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
		}
		after = max(after, m-1)
	}
	var spans []seqSpan
	if !q.Until.IsZero() {
		until, err := encTime(q.Until)
		if err != nil {
			return nil, fmt.Errorf("query readings of device %q: until: %w", q.DeviceID, err)
		}
		where.WriteString(` AND ts < ?`)
		args = append(args, until)
		// Stop at the last marked chunk that holds a time before until
		// rather than at the device's newest reading.
		if spans, err = markUntil(ctx, db.readers, q.DeviceID, after, until); err != nil {
			return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
		}
	}
	if q.ManifestVersion != 0 {
		where.WriteString(` AND manifest_version = ?`)
		args = append(args, q.ManifestVersion)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultReadingLimit
	}
	limit = min(limit, MaxReadingLimit)

	// A stream asked for is not read back from every row: one column and
	// one string allocation less per reading (an export reads each stream
	// whole).
	cols := `stream, ts, payload, manifest_version FROM `
	if q.Stream != "" {
		cols = `ts, payload, manifest_version FROM `
	}
	// Both tables, merged by key in one statement (one snapshot, so a
	// reading moving from the stage meanwhile is seen exactly once;
	// stageLive leaves out staged readings a merge pass has already
	// copied, see stage.go). The packed table is read as a rowid range
	// from the device's first wanted seq, over each span the time marks
	// leave (one, or two for a window that ends in the middle of the
	// history), and the LIMIT stops both sides early; the stage is small
	// and scanned. The first column is the packed key (a staged
	// reading's computed): one device's keys sort as its seqs.
	var (
		stmt  strings.Builder
		qargs []any
	)
	if spans == nil {
		spans = []seqSpan{{after + 1, 0}}
	}
	for _, sp := range spans {
		lo, hi := sp.keyBounds()
		stmt.WriteString(`SELECT r.id, ` + cols + deviceRange + where.String() + ` UNION ALL `)
		qargs = append(append(qargs, q.DeviceID, lo, hi), args...)
	}
	stmt.WriteString(`SELECT ` + stageKey + `, ` + cols + `readings_stage WHERE ` + byDevice + where.String() + ` AND ` + stageLive)
	qargs = append(append(qargs, q.DeviceID), args...)
	if after > 0 {
		stmt.WriteString(` AND seq > ?`)
		qargs = append(qargs, after)
	}
	stmt.WriteString(` ORDER BY 1 LIMIT ?`)
	rows, err := db.readers.QueryContext(ctx, stmt.String(), append(qargs, limit)...)
	if err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	defer rows.Close()
	// Room for a whole export page (500) at once: growing from 64 made
	// the export allocate its rows about twice over (110 of the 634 bytes
	// it allocated per reading).
	out := make([]store.Reading, 0, min(limit, 512))
	for rows.Next() {
		var (
			r      store.Reading
			id, ts int64
		)
		var err error
		if q.Stream != "" {
			r.Stream = q.Stream
			err = rows.Scan(&id, &ts, &r.Payload, &r.ManifestVersion)
		} else {
			err = rows.Scan(&id, &r.Stream, &ts, &r.Payload, &r.ManifestVersion)
		}
		if err != nil {
			return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
		}
		r.Seq = seqOfKey(id)
		r.DeviceID = q.DeviceID
		r.Time = decTime(ts)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query readings of device %q: %w", q.DeviceID, err)
	}
	return out, nil
}

// CountReadings returns how many readings of the device are stored.
func (db *DB) CountReadings(ctx context.Context, deviceID string) (int64, error) {
	var n int64
	err := db.readers.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+deviceRange+`)
		+ (SELECT count(*) FROM readings_stage WHERE `+byDevice+` AND `+stageLive+`)`, deviceID, 0, MaxReadingSeq, deviceID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count readings of device %q: %w", deviceID, err)
	}
	return n, nil
}

// StreamCounts counts the device's readings before until per stream, in
// the database: a scan of the device's range of the packed key.
func (db *DB) StreamCounts(ctx context.Context, deviceID string, until time.Time) (map[string]int64, error) {
	where, args := ``, []any(nil)
	if !until.IsZero() {
		u, err := encTime(until)
		if err != nil {
			return nil, fmt.Errorf("count streams of device %q: until: %w", deviceID, err)
		}
		where += ` AND ts < ?`
		args = append(args, u)
	}
	qargs := append(append([]any{deviceID, 0, MaxReadingSeq}, args...), deviceID)
	rows, err := db.readers.QueryContext(ctx, `SELECT stream, count(*) FROM (SELECT stream FROM `+deviceRange+where+
		` UNION ALL SELECT stream FROM readings_stage WHERE `+byDevice+where+` AND `+stageLive+`) GROUP BY stream`, append(qargs, args...)...)
	if err != nil {
		return nil, fmt.Errorf("count streams of device %q: %w", deviceID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count streams of device %q: %w", deviceID, err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count streams of device %q: %w", deviceID, err)
	}
	return out, nil
}

// DeleteReadings removes matching readings of one device, at most limit
// rows (limit ≤ 0: all) in one transaction. The selection is a scan of
// the device's range of the clustered key: deletions are rare (retention
// sweeps, a person's request), appends are constant, and one b-tree
// instead of three is what keeps appends cheap.
func (db *DB) DeleteReadings(ctx context.Context, q store.ReadingQuery, limit int) (int64, error) {
	if q.DeviceID == "" {
		return 0, errors.New("delete readings: empty device id")
	}
	// The conditions besides the device and seq.
	where := ``
	var args []any
	if q.Stream != "" {
		where += ` AND stream = ?`
		args = append(args, q.Stream)
	}
	var since, until int64 // for the time marks: 0 is open
	if !q.Since.IsZero() {
		n, err := encTime(q.Since)
		if err != nil {
			return 0, fmt.Errorf("delete readings: since: %w", err)
		}
		where += ` AND ts >= ?`
		args = append(args, n)
		since = n
	}
	if !q.Until.IsZero() {
		n, err := encTime(q.Until)
		if err != nil {
			return 0, fmt.Errorf("delete readings: until: %w", err)
		}
		where += ` AND ts < ?`
		args = append(args, n)
		until = n
	}
	if q.ManifestVersion != 0 {
		where += ` AND manifest_version = ?`
		args = append(args, q.ManifestVersion)
	}
	// del deletes the matches of device key dkey in one seq span, at
	// most `most` (≤ 0: all): a rowid range of the packed key.
	del := func(tx *sql.Tx, dkey int64, sp seqSpan, most int64) (int64, error) {
		lo, hi := sp.keyBounds()
		if lo > hi {
			return 0, nil
		}
		from, err := packKey(dkey, max(lo, 1))
		if err != nil {
			return 0, err
		}
		to := dkey<<seqBits | hi
		w, a := `id BETWEEN ? AND ?`+where, append([]any{from, to}, args...)
		stmt := `DELETE FROM readings WHERE ` + w
		if most > 0 {
			stmt = `DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE ` + w + ` ORDER BY id LIMIT ?)`
			a = append(a, most)
		}
		res, err := tx.ExecContext(ctx, stmt, a...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	var n, merged int64
	// keyMu: the device's cached running maximum may be a deleted
	// reading's time, and is forgotten once this commits (marks.go).
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// Staged readings are moved first, so the deletion (and its
		// limit) sees one table; deletions are rare, the stage small.
		var err error
		if merged, err = db.mergeTx(ctx, tx, 0); err != nil {
			return err
		}
		// The time marks bound the scan as for a query: a retention
		// sweep (until, every stream of every device) read each device's
		// whole history in the writer's transaction, holding up ingest
		// for seconds at 10M stored readings.
		dkey, ok, err := readingKeyOf(ctx, tx, q.DeviceID)
		if err != nil || !ok {
			return err // no key: no readings
		}
		spans, err := markSpans(ctx, tx, q.DeviceID, 0, since, until)
		if err != nil {
			return err
		}
		for _, sp := range spans {
			left := int64(0)
			if limit > 0 {
				if left = int64(limit) - n; left <= 0 {
					break
				}
			}
			k, err := del(tx, dkey, sp, left)
			if err != nil {
				return err
			}
			n += k
		}
		if n == 0 {
			return nil
		}
		return dropMarks(ctx, tx, q.DeviceID, since, until)
	})
	if err != nil {
		return 0, fmt.Errorf("delete readings of device %q: %w", q.DeviceID, err)
	}
	if n > 0 {
		db.forgetMarks(q.DeviceID)
	}
	db.unstaged(merged)
	return n, nil
}
