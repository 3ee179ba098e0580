package sqlite

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// AppendReadings inserts a batch many rows to a statement (insertChunks),
// in key order for the clustered table. Every reading must come back
// exactly as given, with the seq of its place in the batch, whichever
// statement size stored it and wherever a statement's rows change
// device: a value bound to the wrong row or column shows up as a
// reading with another's payload, time, stream or version.
func TestAppendReadingsRowsStayWhole(t *testing.T) {
	t.Parallel()
	// Sizes around each statement size and the stage boundary, so every
	// mix of statements and every kind of remainder is used.
	var sizes []int
	for _, n := range append(insertChunks[:], 2*insertChunks[0], stageBelow) {
		for _, d := range []int{-1, 0, 1} {
			if n+d > 0 {
				sizes = append(sizes, n+d)
			}
		}
	}
	sizes = append(sizes, 445)
	devices := []string{"dev-c", "dev-a", "dev-b", "dev-e", "dev-d"}
	for _, tc := range []struct {
		name       string
		stageBelow int
	}{
		{"clustered", 0},
		{"staged", 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTemp(t)
			db.stageBelow = tc.stageBelow
			var all []store.Reading
			for bi, n := range sizes {
				batch := make([]store.Reading, n)
				for i := range batch {
					k := len(all) + i
					batch[i] = store.Reading{
						// Devices in an uneven pattern, so a device's
						// rows are neither contiguous nor periodic.
						DeviceID: devices[(k*k+i)%len(devices)],
						Stream:   fmt.Sprintf("stream-%d", k%7),
						// Times go back and forth, unrelated to seq.
						Time:            t0.Add(time.Duration((k*7919)%100003) * time.Millisecond),
						Payload:         []byte(fmt.Sprintf(`{"batch":%d,"i":%d}`, bi, i)),
						ManifestVersion: k % 5,
					}
				}
				if n > 2 {
					batch[n/2].Payload = nil // stored as empty (the column is NOT NULL)
				}
				if err := db.AppendReadings(t.Context(), batch); err != nil {
					t.Fatalf("batch %d of %d readings: %v", bi, n, err)
				}
				for i := range batch {
					if i > 0 && batch[i].Seq != batch[i-1].Seq+1 {
						t.Fatalf("batch %d of %d: reading %d has seq %d after %d; want seqs in arrival order",
							bi, n, i, batch[i].Seq, batch[i-1].Seq)
					}
				}
				if len(all) > 0 && batch[0].Seq <= all[len(all)-1].Seq {
					t.Fatalf("batch %d: first seq %d not above the previous batch's %d", bi, batch[0].Seq, all[len(all)-1].Seq)
				}
				all = append(all, batch...)
			}
			for _, dev := range devices {
				var want []store.Reading
				for _, r := range all {
					if r.DeviceID == dev {
						want = append(want, r)
					}
				}
				got, err := db.Readings(t.Context(), store.ReadingQuery{DeviceID: dev, Limit: MaxReadingLimit})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d readings back, want %d", dev, len(got), len(want))
				}
				for i, w := range want {
					g := got[i]
					if g.Seq != w.Seq || g.DeviceID != w.DeviceID || g.Stream != w.Stream || !g.Time.Equal(w.Time) ||
						g.ManifestVersion != w.ManifestVersion || !bytes.Equal(g.Payload, w.Payload) {
						t.Fatalf("%s, reading %d: got {seq %d %s %s %v v%d %q}, want {seq %d %s %s %v v%d %q}", dev, i,
							g.Seq, g.DeviceID, g.Stream, g.Time, g.ManifestVersion, g.Payload,
							w.Seq, w.DeviceID, w.Stream, w.Time, w.ManifestVersion, w.Payload)
					}
				}
			}
		})
	}
}

// A direct (unstaged) append writes its WAL frames and next to nothing
// else: a multi-row INSERT into the rowid readings table keeps a statement
// journal, which with temporary files on disk spilled to a file past
// 64 KiB and wrote more than the WAL itself (1.1-1.8 KB per reading in
// batches of 1,000; the writer keeps temporary data in memory now). The
// bytes are the process's write(2) total (/proc/self/io), with the
// checkpointer stopped, against the WAL frames the writer wrote.
func TestDirectAppendWritesOnlyTheWAL(t *testing.T) {
	db := openTemp(t)
	db.stopCheckpointer()
	ctx := t.Context()
	// A history as the benchmarks fill it, so a statement's rows reach
	// several devices' leaves.
	const batch = 1000
	rows := 0
	for range 10 {
		if err := db.AppendReadings(ctx, historyBatch(5*batch, rows)); err != nil {
			t.Fatal(err)
		}
		rows += 5 * batch
	}
	var pageSize int64
	if err := db.writer.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	// An empty WAL, so the writer's own backstop checkpoint (at
	// walBackstopPages) does not copy pages into the file meanwhile.
	if _, err := db.writer.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	w0, p0 := procWchar(t), pager(t, db.writer)
	const batches = 10
	for range batches {
		if err := db.AppendReadings(ctx, historyBatch(batch, rows)); err != nil {
			t.Fatal(err)
		}
		rows += batch
	}
	written := procWchar(t) - w0
	frames := int64(pager(t, db.writer).sub(p0).write) * (pageSize + 24)
	t.Logf("%d bytes written, %d of them WAL frames, per reading", written/(batches*batch), frames/(batches*batch))
	// A quarter more for what else a commit writes (the WAL header after
	// a restart, the test's own output).
	if written > frames+frames/4 {
		t.Errorf("%d bytes written for %d bytes of WAL frames: %d bytes per reading besides the WAL",
			written, frames, (written-frames)/(batches*batch))
	}
}

// An append's error names the first reading that is wrong, whatever is
// wrong with it (its time here, a later reading's device id), as it did
// before the batch's keys and marks were looked up ahead of its rows.
func TestAppendErrorNamesFirstBadReading(t *testing.T) {
	db := openMigrated(t)
	err := db.AppendReadings(t.Context(), []store.Reading{
		{DeviceID: "a", Stream: "s", Time: time.Now(), Payload: []byte("{}")},
		{DeviceID: "a", Stream: "s", Time: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("{}")},
		{DeviceID: "", Stream: "s", Time: time.Now(), Payload: []byte("{}")},
	})
	if err == nil || !strings.Contains(err.Error(), `reading 1 of device "a"`) {
		t.Errorf("error %v, want it to name reading 1 (its time is out of range)", err)
	}
}
