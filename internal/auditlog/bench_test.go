package auditlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/auditlog/verify"
)

// The 1M-entry log is built once per test binary, only when a benchmark
// asks for it, and removed by TestMain; plain `go test` never builds it.
const bigSize = 1 << 20

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
	bigTime time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

func bigLog(b *testing.B) string {
	b.Helper()
	bigOnce.Do(func() {
		start := time.Now()
		if bigDir, bigErr = os.MkdirTemp("", "auditlog-bench-1m-"); bigErr != nil {
			return
		}
		l, err := Open(context.Background(), bigDir, testKey, Options{Logger: quiet})
		if err != nil {
			bigErr = err
			return
		}
		const chunk = 8192
		evs := make([]Event, chunk)
		for i := 0; i < bigSize; i += chunk {
			for j := range evs {
				evs[j] = event(i + j)
			}
			if _, err := l.AppendBatch(context.Background(), evs); err != nil {
				bigErr = err
				return
			}
		}
		bigErr = l.Close()
		bigTime = time.Since(start)
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigDir
}

// BenchmarkAppend measures durable appends from many goroutines at once
// (each Append waits for its group commit's fsyncs), as the hub's request
// handlers would call it.
func BenchmarkAppend(b *testing.B) {
	for _, par := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("callers=%d", par*2), func(b *testing.B) {
			l := openLog(b, b.TempDir(), Options{})
			defer l.Close()
			var n atomic.Int64
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ev := event(int(n.Add(1)))
					if _, err := l.Append(context.Background(), ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkAppendCPU is the CPU cost of an append (validate, encode, hash,
// frame, tree update, amortised signing), free of fsync waits: 4096
// entries per batch make the per-batch costs negligible.
func BenchmarkAppendCPU(b *testing.B) {
	l := openLog(b, b.TempDir(), Options{})
	defer l.Close()
	const k = 4096
	evs := make([]Event, k)
	for i := range evs {
		evs[i] = event(i)
	}
	cpu := cpuTime()
	for b.Loop() {
		if _, err := l.AppendBatch(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	perEntry := (cpuTime() - cpu).Seconds() / float64(b.N*k)
	b.ReportMetric(perEntry*1e6, "cpu-µs/entry")
	b.ReportMetric(float64(b.N*k)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAppendBatch measures one caller logging 256 events per call
// (e.g. a forwarder logging a batch of readings).
func BenchmarkAppendBatch(b *testing.B) {
	l := openLog(b, b.TempDir(), Options{})
	defer l.Close()
	const k = 256
	evs := make([]Event, k)
	for i := range evs {
		evs[i] = event(i)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.AppendBatch(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*k)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkInclusionProof(b *testing.B) {
	dir := bigLog(b)
	l := openLog(b, dir, Options{Check: CheckTail})
	defer l.Close()
	cp := l.Checkpoint()
	rnd := rand.New(rand.NewPCG(1, 1))
	var bytes, proofs int
	b.ResetTimer()
	for b.Loop() {
		i := rnd.Uint64N(cp.Size)
		p, err := l.InclusionProof(context.Background(), i, cp.Size)
		if err != nil {
			b.Fatal(err)
		}
		bytes += 32 * len(p)
		proofs++
	}
	b.StopTimer()
	// Check one, outside the timing: the proofs are real.
	e, err := l.Entry(context.Background(), 123457)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := l.InclusionProof(context.Background(), 123457, cp.Size)
	if err := verify.Inclusion(cp, 123457, e.Data, p); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(bytes)/float64(proofs), "proof-bytes")
	b.ReportMetric(float64(cp.Size), "entries")
	b.ReportMetric(bigTime.Seconds(), "s-to-build-1M")
}

func BenchmarkConsistencyProof(b *testing.B) {
	dir := bigLog(b)
	l := openLog(b, dir, Options{Check: CheckTail})
	defer l.Close()
	size := l.Size()
	rnd := rand.New(rand.NewPCG(2, 2))
	var bytes, proofs int
	b.ResetTimer()
	for b.Loop() {
		s1 := 1 + rnd.Uint64N(size-1)
		p, err := l.ConsistencyProof(context.Background(), s1, size)
		if err != nil {
			b.Fatal(err)
		}
		bytes += 32 * len(p)
		proofs++
	}
	b.ReportMetric(float64(bytes)/float64(proofs), "proof-bytes")
}

// BenchmarkOpen1M is the hub's start-up cost at 1M entries.
func BenchmarkOpen1M(b *testing.B) {
	dir := bigLog(b)
	for _, c := range []struct {
		name string
		mode CheckMode
	}{{"full", CheckFull}, {"tail", CheckTail}} {
		b.Run(c.name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				l := openLog(b, dir, Options{Check: c.mode})
				l.Close()
			}
			b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// BenchmarkVerifyDir1M is the offline verifier over the 1M-entry directory.
func BenchmarkVerifyDir1M(b *testing.B) {
	dir := bigLog(b)
	cpu := cpuTime()
	for b.Loop() {
		if _, err := verify.Dir(context.Background(), dir, testKey.VerifierKey()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
}
