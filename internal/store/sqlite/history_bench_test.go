package sqlite

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// BenchmarkAppendHistory measures how ingest holds up as history grows
// (issue #19): with 100k or 1M readings already stored, spread over 100
// devices, it appends batches of 1000 (full speed: rows/s) or of 10 (the
// size of a commit when paced at 10,000 msg/s: bytes written per reading).
// Payloads are 140 bytes, about a sealed 100-byte reading. Run it with a
// fixed count, e.g. -benchtime=100x.
//
// wB/row is what the process wrote with write(2) (the WAL, plus any
// checkpoint into the main file) per appended reading, from /proc/self/io.
func BenchmarkAppendHistory(b *testing.B) {
	for _, stored := range []int{100_000, 1_000_000} {
		for _, batch := range []int{1000, 10} {
			b.Run(fmt.Sprintf("stored=%d/batch=%d", stored, batch), func(b *testing.B) {
				benchAppendHistory(b, stored, batch)
			})
		}
	}
}

const historyDevices = 100

func historyBatch(n, start int, ts time.Time, payload []byte) []store.Reading {
	rs := make([]store.Reading, n)
	for i := range rs {
		rs[i] = store.Reading{
			DeviceID: fmt.Sprintf("dev_%012d", (start+i)%historyDevices),
			Stream:   "telemetry",
			Time:     ts.Add(time.Duration(start+i) * time.Microsecond),
			Payload:  payload,
		}
	}
	return rs
}

func benchAppendHistory(b *testing.B, stored, batch int) {
	db := openTemp(b)
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 140))
	for n := 0; n < stored; n += 5000 {
		if err := db.AppendReadings(ctx, historyBatch(5000, n, t0, payload)); err != nil {
			b.Fatal(err)
		}
	}
	w0, c0 := procWchar(b), processCPU()
	rows := stored
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := db.AppendReadings(ctx, historyBatch(batch, rows, t0, payload)); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		rows += batch
	}
	b.StopTimer()
	appended := float64(rows - stored)
	b.ReportMetric(appended/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(procWchar(b)-w0)/appended, "wB/row")
	// The process's CPU, not the loop's wall time: work the store does
	// beside the appends (the checkpointer) counts too.
	b.ReportMetric(float64((processCPU()-c0).Microseconds())/appended, "cpu-µs/row")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
}

// procWchar is the bytes this process has passed to write(2) so far.
func procWchar(b *testing.B) int64 {
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

// processCPU is the user and system time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadingsHistory measures GET readings' store query (one page of
// 100 of one device's newest readings, by AfterSeq) with 100k or 1M
// readings stored over 100 devices; with staged=N, the newest N of them
// are still in the staging table (paced commits of 10, not yet merged).
func BenchmarkReadingsHistory(b *testing.B) {
	for _, stored := range []int{100_000, 1_000_000} {
		for _, staged := range []int{0, mergeChunk} {
			name := fmt.Sprintf("stored=%d", stored)
			if staged > 0 {
				name += fmt.Sprintf("/staged=%d", staged)
			}
			b.Run(name, func(b *testing.B) { benchReadingsHistory(b, stored, staged) })
		}
	}
}

func benchReadingsHistory(b *testing.B, stored, staged int) {
	db := openTemp(b)
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 140))
	for n := 0; n < stored-staged; n += 5000 {
		if err := db.AppendReadings(ctx, historyBatch(min(5000, stored-staged-n), n, t0, payload)); err != nil {
			b.Fatal(err)
		}
	}
	db.stopMerger()
	for n := stored - staged; n < stored; n += 10 {
		if err := db.AppendReadings(ctx, historyBatch(10, n, t0, payload)); err != nil {
			b.Fatal(err)
		}
	}
	dev := fmt.Sprintf("dev_%012d", 7)
	after := int64(stored - 100*historyDevices) // the device's last 100 or so
	b.ResetTimer()
	for b.Loop() {
		rs, err := db.Readings(ctx, store.ReadingQuery{DeviceID: dev, AfterSeq: after, Limit: 100})
		if err != nil || len(rs) == 0 {
			b.Fatalf("%d readings, %v", len(rs), err)
		}
	}
}

// BenchmarkReadAllHistory measures the store's side of an export: every
// reading of 100 devices (1M stored, interleaved as ingest writes them),
// read device by device in pages of MaxReadingLimit by AfterSeq, as the
// export does. Run it with -benchtime=1x.
func BenchmarkReadAllHistory(b *testing.B) {
	const stored = 1_000_000
	db := openTemp(b)
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 140))
	for n := 0; n < stored; n += 5000 {
		if err := db.AppendReadings(ctx, historyBatch(5000, n, t0, payload)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	read := 0
	for b.Loop() {
		for d := range historyDevices {
			dev := fmt.Sprintf("dev_%012d", d)
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
