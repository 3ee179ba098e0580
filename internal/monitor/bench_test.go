package monitor

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fill makes n devices, each with streams streams and one connection,
// as a hub with n devices would after a few minutes.
func fill(m *Monitor, n, streams int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev_%06d", i)
		m.Connect(ids[i], ids[i], addrA)
		for s := range streams {
			m.Reading(Reading{Device: ids[i], Type: "thermostat", Stream: fmt.Sprintf("stream_%d", s), Size: 40, PerMinute: 60, MaxBytes: 256})
		}
	}
	return ids
}

// heapPerDevice measures the monitor's heap per device at 10,000 devices.
func heapPerDevice(t testing.TB, streams int) float64 {
	const n = 10000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, _ := newTestMonitor(t, Config{})
	ids := fill(m, n, streams)
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The ids belong to the caller (the broker holds them anyway), so
	// they are not the monitor's cost.
	idBytes := 0
	for _, id := range ids {
		idBytes += len(id) + 16
	}
	runtime.KeepAlive(m)
	runtime.KeepAlive(ids)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc) - float64(idBytes)) / n
}

// The state per device stays within 2 KiB even for a device using every
// stream slot, whatever it sends: the tables are fixed in size.
func TestStatePerDeviceBounded(t *testing.T) {
	for _, streams := range []int{1, 3, maxStreams, 50} {
		t.Run(fmt.Sprintf("%d streams", streams), func(t *testing.T) {
			if got := heapPerDevice(t, streams); got > 2048 {
				t.Errorf("%.0f bytes per device; want at most 2048", got)
			}
		})
	}
}

func BenchmarkStatePerDevice(b *testing.B) {
	for _, streams := range []int{2, maxStreams} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			var per float64
			for range b.N {
				per = heapPerDevice(b, streams)
			}
			b.ReportMetric(per, "B/device")
		})
	}
}

// BenchmarkReading is the monitor's cost on the ingest path: one reading
// of one of 10,000 devices, from all cores at once.
func BenchmarkReading(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) { benchReading(b, n) })
	}
}

func benchReading(b *testing.B, n int) {
	m, _ := newTestMonitor(b, Config{})
	ids := fill(m, n, 2)
	r := Reading{Type: "thermostat", Stream: "stream_0", Size: 40, PerMinute: 60, MaxBytes: 256}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := r
			r.Device = ids[i%len(ids)]
			m.Reading(r)
			i += 7
		}
	})
}

// BenchmarkReadingAt is the hub's case: ingest passes the time it has
// already read for the stored reading, so the monitor reads no clock.
func BenchmarkReadingAt(b *testing.B) {
	m := New(Config{Now: time.Now})
	ids := fill(m, 10000, 2)
	r := Reading{Type: "thermostat", Stream: "stream_0", Size: 40, PerMinute: 60, MaxBytes: 256, At: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := r
			r.Device = ids[i%len(ids)]
			m.Reading(r)
			i += 7
		}
	})
}

// BenchmarkReadingWallClock is the same with the monitor reading the real
// clock itself (a caller that passes no time).
func BenchmarkReadingWallClock(b *testing.B) {
	m := New(Config{Now: time.Now})
	ids := fill(m, 10000, 2)
	r := Reading{Type: "thermostat", Stream: "stream_0", Size: 40, PerMinute: 60, MaxBytes: 256}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := r
			r.Device = ids[i%len(ids)]
			m.Reading(r)
			i += 7
		}
	})
}

// BenchmarkAdmit is the broker's check on every publish when no device is
// held back, and when some are.
func BenchmarkAdmit(b *testing.B) {
	m, _ := newTestMonitor(b, Config{})
	b.Run("none held", func(b *testing.B) {
		for range b.N {
			m.Admit("dev_000001")
		}
	})
	m.hold(storeQuarantine("dev_000002"), 0)
	b.Run("some held", func(b *testing.B) {
		for range b.N {
			m.Admit("dev_000001")
		}
	})
}
