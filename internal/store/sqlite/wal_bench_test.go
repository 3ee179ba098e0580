package sqlite

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPacedWAL splits the WAL that paced ingest writes by where it
// goes (issue #19: the hub wrote ~3.5 KB to disk per 140-byte paced
// reading). On a fresh database holding 50 readings of each of 100
// devices in the clustered table, it appends 10,000 readings in batches
// of batch (one reading per device each, in turn, as paced commits hold
// them: all staged), then merges them all in the merger's passes and
// steps, with the background merger and checkpointer stopped so the WAL
// keeps every frame. Between appends it adds spare stage rows when the
// merger would (spare.go). It reads the frames back and reports, per
// reading:
//
//   - append-B, merge-B: WAL bytes (frame header and page) of the
//     append phase (the commits and the spares) and of the merge;
//   - commit-B, spare-B: append-B split into the ingest commits' own
//     frames (what each commit's fsync waits for) and the spares';
//   - distinct-B: the distinct pages written by both, which is what one
//     checkpoint at the end would copy into the database file (the hub's
//     checkpointer runs after every 5,000 readings or second, so it
//     copies more: see BenchmarkPacedCheckpoint);
//   - stage-B, page1-B, ptrmap-B, free-B, main-B: the WAL bytes of pages
//     that belong to readings_stage, the header page, the pointer-map
//     pages (auto_vacuum: each page's parent), pages in no table (the
//     free list's) and readings (the clustered table), over both
//     phases, each page counted for its owner at the end of its phase;
//   - other-B: the rest (the merge's progress row, the seq mark).
//
// A fixed workload: run it with -benchtime 1x (each iteration repeats it
// on a new database).
//
//	go test -run '^$' -bench PacedWAL -benchtime 1x ./internal/store/sqlite/
func BenchmarkPacedWAL(b *testing.B) {
	for _, batch := range []int{10, 25, 40} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for b.Loop() {
				benchPacedWAL(b, batch)
			}
		})
	}
}

func benchPacedWAL(b *testing.B, batch int) {
	const (
		before   = 50 * historyDevices
		readings = 10_000
	)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.AppendReadings(ctx, historyBatch(before, 0)); err != nil {
		b.Fatal(err)
	}
	db.stopMerger()
	db.stopCheckpointer()
	if _, err := db.writer.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			b.Fatal(err)
		}
		return fi.Size()
	}
	start := walSize()
	var spares int64 // WAL bytes of the spares' transactions
	for i := before; i < before+readings; i += batch {
		if err := db.AppendReadings(ctx, historyBatch(min(batch, before+readings-i), i)); err != nil {
			b.Fatal(err)
		}
		// The merger's check (every 25 ms, a few paced commits) would
		// add spares about as often.
		w := walSize()
		if _, err := db.addSpares(ctx); err != nil {
			b.Fatal(err)
		}
		spares += walSize() - w
	}
	appended := walSize()
	// Owners as of each phase's end: the merge frees the stage's pages
	// and the clustered table reuses them.
	ownerAppend, err := pageOwners(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	for {
		p, err := db.planPass(ctx, mergeChunk)
		if err != nil {
			b.Fatal(err)
		}
		if p == nil {
			break
		}
		if db.runPass(ctx, p, make(chan struct{})) != nil {
			b.Fatal("merge pass did not finish")
		}
	}
	merged := walSize()
	if n := stagedRows(ctx, db); n != 0 {
		b.Fatalf("%d readings still staged after the merge", n)
	}
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		b.Fatal(err)
	}
	ownerMerge, err := pageOwners(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	pageSize := int64(binary.BigEndian.Uint32(wal[8:12]))
	frame := 24 + pageSize
	if start > 32 && (start-32)%frame != 0 {
		b.Fatalf("WAL of %d bytes is not whole frames of %d", start, frame)
	}
	per := func(frames int) float64 { return float64(int64(frames)*frame) / readings }
	byOwner := map[string]int{}
	distinct := map[uint32]bool{}
	frames := func(from, to int64, owner func(uint32) string) int {
		n := 0
		for o := max(from, 32); o+frame <= to; o += frame {
			pg := binary.BigEndian.Uint32(wal[o : o+4])
			distinct[pg] = true
			byOwner[owner(pg)]++
			n++
		}
		return n
	}
	b.ReportMetric(per(frames(start, appended, ownerAppend)), "append-B")
	b.ReportMetric(float64(appended-max(start, 32)-spares)/readings, "commit-B")
	b.ReportMetric(float64(spares)/readings, "spare-B")
	b.ReportMetric(per(frames(appended, merged, ownerMerge)), "merge-B")
	b.ReportMetric(float64(int64(len(distinct))*pageSize)/readings, "distinct-B")
	b.ReportMetric(per(byOwner["readings_stage"]), "stage-B")
	b.ReportMetric(per(byOwner["page 1"]), "page1-B")
	b.ReportMetric(per(byOwner["pointer map"]), "ptrmap-B")
	b.ReportMetric(per(byOwner[""]), "free-B")
	b.ReportMetric(per(byOwner["readings"]), "main-B")
	other := 0
	for k, n := range byOwner {
		switch k {
		case "readings_stage", "page 1", "pointer map", "", "readings":
		default:
			other += n
		}
	}
	b.ReportMetric(per(other), "other-B")
}

// pageOwners maps a page number to the table or index it belongs to now
// ("page 1" for the header page, "pointer map" for auto_vacuum's, "" for
// a page in none: the free list's).
// A page freed and reused between the frames and now counts for its
// present owner.
func pageOwners(ctx context.Context, db *DB) (func(uint32) string, error) {
	rows, err := db.writer.QueryContext(ctx, `SELECT name, pageno FROM dbstat`)
	if err != nil {
		return nil, fmt.Errorf("dbstat: %w", err)
	}
	defer rows.Close()
	m := map[uint32]string{}
	for rows.Next() {
		var name string
		var pg uint32
		if err := rows.Scan(&name, &pg); err != nil {
			return nil, fmt.Errorf("dbstat: %w", err)
		}
		m[pg] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dbstat: %w", err)
	}
	var pageSize uint32
	if err := db.writer.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		return nil, fmt.Errorf("page size: %w", err)
	}
	// In auto_vacuum mode page 2 is a pointer map, and every
	// usable/5+1 pages after it another (no bytes are reserved here).
	every := pageSize/5 + 1
	return func(pg uint32) string {
		if pg == 1 {
			return "page 1"
		}
		if pg >= 2 && (pg-2)%every == 0 {
			return "pointer map"
		}
		return m[pg]
	}, nil
}

// BenchmarkPacedCheckpoint is BenchmarkPacedWAL's workload (10,000
// readings from 100 devices in staged commits of 25) run as the hub runs
// it: merge passes start whenever mergeAtRows readings are staged, so
// the stage's freed pages are reused, and spares are added (spares=on) or
// not (off: every commit adds its own pages, as before spare.go). The
// checkpointer stays stopped so the WAL keeps every frame, and the frames
// are then grouped by how many readings had been appended when each was
// written. It reports, per reading:
//
//   - wal-B: all WAL bytes (commits, spares, merges);
//   - commit-B: the ingest commits' own WAL bytes;
//   - ckptN-B: the page bytes a checkpoint every N readings would copy
//     into the database file (the distinct pages written in each window
//     of N readings; at 10,000 readings a second the hub's checkpointer,
//     every 100 ms, copies about ckpt1000-B).
//
// A fixed workload: run it with -benchtime 1x.
//
//	go test -run '^$' -bench PacedCheckpoint -benchtime 1x ./internal/store/sqlite/
func BenchmarkPacedCheckpoint(b *testing.B) {
	for _, spares := range []bool{false, true} {
		name := "spares=off"
		if spares {
			name = "spares=on"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				benchPacedCheckpoint(b, spares)
			}
		})
	}
}

func benchPacedCheckpoint(b *testing.B, spares bool) {
	const (
		before   = 50 * historyDevices
		readings = 10_000
		batch    = 25
	)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "candor.db")
	db, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.AppendReadings(ctx, historyBatch(before, 0)); err != nil {
		b.Fatal(err)
	}
	db.stopMerger()
	db.stopCheckpointer()
	if _, err := db.writer.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			b.Fatal(err)
		}
		return fi.Size()
	}
	// ends[k] is the WAL's size when k×batch readings had been appended
	// and what followed them (spares, a merge pass) was done.
	ends := []int64{walSize()}
	var commits int64
	for i := before; i < before+readings; i += batch {
		w := walSize()
		if err := db.AppendReadings(ctx, historyBatch(batch, i)); err != nil {
			b.Fatal(err)
		}
		commits += walSize() - max(w, 32)
		if spares {
			if _, err := db.addSpares(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if db.staged.Load() >= mergeAtRows {
			p, err := db.planPass(ctx, mergeChunk)
			if err != nil {
				b.Fatal(err)
			}
			if p != nil && db.runPass(ctx, p, make(chan struct{})) != nil {
				b.Fatal("merge pass did not finish")
			}
		}
		ends = append(ends, walSize())
	}
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		b.Fatal(err)
	}
	pageSize := int64(binary.BigEndian.Uint32(wal[8:12]))
	frame := 24 + pageSize
	b.ReportMetric(float64(int64(len(wal))-ends[0])/readings, "wal-B")
	b.ReportMetric(float64(commits)/readings, "commit-B")
	for _, n := range []int{250, 1000, 2500, 5000, 10_000} {
		type key struct {
			window int
			page   uint32
		}
		distinct := map[key]bool{}
		k := 0 // the batch whose frames these are
		for o := max(ends[0], 32); o+frame <= int64(len(wal)); o += frame {
			for k < len(ends)-1 && o >= ends[k+1] {
				k++
			}
			distinct[key{k * batch / n, binary.BigEndian.Uint32(wal[o : o+4])}] = true
		}
		b.ReportMetric(float64(int64(len(distinct))*pageSize)/readings, fmt.Sprintf("ckpt%d-B", n))
	}
}
