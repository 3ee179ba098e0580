package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// A reading whose seq or device key does not fit the packed key is
// refused with a *KeyRangeError, staged or not, and the rest of its batch
// is stored; readings at the very top of both ranges (key 2⁶³-1) are
// stored and read back, merged, counted and deleted like any other.
func TestAppendKeyRange(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stageBelow int
	}{
		{"clustered", 0},
		{"staged", 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			db := openTemp(t)
			db.stageBelow = tc.stageBelow
			if err := db.AppendReadings(ctx, []store.Reading{{DeviceID: "d1", Stream: "s", Time: t0}}); err != nil {
				t.Fatal(err)
			}
			// The next device key is MaxDeviceKey, the next seq
			// MaxReadingSeq-2.
			if _, err := db.writer.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'reading_devices'`, MaxDeviceKey-1); err != nil {
				t.Fatal(err)
			}
			if _, err := db.writer.ExecContext(ctx, `UPDATE reading_seq SET hi = ?`, MaxReadingSeq-3); err != nil {
				t.Fatal(err)
			}
			// Written behind the store's back on its own connection
			// (which leaves data_version as it was): the store looks
			// the seqs up again, as after another process's commit.
			db.keyMu.Lock()
			db.seq.next = 0
			db.keyMu.Unlock()
			reading := func(dev string, i int) store.Reading {
				return store.Reading{DeviceID: dev, Stream: fmt.Sprint("s", i%2), Time: t0.Add(time.Duration(i) * time.Second),
					Payload: []byte{byte(i)}, ManifestVersion: i}
			}
			top := []store.Reading{reading("dmax", 0)}
			if err := db.AppendReadings(ctx, top); err != nil {
				t.Fatal(err)
			}
			if top[0].Seq != MaxReadingSeq-2 {
				t.Fatalf("seq %d, want %d", top[0].Seq, MaxReadingSeq-2)
			}
			// refused appends rs, of which the one at index bad is
			// refused with a KeyRangeError{dev, key, seq} and the rest
			// stored, the first of them at seq next.
			refused := func(rs []store.Reading, bad int, want KeyRangeError, next int64) {
				t.Helper()
				err := db.AppendReadings(ctx, rs)
				var re *store.RefusedReadingsError
				if !errors.As(err, &re) || len(re.Refused) != 1 || re.Refused[0].Index != bad {
					t.Fatalf("append: %v, want reading %d refused", err, bad)
				}
				var kr *KeyRangeError
				if !errors.As(re.Refused[0].Err, &kr) || *kr != want {
					t.Fatalf("append: %v, want a KeyRangeError %+v", err, want)
				}
				if msg := err.Error(); !strings.Contains(msg, "out of range") || !strings.Contains(msg, `"`+want.DeviceID+`"`) ||
					strings.Contains(msg, "\x07") {
					t.Errorf("error %q: want it to say which device and what is out of range, without the payload", err)
				}
				for i, r := range rs {
					switch {
					case i == bad && r.Seq != 0:
						t.Errorf("the refused reading got seq %d", r.Seq)
					case i != bad && r.Seq != next:
						t.Errorf("reading %d got seq %d, want %d", i, r.Seq, next)
					case i != bad:
						next++
					}
				}
			}
			// A new device would get key MaxDeviceKey+1: its reading is
			// refused, dmax's stored.
			over := []store.Reading{reading("dmax", 7), reading("dover", 7)}
			refused(over, 1, KeyRangeError{DeviceID: "dover", DeviceKey: MaxDeviceKey + 1, Seq: MaxReadingSeq}, MaxReadingSeq-1)
			var keys int
			if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM reading_devices WHERE device_id = 'dover'`).Scan(&keys); err != nil || keys != 0 {
				t.Fatalf("%d keys for the refused device (%v)", keys, err)
			}
			// The last seq, key 2⁶³-1, and one past it.
			more := []store.Reading{reading("dmax", 1), reading("dmax", 2)}
			refused(more, 1, KeyRangeError{DeviceID: "dmax", DeviceKey: MaxDeviceKey, Seq: MaxReadingSeq + 1}, MaxReadingSeq)
			if err := db.AppendReadings(ctx, []store.Reading{reading("d1", 3)}); err == nil {
				t.Fatal("append past the last seq succeeded")
			}

			want := append(top, over[0], more[0])
			check := func(when string) {
				t.Helper()
				got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dmax"})
				if err != nil {
					t.Fatal(err)
				}
				if !sameReadings(got, want) {
					t.Fatalf("%s: readings of dmax %+v, want %+v", when, got, want)
				}
				got, err = db.Readings(ctx, store.ReadingQuery{DeviceID: "dmax", AfterSeq: MaxReadingSeq - 1, Since: t0.Add(time.Second)})
				if err != nil || len(got) != 1 || got[0].Seq != MaxReadingSeq {
					t.Fatalf("%s: after %d: %+v, %v", when, MaxReadingSeq-1, got, err)
				}
				if n, err := db.CountReadings(ctx, "dmax"); err != nil || n != 3 {
					t.Fatalf("%s: count %d, %v", when, n, err)
				}
				if c, err := db.StreamCounts(ctx, "dmax", time.Time{}); err != nil || c["s0"] != 1 || c["s1"] != 2 {
					t.Fatalf("%s: stream counts %v, %v", when, c, err)
				}
				if at, err := db.LastReadingAt(ctx, "dmax"); err != nil || !at.Equal(want[2].Time) {
					t.Fatalf("%s: last reading at %v, %v", when, at, err)
				}
				// d1's one reading is not taken for dmax's or back.
				if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "d1"}); err != nil || len(got) != 1 || got[0].Seq != 1 {
					t.Fatalf("%s: d1: %+v, %v", when, got, err)
				}
			}
			check("appended")
			db.stopMerger()
			if _, err := db.mergeStaged(ctx, 0); err != nil {
				t.Fatal(err)
			}
			check("merged")
			if n, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "dmax", Since: t0.Add(time.Second)}, 1); err != nil || n != 1 {
				t.Fatalf("deleted %d, %v", n, err)
			}
			if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dmax"}); err != nil || !sameReadings(got, []store.Reading{want[0], want[2]}) {
				t.Fatalf("after deleting one: %+v, %v", got, err)
			}
			if n, err := db.PurgeReadings(ctx, store.Purge{DeviceID: "dmax"}, 0); err != nil || n != 2 {
				t.Fatalf("purged %d, %v", n, err)
			}
		})
	}
}

// One device past MaxDeviceKey in a batch (the ingest batcher commits
// many devices' readings together) has its readings refused, each with a
// *KeyRangeError naming it; every other reading of the batch is stored
// and read back, what was stored before is untouched, and the refused
// device is given no key. Large batches (clustered, many readings to an
// INSERT) and small ones (staged) alike.
func TestAppendKeyRangeRefusesOnlyThatDevice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stageBelow int
		size       int // readings of the normal devices per batch
	}{
		{"clustered", 0, 300},
		{"staged", 1 << 30, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			db := openTemp(t)
			db.stageBelow = tc.stageBelow
			reading := func(dev string, i int) store.Reading {
				return store.Reading{DeviceID: dev, Stream: "s", Time: t0.Add(time.Duration(i) * time.Millisecond),
					Payload: fmt.Appendf(nil, `{"i":%d}`, i), ManifestVersion: 1}
			}
			before := []store.Reading{reading("d1", 0), reading("d2", 0)}
			if err := db.AppendReadings(ctx, before); err != nil {
				t.Fatal(err)
			}
			// The next device given a key gets MaxDeviceKey+1.
			if _, err := db.writer.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'reading_devices'`, MaxDeviceKey); err != nil {
				t.Fatal(err)
			}
			want := map[string][]store.Reading{"d1": before[:1:1], "d2": before[1:]}
			for round := range 2 {
				// dover's readings among d1's and d2's, first and last too.
				var batch []store.Reading
				var bad []int
				for i := range tc.size {
					if i%5 == 0 || i == tc.size-1 {
						bad = append(bad, len(batch))
						batch = append(batch, reading("dover", i))
					}
					batch = append(batch, reading(fmt.Sprint("d", 1+i%2), 1000*(round+1)+i))
				}
				err := db.AppendReadings(ctx, batch)
				var re *store.RefusedReadingsError
				if !errors.As(err, &re) {
					t.Fatalf("round %d: append: %v, want a RefusedReadingsError", round, err)
				}
				var got []int
				for _, r := range re.Refused {
					got = append(got, r.Index)
					var kr *KeyRangeError
					if !errors.As(r.Err, &kr) || kr.DeviceID != "dover" || kr.DeviceKey <= MaxDeviceKey {
						t.Fatalf("round %d: reading %d refused with %v, want a KeyRangeError for dover's key", round, r.Index, r.Err)
					}
					if msg := r.Err.Error(); !strings.Contains(msg, `device "dover"`) || !strings.Contains(msg, "device key") {
						t.Errorf("round %d: error %q: want it to name the device and its key", round, msg)
					}
				}
				if !slices.Equal(got, bad) {
					t.Fatalf("round %d: refused %v, want %v", round, got, bad)
				}
				var seq int64
				for i, r := range batch {
					if slices.Contains(bad, i) {
						if r.Seq != 0 {
							t.Errorf("round %d: refused reading %d got seq %d", round, i, r.Seq)
						}
						continue
					}
					// The stored take consecutive seqs in batch order.
					if seq != 0 && r.Seq != seq+1 {
						t.Errorf("round %d: reading %d got seq %d after %d", round, i, r.Seq, seq)
					}
					seq = r.Seq
					want[r.DeviceID] = append(want[r.DeviceID], r)
				}
				for _, dev := range []string{"d1", "d2"} {
					got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev, Limit: MaxReadingLimit})
					if err != nil || !sameReadings(got, want[dev]) {
						t.Fatalf("round %d: %s: %d readings (%v), want %d", round, dev, len(got), err, len(want[dev]))
					}
				}
				if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: "dover"}); err != nil || len(got) != 0 {
					t.Fatalf("round %d: dover: %d readings (%v), want none", round, len(got), err)
				}
				var keys int
				if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM reading_devices WHERE device_id = 'dover'`).Scan(&keys); err != nil || keys != 0 {
					t.Fatalf("round %d: %d keys for the refused device (%v)", round, keys, err)
				}
				if _, ok := db.dkeys.Load("dover"); ok {
					t.Fatalf("round %d: the refused device's key is remembered", round)
				}
			}
			db.stopMerger()
			if _, err := db.mergeStaged(ctx, 0); err != nil {
				t.Fatal(err)
			}
			for _, dev := range []string{"d1", "d2"} {
				if got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev, Limit: MaxReadingLimit}); err != nil || !sameReadings(got, want[dev]) {
					t.Fatalf("merged: %s: %d readings (%v), want %d", dev, len(got), err, len(want[dev]))
				}
			}
		})
	}
}

// A device that would be given a key past MaxDeviceKey adds no write to
// the batches it joins (its key is not made, nor made and deleted: the
// pages of reading_devices and sqlite_sequence stay out of the WAL, and
// the key in its refusal stays the same); a batch of which every reading
// is refused writes nothing and commits nothing, also when a key in range
// was made for a device whose reading then found the seqs used up (that
// key is not kept).
func TestAppendRefusedDeviceWritesNothing(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "candor.db")
	db := openPath(t, path)
	db.stopMerger()
	db.stopCheckpointer() // the WAL only grows, frame by frame
	reading := func(dev string, i int) store.Reading {
		return store.Reading{DeviceID: dev, Stream: "s", Time: t0.Add(time.Duration(i) * time.Millisecond), Payload: []byte(`{}`)}
	}
	if err := db.AppendReadings(ctx, []store.Reading{reading("d1", 0), reading("d2", 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'reading_devices'`, MaxDeviceKey); err != nil {
		t.Fatal(err)
	}
	// The device keys' pages: both tables (and reading_devices' index)
	// are one page each here.
	keyPages := map[uint32]bool{}
	rows, err := db.readers.QueryContext(ctx, `SELECT rootpage FROM sqlite_schema WHERE tbl_name IN ('reading_devices', 'sqlite_sequence') AND rootpage > 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p uint32
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		keyPages[p] = true
	}
	if err := rows.Close(); err != nil || len(keyPages) < 2 {
		t.Fatalf("pages of the device keys: %v (%v)", keyPages, err)
	}
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	lastKey := func() int64 {
		t.Helper()
		var k int64
		if err := db.readers.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'reading_devices'`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	// refusedAt appends rs and checks that the readings at bad, and only
	// those, were refused for dover's key past the range.
	refusedAt := func(rs []store.Reading, bad []int) {
		t.Helper()
		err := db.AppendReadings(ctx, rs)
		var re *store.RefusedReadingsError
		if !errors.As(err, &re) || len(re.Refused) != len(bad) {
			t.Fatalf("append: %v, want readings %v refused", err, bad)
		}
		for k, r := range re.Refused {
			var kr *KeyRangeError
			if r.Index != bad[k] || !errors.As(r.Err, &kr) || kr.DeviceKey != MaxDeviceKey+1 {
				t.Fatalf("refused reading %d: %v, want reading %d refused for key %d", r.Index, r.Err, bad[k], MaxDeviceKey+1)
			}
		}
	}
	for round := range 3 {
		// Joining a batch of others: only their rows are written.
		from := walSize()
		refusedAt([]store.Reading{reading("d1", 10*round+1), reading("dover", 0), reading("d2", 10*round+1)}, []int{1})
		for _, p := range walPages(t, path, from) {
			if keyPages[p] {
				t.Fatalf("round %d: the batch wrote page %d of the device keys (pages %v)", round, p, walPages(t, path, from))
			}
		}
		// Alone: nothing written at all.
		from = walSize()
		refusedAt([]store.Reading{reading("dover", 1), reading("dover", 2)}, []int{0, 1})
		if to := walSize(); to != from {
			t.Fatalf("round %d: a batch of refused readings wrote %d bytes to the WAL", round, to-from)
		}
		if k := lastKey(); k != MaxDeviceKey {
			t.Fatalf("round %d: last device key %d, want %d (none made)", round, k, MaxDeviceKey)
		}
	}

	// The seqs used up: a new device's key in range is made, then its
	// reading refused with every other; the transaction is rolled back.
	if _, err := db.writer.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = 5 WHERE name = 'reading_devices'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(ctx, `UPDATE reading_seq SET hi = ?`, MaxReadingSeq); err != nil {
		t.Fatal(err)
	}
	db.keyMu.Lock()
	db.seq.next = 0 // written behind the store's back (see TestAppendKeyRange)
	db.keyMu.Unlock()
	from := walSize()
	err = db.AppendReadings(ctx, []store.Reading{reading("dnew", 0), reading("d1", 100)})
	var re *store.RefusedReadingsError
	if !errors.As(err, &re) || len(re.Refused) != 2 {
		t.Fatalf("append past the last seq: %v, want both readings refused", err)
	}
	if to := walSize(); to != from {
		t.Fatalf("a batch past the last seq wrote %d bytes to the WAL", to-from)
	}
	if k := lastKey(); k != 5 {
		t.Fatalf("last device key %d, want 5: the key made in the refused batch was kept", k)
	}
	if _, ok := db.dkeys.Load("dnew"); ok {
		t.Fatal("the key made in the refused batch is remembered")
	}
}

// sameReadings reports whether got and want hold the same readings in
// the same order.
func sameReadings(got, want []store.Reading) bool {
	return slices.EqualFunc(got, want, func(a, b store.Reading) bool {
		return a.Seq == b.Seq && a.DeviceID == b.DeviceID && a.Stream == b.Stream && a.Time.Equal(b.Time) &&
			string(a.Payload) == string(b.Payload) && a.ManifestVersion == b.ManifestVersion
	})
}

// migrateTo opens a bare connection to a new file at path and brings it
// to the schema version before the migration named next.
func migrateTo(t *testing.T, path, next string) *sql.DB {
	t.Helper()
	all := migrations
	at := slices.IndexFunc(all, func(m migration) bool { return m.name == next })
	if at < 0 {
		t.Fatalf("no migration named %q", next)
	}
	// Open prepares statements on tables of the current schema, which
	// this file does not have yet.
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	migrations = all[:at]
	err = migrate(context.Background(), old)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	return old
}

const packedMigration = "readings keyed by packed (device key, seq)"

// A file written with the clustered WITHOUT ROWID table keeps every
// reading (seq, device, stream, time, payload, manifest version) and its
// staged readings, reads the same through every query, and hands out
// seqs after the old high-water mark.
func TestMigrateReadingsPacked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "candor.db")
	ctx := context.Background()
	old := migrateTo(t, path, packedMigration)
	// Three devices (key 2 left unused, as after a purge), readings in an
	// uneven pattern, a seq gap, times not in seq order, a staged tail.
	for _, stmt := range []string{
		`INSERT INTO reading_devices (dkey, device_id) VALUES (1, 'd1'), (3, 'd3'), (4, 'd4')`,
		`UPDATE reading_seq SET hi = 400`,
	} {
		if _, err := old.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	devs := map[int64]string{1: "d1", 3: "d3", 4: "d4"}
	keys := []int64{1, 3, 4}
	want := map[string][]store.Reading{}
	var dump []string // every stored row, in (dkey, seq) order
	for seq := int64(1); seq <= 420; seq++ {
		if seq%37 == 0 {
			continue // deleted
		}
		k := keys[(seq*seq/7)%3]
		r := store.Reading{Seq: seq, DeviceID: devs[k], Stream: fmt.Sprint("s", seq%3),
			Time: decTime(1_000_000 + (seq*7919)%1000), Payload: []byte(fmt.Sprint("p", seq)), ManifestVersion: int(seq % 4)}
		table := "readings"
		if seq > 400 {
			table = "readings_stage" // staged, not yet merged
		}
		if _, err := old.ExecContext(ctx, `INSERT INTO `+table+` (dkey, seq, stream, ts, manifest_version, payload) VALUES (?, ?, ?, ?, ?, ?)`,
			k, r.Seq, r.Stream, 1_000_000+(seq*7919)%1000, r.ManifestVersion, r.Payload); err != nil {
			t.Fatal(err)
		}
		want[r.DeviceID] = append(want[r.DeviceID], r)
	}
	rows, err := old.QueryContext(ctx, `SELECT dkey, seq, stream, ts, manifest_version, payload FROM readings ORDER BY dkey, seq`)
	if err != nil {
		t.Fatal(err)
	}
	dump = dumpRows(t, rows)
	// Spare stage rows a build from before the spares merged (after a
	// rollback from one with them): blank rows of device key 0 among the
	// readings' seqs, which the migration leaves behind.
	if _, err := old.ExecContext(ctx, `INSERT INTO readings (dkey, seq, stream, ts, manifest_version, payload)
		VALUES (0, 37, '', 0, 0, zeroblob(90)), (0, 74, '', 0, 0, zeroblob(90))`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	db := openPath(t, path)
	rows, err = db.readers.QueryContext(ctx, `SELECT id >> `+sqlSeqBits+`, id & `+sqlMaxSeq+`, stream, ts, manifest_version, payload FROM readings ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpRows(t, rows); !slices.Equal(got, dump) {
		t.Fatalf("packed table: %d rows, want the clustered table's %d:\n%v\nwant\n%v", len(got), len(dump), got, dump)
	}
	for _, dev := range []string{"d1", "d3", "d4"} {
		w := want[dev]
		got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev})
		if err != nil || !sameReadings(got, w) {
			t.Fatalf("%s after migration: %d readings (%v), want %d", dev, len(got), err, len(w))
		}
		if n, err := db.CountReadings(ctx, dev); err != nil || n != int64(len(w)) {
			t.Fatalf("%s: count %d, %v; want %d", dev, n, err, len(w))
		}
		// A page by cursor and one stream in a time window.
		got, err = db.Readings(ctx, store.ReadingQuery{DeviceID: dev, AfterSeq: w[10].Seq, Limit: 20})
		if err != nil || !sameReadings(got, w[11:31]) {
			t.Fatalf("%s after seq %d: %+v, %v", dev, w[10].Seq, got, err)
		}
		since, until := decTime(1_000_200), decTime(1_000_600)
		var ws []store.Reading
		for _, r := range w {
			if r.Stream == "s1" && !r.Time.Before(since) && r.Time.Before(until) {
				ws = append(ws, r)
			}
		}
		got, err = db.Readings(ctx, store.ReadingQuery{DeviceID: dev, Stream: "s1", Since: since, Until: until})
		if err != nil || !sameReadings(got, ws) {
			t.Fatalf("%s, s1 in a window: %d readings (%v), want %d", dev, len(got), err, len(ws))
		}
	}
	var ddl string
	if err := db.readers.QueryRowContext(ctx, `SELECT sql FROM sqlite_schema WHERE name = 'readings'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ddl, "WITHOUT ROWID") || !strings.Contains(ddl, "id               INTEGER PRIMARY KEY") {
		t.Errorf("readings after migration: %s", ddl)
	}
	var leftover int
	if err := db.readers.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'readings_packed'`).Scan(&leftover); err != nil || leftover != 0 {
		t.Errorf("%d objects of the migration remain (%v)", leftover, err)
	}
	rs := []store.Reading{{DeviceID: "d3", Stream: "a", Time: t0}}
	if err := db.AppendReadings(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if rs[0].Seq != 421 {
		t.Errorf("new seq %d, want 421 (420 was staged before the migration)", rs[0].Seq)
	}
}

// A file whose readings would not fit the packed key is refused before
// anything is copied: it stays at the previous version, readings intact.
func TestMigrateReadingsPackedRefusesOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stmts []string
		want  KeyRangeError
	}{
		{"device key", []string{`INSERT INTO readings (dkey, seq, stream, ts, payload) VALUES (` + fmt.Sprint(MaxDeviceKey+1) + `, 5, 's', 1, x'')`},
			KeyRangeError{DeviceKey: MaxDeviceKey + 1, Seq: 1}}, // seq: the high-water mark
		{"seq", []string{`INSERT INTO readings (dkey, seq, stream, ts, payload) VALUES (1, 5, 's', 1, x'')`,
			`UPDATE reading_seq SET hi = ` + fmt.Sprint(int64(MaxReadingSeq)+1)},
			KeyRangeError{DeviceKey: 1, Seq: MaxReadingSeq + 1}},
		{"staged seq", []string{`INSERT INTO readings_stage (dkey, seq, stream, ts, payload) VALUES (1, ` + fmt.Sprint(int64(MaxReadingSeq)+2) + `, 's', 1, x'')`},
			KeyRangeError{DeviceKey: 1, Seq: MaxReadingSeq + 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "candor.db")
			ctx := context.Background()
			old := migrateTo(t, path, packedMigration)
			var v int
			for _, s := range tc.stmts {
				if _, err := old.ExecContext(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := old.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			old.Close()
			_, err := Open(ctx, path)
			var kr *KeyRangeError
			if !errors.As(err, &kr) || *kr != tc.want {
				t.Fatalf("open: %v, want a KeyRangeError %+v", err, tc.want)
			}
			old, err = sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			var after, n int
			if err := old.QueryRowContext(ctx, `SELECT (SELECT user_version FROM pragma_user_version),
				(SELECT count(*) FROM readings) + (SELECT count(*) FROM readings_stage)`).Scan(&after, &n); err != nil {
				t.Fatal(err)
			}
			if after != v || n != 1 {
				t.Fatalf("file at version %d with %d readings, want %d and 1", after, n, v)
			}
		})
	}
}

func dumpRows(t *testing.T, rows *sql.Rows) []string {
	t.Helper()
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k, seq, ts, mv int64
		var stream string
		var p []byte
		if err := rows.Scan(&k, &seq, &stream, &ts, &mv, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d/%d %s %d v%d %q", k, seq, stream, ts, mv, p))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
