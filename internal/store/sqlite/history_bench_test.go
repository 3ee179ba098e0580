package sqlite

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// The history benchmarks measure how ingest and GET readings hold up as
// history grows (issue #19: at 10M stored readings within 10% of 100k).
// They only run with -bench. Stored sizes come from
// CANDOR_BENCH_HISTORY (comma-separated, default "100000,1000000"); the
// 10M run is
//
//	CANDOR_BENCH_HISTORY=100000,1000000,10000000 go test -run '^$' \
//	    -bench 'AppendHistory|ReadingsHistory' -benchtime 100x ./internal/store/sqlite/
//
// Filling 10M readings through AppendReadings takes minutes on a small
// machine, so each filled database is built once and kept in a cache
// directory (CANDOR_BENCH_CACHE, default <os.TempDir>/candor-bench-history),
// under a name carrying the schema version and the fill's layout: a
// build with another schema fills afresh. Each size is grown from a copy
// of the next smaller one. Benchmarks that write work on a copy.
//
// The fill: reading i is device i%100's, on stream i/100%4, one second
// after reading i-1 (so each device reports every 100 s and 10M readings
// span 116 days), with a 140-byte payload (a sealed 100-byte reading),
// appended in batches of 10,000 interleaved as ingest writes them.

const (
	historyDevices = 100
	historyStreams = 4
	// historyEvery is the time between two consecutive readings of the
	// fill (of any device).
	historyEvery = time.Second
	// historyLayout names the fill's layout in the cache file name:
	// change it with anything above.
	historyLayout = "d100s4p140e1s"
)

var historyPayload = []byte(strings.Repeat("x", 140))

func historyDevice(d int) string { return fmt.Sprintf("dev_%012d", d) }

func historyStream(s int) string { return "stream" + strconv.Itoa(s) }

// historyTime is the time of the fill's reading i.
func historyTime(i int) time.Time { return t0.Add(time.Duration(i) * historyEvery) }

// historyBatch is readings start … start+n-1 of the fill's sequence.
func historyBatch(n, start int) []store.Reading {
	rs := make([]store.Reading, n)
	for k := range rs {
		i := start + k
		rs[k] = store.Reading{
			DeviceID: historyDevice(i % historyDevices),
			Stream:   historyStream(i / historyDevices % historyStreams),
			Time:     historyTime(i),
			Payload:  historyPayload,
		}
	}
	return rs
}

// historySizes are the stored sizes to measure.
func historySizes(b *testing.B) []int {
	v := os.Getenv("CANDOR_BENCH_HISTORY")
	if v == "" {
		return []int{100_000, 1_000_000}
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("CANDOR_BENCH_HISTORY: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out
}

// historyFile returns the path of a cached, checkpointed database holding
// the fill's first stored readings, building it if needed. Nothing may
// write to it: copy it first (historyCopy).
func historyFile(b *testing.B, stored int) string {
	b.Helper()
	dir := os.Getenv("CANDOR_BENCH_CACHE")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "candor-bench-history")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	name := func(n int) string {
		return filepath.Join(dir, fmt.Sprintf("readings-v%d-%s-%d.db", schemaVersion(), historyLayout, n))
	}
	path := name(stored)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	// Start from the largest smaller size already cached.
	from := 0
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		var n int
		_, err := fmt.Sscanf(e.Name(), fmt.Sprintf("readings-v%d-%s-%%d.db", schemaVersion(), historyLayout), &n)
		if err == nil && n < stored && n > from && filepath.Join(dir, e.Name()) == name(n) {
			from = n
		}
	}
	tmp := path + ".building"
	for _, suf := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(tmp + suf)
	}
	if from > 0 {
		copyFile(b, name(from), tmp)
	}
	ctx := context.Background()
	db, err := Open(ctx, tmp)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 10_000
	start, lap := time.Now(), time.Now()
	for n := from; n < stored; n += batch {
		if err := db.AppendReadings(ctx, historyBatch(min(batch, stored-n), n)); err != nil {
			db.Close()
			b.Fatal(err)
		}
		// The fill's own rate, per million: the 10k-batch ingest rate
		// at each depth.
		if done := n + batch; done%1_000_000 == 0 {
			b.Logf("fill: %d stored, last million at %.0f rows/s", done, 1e6/time.Since(lap).Seconds())
			lap = time.Now()
		}
	}
	if err := db.Close(); err != nil { // checkpoints the WAL into the file
		b.Fatal(err)
	}
	b.Logf("fill: %d → %d readings in %s", from, stored, time.Since(start).Round(time.Second))
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// historyCopy returns a fresh copy of the cached database of stored
// readings, synced, so the copy's write-back does not land in the
// measured commits.
func historyCopy(b *testing.B, stored int) string {
	b.Helper()
	dst := filepath.Join(b.TempDir(), "candor.db")
	copyFile(b, historyFile(b, stored), dst)
	return dst
}

func copyFile(b *testing.B, src, dst string) {
	b.Helper()
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		b.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendHistory measures synced appends on top of a stored
// history: batches of 10 (a commit when paced at 10,000 msg/s), 1,000
// and 4,000 (commits at full speed), spread over the fill's 100 devices
// and 4 streams, continuing its sequence. Run it with a fixed count, e.g.
// -benchtime=100x.
//
// wB/row is what the process wrote with write(2) (the WAL, plus any
// checkpoint into the main file) per appended reading, from /proc/self/io;
// walMiB the size of the WAL file at the end.
func BenchmarkAppendHistory(b *testing.B) {
	for _, stored := range historySizes(b) {
		for _, batch := range []int{10, 1000, 4000} {
			b.Run(fmt.Sprintf("stored=%d/batch=%d", stored, batch), func(b *testing.B) {
				benchAppendHistory(b, stored, batch)
			})
		}
	}
}

func benchAppendHistory(b *testing.B, stored, batch int) {
	path := historyCopy(b, stored)
	db := openPath(b, path)
	// CANDOR_BENCH_MERGE_STEP sets the readings per merge step, to
	// compare step sizes (stage.go).
	if v := os.Getenv("CANDOR_BENCH_MERGE_STEP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("CANDOR_BENCH_MERGE_STEP: %q is not a positive number", v)
		}
		db.mergeStepRows.Store(int64(n))
	}
	ctx := context.Background()
	// One reading of every device first: device keys into the cache,
	// the b-tree's pages the appends touch into SQLite's cache, as in a
	// running hub.
	warm := max(batch, historyDevices)
	if err := db.AppendReadings(ctx, historyBatch(warm, stored)); err != nil {
		b.Fatal(err)
	}
	rows := stored + warm
	// The warm-up's staged readings leave the stage before the count
	// starts, so the pages below are the measured batches' alone.
	if _, err := db.mergeStaged(ctx, 0); err != nil {
		b.Fatal(err)
	}
	db.mergeSteps.take()
	w0, cpu0 := procWchar(b), procCPU(b)
	p0 := pager(b, db.writer)
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		rs := historyBatch(batch, rows)
		start := time.Now()
		if err := db.AppendReadings(ctx, rs); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		rows += batch
	}
	b.StopTimer()
	appended := float64(rows - stored - warm)
	// Pages per reading on the writer: the batches' own and, for staged
	// batches, their merge into the clustered table (the merger's passes
	// during the run, and the rest finished here, as the merger would
	// have done a little later), so every reading is counted once on
	// either path. Counts, unlike times, do not move with the machine's
	// load.
	db.stopMerger()
	if _, err := db.mergeStaged(ctx, 0); err != nil {
		b.Fatal(err)
	}
	p := pager(b, db.writer).sub(p0)
	b.ReportMetric(float64(p.visits())/appended, "pages/row")
	b.ReportMetric(float64(p.miss)/appended, "pagemiss/row")
	b.ReportMetric(float64(p.write)/appended, "pagewrites/row")
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	b.ReportMetric(appended/sum.Seconds(), "rows/s")
	b.ReportMetric(float64(procWchar(b)-w0)/appended, "wB/row")
	b.ReportMetric(float64(procCPU(b)-cpu0)/float64(time.Microsecond)/appended, "cpu-µs/row")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
	// A commit waits for a merge only now and then (once per merge at
	// most, one commit at a time here), so the tail shows it.
	b.ReportMetric(float64(took[len(took)*999/1000])/1e6, "p999-ms")
	b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
	reportMergeSteps(b, db)
	// The WAL file keeps the size of its longest run without a restart.
	if fi, err := os.Stat(path + "-wal"); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "walMiB")
	}
}

// procWchar is the bytes this process has passed to write(2) so far.
func procWchar(b testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// historyQueries are the GET readings queries measured: each takes the
// device (the iterations go round the 100) and the stored size.
var historyQueries = []struct {
	name string
	q    func(dev, stored int) store.ReadingQuery
}{
	// The first page, as GET readings without parameters.
	{"oldest", func(dev, stored int) store.ReadingQuery {
		return store.ReadingQuery{DeviceID: historyDevice(dev), Limit: 100}
	}},
	// The device's newest 100 or so by cursor (after=), as a client
	// polling for what is new does.
	{"after", func(dev, stored int) store.ReadingQuery {
		return store.ReadingQuery{DeviceID: historyDevice(dev), AfterSeq: int64(stored - 100*historyDevices), Limit: 100}
	}},
	// One stream's last 6 hours (54 readings), as the device page's
	// Latest asks (stream and since).
	{"latest", func(dev, stored int) store.ReadingQuery {
		return store.ReadingQuery{DeviceID: historyDevice(dev), Stream: historyStream(dev % historyStreams),
			Since: historyTime(stored).Add(-6 * time.Hour), Limit: 1000}
	}},
	// One hour in the middle of the history (36 readings), every stream:
	// since and until.
	// One hour a day ago (36 readings), every stream: since and until
	// at a fixed distance from now.
	{"dayago", func(dev, stored int) store.ReadingQuery {
		at := historyTime(stored).Add(-24 * time.Hour)
		return store.ReadingQuery{DeviceID: historyDevice(dev), Since: at, Until: at.Add(time.Hour), Limit: 1000}
	}},
	{"range", func(dev, stored int) store.ReadingQuery {
		mid := historyTime(stored / 2)
		return store.ReadingQuery{DeviceID: historyDevice(dev), Since: mid, Until: mid.Add(time.Hour), Limit: 1000}
	}},
}

// BenchmarkReadingsHistory measures GET readings' store queries
// (historyQueries) with the fill's readings stored. The database is the
// cached one, opened without writing.
func BenchmarkReadingsHistory(b *testing.B) {
	for _, stored := range historySizes(b) {
		for _, hq := range historyQueries {
			b.Run(fmt.Sprintf("stored=%d/%s", stored, hq.name), func(b *testing.B) {
				db := openPath(b, historyFile(b, stored))
				// One reader, so that one connection's pager counters
				// hold every query's page visits.
				db.readers.SetMaxOpenConns(1)
				ctx := context.Background()
				got := 0
				n := 0
				cpu0 := procCPU(b)
				p0 := pager(b, db.readers)
				for b.Loop() {
					rs, err := db.Readings(ctx, hq.q(n%historyDevices, stored))
					if err != nil || len(rs) == 0 {
						b.Fatalf("%d readings, %v", len(rs), err)
					}
					got += len(rs)
					n++
				}
				b.ReportMetric(float64(got)/float64(n), "readings/op")
				b.ReportMetric(float64(procCPU(b)-cpu0)/float64(time.Microsecond)/float64(n), "cpu-µs/op")
				p := pager(b, db.readers).sub(p0)
				b.ReportMetric(float64(p.visits())/float64(n), "pages/op")
				b.ReportMetric(float64(p.miss)/float64(n), "pagemiss/op")
			})
		}
	}
}

// BenchmarkReadAllHistory measures the store's side of an export: every
// reading of 100 devices (1M stored, interleaved as ingest writes them),
// read device by device in pages of MaxReadingLimit by AfterSeq, as the
// export does. Run it with -benchtime=1x.
func BenchmarkReadAllHistory(b *testing.B) {
	const stored = 1_000_000
	db := openPath(b, historyFile(b, stored))
	ctx := context.Background()
	read := 0
	for b.Loop() {
		for d := range historyDevices {
			dev := historyDevice(d)
			var after int64
			for {
				rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev, AfterSeq: after, Limit: MaxReadingLimit})
				if err != nil {
					b.Fatal(err)
				}
				read += len(rs)
				if len(rs) < MaxReadingLimit {
					break
				}
				after = rs[len(rs)-1].Seq
			}
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "readings/s")
}

// reportMergeSteps reports how long the merge transactions (steps) of
// the run held the writer: their count and p50 / p90 / max.
func reportMergeSteps(b *testing.B, db *DB) {
	d := db.mergeSteps.take()
	b.ReportMetric(float64(len(d)), "merges")
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2])/1e6, "merge-p50-ms")
	b.ReportMetric(float64(d[len(d)*9/10])/1e6, "merge-p90-ms")
	b.ReportMetric(float64(d[len(d)-1])/1e6, "merge-max-ms")
}
