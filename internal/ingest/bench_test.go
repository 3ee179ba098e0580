package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// benchPayload is a typical 100-byte sensor reading.
var benchPayload = func() []byte {
	const r = `{"temperature_c":21.37,"humidity_pct":48.2,"battery_v":3.71,"rssi_dbm":-67,"seq":1234567}`
	return []byte(r[:len(r)-1] + strings.Repeat(" ", 100-len(r)) + "}")
}()

func init() {
	if len(benchPayload) != 100 {
		panic(fmt.Sprintf("bench payload is %d bytes", len(benchPayload)))
	}
}

func BenchmarkCheck(b *testing.B) {
	p := checkOnly(b, Options{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if err := p.Check("device-001", "telemetry", benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDevices spreads readings over this many device ids.
const benchDevices = 100

var benchDeviceIDs = func() []string {
	ids := make([]string, benchDevices)
	for i := range ids {
		ids[i] = fmt.Sprintf("device-%03d", i)
	}
	return ids
}()

// runSubmit submits b.N readings from parallel goroutines and reports
// readings/s including the final drain (Close), so fire-and-forget
// throughput is what reached the store, not what was queued.
func runSubmit(b *testing.B, st Store, opts Options, wait bool, parallelism int) {
	p := New(st, opts)
	defer p.Close()
	ctx := context.Background()
	var next atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		dev := benchDeviceIDs[next.Add(1)%benchDevices]
		for pb.Next() {
			if err := p.Submit(ctx, dev, "telemetry", benchPayload, wait); err != nil {
				b.Error(err)
				return
			}
		}
	})
	p.Close()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "readings/s")
}

// BenchmarkSubmitNoWait: fire-and-forget (MQTT QoS 0) into the real
// SQLite store; throughput is bounded by commits via backpressure.
func BenchmarkSubmitNoWait(b *testing.B) {
	runSubmit(b, openStore(b), Options{}, false, 1)
}

// BenchmarkSubmitWait: acknowledged readings (QoS 1, HTTP) into the real
// SQLite store. Each submitter waits for its fsync, so throughput comes
// from group commit and grows with the number of concurrent submitters.
func BenchmarkSubmitWait(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("par=%dxGOMAXPROCS", par), func(b *testing.B) {
			runSubmit(b, openStore(b), Options{}, true, par)
		})
	}
}

// BenchmarkBatcherFakeStore isolates the pipeline's own cost (check,
// queueing, batch hand-off, wake-ups) with a store that does nothing.
func BenchmarkBatcherFakeStore(b *testing.B) {
	b.Run("nowait", func(b *testing.B) {
		runSubmit(b, noopStore{}, Options{}, false, 1)
	})
	// With waiting submitters a batch is cut when it is full or after
	// BatchMaxWait; enough submitters to fill 64-row batches keep the
	// timer out of the measurement.
	b.Run("wait", func(b *testing.B) {
		runSubmit(b, noopStore{}, Options{BatchMaxRows: 64}, true, 64)
	})
}
