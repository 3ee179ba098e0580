package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

func TestHistogramBucketsAreContiguous(t *testing.T) {
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d [%d,%d] indexes as %d and %d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			break
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
	// 1..100000 µs, uniform: quantile q is q*100 ms within the 1/32
	// bucket resolution.
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * int64(time.Microsecond))
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 100
		got := Millis(h.Quantile(q))
		if math.Abs(got-want)/want > 1.0/32 {
			t.Errorf("q%.2f = %.3f ms, want %.3f ms ± 3%%", q, got, want)
		}
	}
	if Millis(h.Max()) != 100 || h.Quantile(1) > h.Max() {
		t.Errorf("max %v, q1 %v", h.Max(), h.Quantile(1))
	}
	var a, b Histogram
	a.Record(5)
	b.Record(7)
	b.Record(-3) // counts as 0
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 7 || a.Quantile(0.01) != 0 {
		t.Errorf("merged: count %d max %d min %d", a.Count(), a.Max(), a.Quantile(0.01))
	}
}

func TestPayload(t *testing.T) {
	if p := AppendPayload(nil, 1700000000123456789, 0, 0); len(p) != MinPayloadBytes {
		t.Errorf("smallest reading is %d bytes, MinPayloadBytes says %d", len(p), MinPayloadBytes)
	}
	for _, size := range []int{100, 1000} {
		p := AppendPayload(nil, 1700000000123456789, 42, size)
		if len(p) != size {
			t.Errorf("size %d: got %d bytes: %s", size, len(p), p)
		}
		var v map[string]any
		if err := json.Unmarshal(p, &v); err != nil {
			t.Errorf("size %d: not JSON: %v: %s", size, err, p)
		}
		if ns, ok := SentNanos(p); !ok || ns != 1700000000123456789 {
			t.Errorf("SentNanos = %d, %v", ns, ok)
		}
	}
	if _, ok := SentNanos([]byte(`{"x":1}`)); ok {
		t.Error("SentNanos accepted a payload without a send time")
	}
}

// TestBenchManifestIsValid checks the bench devices' manifest with the
// hub's own parser, and the bench readings with the checker the hub
// compiles from it, so the Candor side does not fail on a manifest
// problem half way through a run.
func TestBenchManifestIsValid(t *testing.T) {
	streams := []string{"bench_qos1", "bench_qos0", "bench_qos1_paced"}
	doc, err := benchManifest(100, streams, "P1D")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("bench.json", doc)
	if err != nil {
		t.Fatalf("the bench manifest does not validate: %v", err)
	}
	if m.DeviceType != benchDeviceType || strings.Join(m.StreamNames(), ",") != "bench_qos0,bench_qos1,bench_qos1_paced" {
		t.Errorf("type %q streams %v", m.DeviceType, m.StreamNames())
	}
	c := manifest.Compile(m)
	p := AppendPayload(nil, time.Now().UnixNano(), 123456, 100)
	if _, v := c.Check("bench_qos1", p, false); v != nil {
		t.Errorf("a bench reading breaks the bench manifest: %v", v)
	}
}
