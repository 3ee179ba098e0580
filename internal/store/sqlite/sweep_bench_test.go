package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// BenchmarkRetentionSweep measures the store's part of one retention
// sweep (internal/retention: Job.SweepAt) over 18,000 devices × 4
// streams × 3 readings, as on the idle hub of issue #19: "per-stream"
// is one DeleteReadings per device and stream (the sweep before
// OldestReadings, and still the path for a device that may have
// something to delete), "oldest" reads OldestReadings once and deletes
// only for the devices it cannot rule out. "old%" of the devices hold a
// reading past the cutoff. cpu-us/device is the process's CPU time per
// device and sweep.
//
// The second shape, 2,000 devices × 4 streams × 63 readings, is the most
// OldestReadings reads per device: 252 readings after the device's newest
// mark (none yet), read whole.
func BenchmarkRetentionSweep(b *testing.B) {
	const streams = 4
	for _, shape := range []struct{ devs, per, old int }{{18000, 3, 0}, {18000, 3, 1}, {2000, 63, 0}} {
		devs, per, old := shape.devs, shape.per, shape.old
		db := openPath(b, filepath.Join(b.TempDir(), "candor.db"))
		now := t0.Add(30 * 24 * time.Hour)
		batch := make([]store.Reading, 0, 4096)
		flush := func() {
			if err := db.AppendReadings(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
		for d := range devs {
			for s := range streams {
				for k := range per {
					at := now.Add(-time.Duration(1+k) * time.Minute)
					batch = append(batch, store.Reading{DeviceID: fmt.Sprintf("dev-%05d", d), Stream: fmt.Sprintf("s%d", s),
						Time: at, Payload: []byte(`{"v":1}`), ManifestVersion: 1})
				}
			}
			if len(batch) >= 4000 {
				flush()
			}
		}
		flush()
		cutoff := now.Add(-24 * time.Hour)
		// Past-retention readings: re-added before each sweep.
		expired := func() {
			for d := 0; d < devs*old/100; d++ {
				batch = append(batch, store.Reading{DeviceID: fmt.Sprintf("dev-%05d", d*100/max(old, 1)), Stream: "s1",
					Time: cutoff.Add(-time.Hour), Payload: []byte(`{"v":1}`), ManifestVersion: 1})
			}
			if len(batch) > 0 {
				flush()
			}
		}
		del := func(id string) int64 {
			var n int64
			for s := range streams {
				k, err := db.DeleteReadings(b.Context(), store.ReadingQuery{DeviceID: id, Stream: fmt.Sprintf("s%d", s), Until: cutoff}, 5000)
				if err != nil {
					b.Fatal(err)
				}
				n += k
			}
			return n
		}
		want := int64(devs * old / 100)
		for _, mode := range []string{"per-stream", "oldest"} {
			b.Run(fmt.Sprintf("devices=%d/readings=%d/old=%d%%/%s", devs, devs*streams*per, old, mode), func(b *testing.B) {
				var cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					expired()
					b.StartTimer()
					c0 := procCPU(b)
					var n int64
					var oldest map[string]time.Time
					if mode == "oldest" {
						var err error
						if oldest, err = db.OldestReadings(b.Context()); err != nil {
							b.Fatal(err)
						}
					}
					for d := range devs {
						id := fmt.Sprintf("dev-%05d", d)
						if oldest != nil {
							if t, ok := oldest[id]; !ok || !t.IsZero() && !t.Before(cutoff) {
								continue
							}
						}
						n += del(id)
					}
					cpu += procCPU(b) - c0
					if n != want {
						b.Fatalf("deleted %d readings, want %d", n, want)
					}
				}
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*devs), "cpu-us/device")
			})
		}
		db.Close()
	}
}
