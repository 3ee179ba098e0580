package export_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/export"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

// BenchmarkServiceExport is a whole export through the export service, as
// the API runs it: real SQLite store, vault (every reading opened), the
// transparency log, the archive written to a counting discard. One meter
// holds CANDOR_BENCH_EXPORT_READINGS readings (default 1,000,000), sealed
// as ingest seals them. Reports readings/s, the peak Go heap in use while
// the export runs, and bytes allocated per reading: constant memory means
// the peak heap does not grow with the reading count.
func BenchmarkServiceExport(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("CANDOR_BENCH_EXPORT_READINGS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	r := newServiceRig(b)
	fill(b, r, r.alexMeter, n)
	svc := export.NewService(r.config(nil))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
				}
			}
		}()
		start := time.Now()
		p, err := svc.Prepare(ctx, r.alex)
		if err != nil {
			b.Fatal(err)
		}
		var w countingWriter
		if err := p.Write(ctx, &w, time.Now()); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		close(stop)
		wg.Wait()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		total := float64(n + 5)
		b.ReportMetric(total/d.Seconds(), "readings/s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/total, "alloc-B/reading")
		b.ReportMetric(float64(w.n)/total, "out-B/reading")
	}
}

// fill appends n sealed readings of d, in batches of 10,000.
func fill(b *testing.B, r *serviceRig, d store.Device, n int) {
	b.Helper()
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Duration(n+10) * time.Second)
	var aad []byte
	rs := make([]store.Reading, 0, 10_000)
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Second)
		aad = vault.AppendReadingAAD(aad[:0], d.ID, "power", ts)
		sealed, err := r.vault.Seal(r.alex.ID, fmt.Appendf(nil, `{"watts": %d}`, i%5000), aad)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, store.Reading{DeviceID: d.ID, Stream: "power", Time: ts, ManifestVersion: 1, Payload: sealed})
		if len(rs) == cap(rs) || i == n-1 {
			if err := r.st.AppendReadings(ctx, rs); err != nil {
				b.Fatal(err)
			}
			rs = rs[:0]
		}
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
