package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// testTimeout bounds every wait in these tests so a deadlock fails the
// test instead of hanging the package until the global -timeout.
const testTimeout = 60 * time.Second

// openStore opens a fresh real SQLite store in the test's temp dir.
func openStore(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), sqlitetest.Path(tb))
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// newPipeline starts a pipeline that is closed at cleanup (Close is
// idempotent, so tests may close it themselves first). Cleanups run last
// in first out, so the pipeline is closed before the store it writes to.
func newPipeline(tb testing.TB, st Store, opts Options) *Pipeline {
	tb.Helper()
	p := New(st, opts)
	tb.Cleanup(p.Close)
	return p
}

// checkOnly is a pipeline for tests of Check alone. Check never touches
// the store, and a pipeline that is given no readings never calls it, so
// no store is needed.
func checkOnly(tb testing.TB, opts Options) *Pipeline {
	tb.Helper()
	return newPipeline(tb, nil, opts)
}

// createDevice makes a household and a device in the real store, so that
// AddDeviceCounters has a row to update.
func createDevice(t *testing.T, db *sqlite.DB, id string) {
	t.Helper()
	ctx := t.Context()
	hh := store.Household{ID: "hh-" + id, Name: "Home of " + id, CreatedAt: time.Now().UTC()}
	if err := db.CreateHousehold(ctx, hh); err != nil {
		t.Fatalf("CreateHousehold: %v", err)
	}
	d := store.Device{ID: id, HouseholdID: hh.ID, Name: id, Type: "sensor", SecretHash: "x", CreatedAt: time.Now().UTC()}
	if err := db.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
}

// metricValue returns the value of the counter (or the sample count of
// the histogram) name whose labels include all of labels (name, value
// pairs); 0 if no such series was exported yet.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or testTimeout passes. It is for
// state that is reached asynchronously without a channel to wait on (a
// ticker-driven flush, goroutines parked on a sync.Cond).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// await fails the test if c is not closed within testTimeout.
func await(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

var errFakeStore = errors.New("fake store: disk on fire")

// fakeStore is an in-memory Store used only where the real one cannot
// show what a test needs: a failing commit, a commit that hangs until
// released (backpressure) and AddDeviceCounters calls that fail or are
// counted.
type fakeStore struct {
	// entered, if set, receives the size of every AppendReadings batch
	// as it starts (before any gate). Tests size the buffer.
	entered chan int
	// gate, if set, makes AppendReadings wait until it is closed.
	gate chan struct{}
	// counterCalled, if set, receives a copy of the deltas of every
	// AddDeviceCounters call after it took effect (or failed).
	counterCalled chan map[string]store.DeviceCounters
	// counterGate, if set, makes AddDeviceCounters wait until it is
	// closed before it takes effect.
	counterGate chan struct{}
	// violationEntered, if set, is closed when AddViolations starts;
	// violationGate, if set, makes it wait until that is closed.
	violationEntered, violationGate chan struct{}

	mu             sync.Mutex
	appendErr      error // AppendReadings fails with it when set
	counterErr     error // AddDeviceCounters fails with it when set
	batches        []int // sizes of batches committed successfully
	rows           map[string]int
	counterCalls   int
	counterResults map[string]store.DeviceCounters // sum of successful deltas
}

func newFakeStore() *fakeStore {
	return &fakeStore{rows: map[string]int{}, counterResults: map[string]store.DeviceCounters{}}
}

func (f *fakeStore) AppendReadings(ctx context.Context, rs []store.Reading) error {
	if f.entered != nil {
		f.entered <- len(rs)
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appendErr != nil {
		return f.appendErr
	}
	f.batches = append(f.batches, len(rs))
	for i := range rs {
		f.rows[rs[i].DeviceID]++
		rs[i].Seq = int64(i + 1)
	}
	return nil
}

func (f *fakeStore) AddDeviceCounters(ctx context.Context, deltas map[string]store.DeviceCounters) error {
	if f.counterGate != nil {
		<-f.counterGate
	}
	f.mu.Lock()
	f.counterCalls++
	err := f.counterErr
	if err == nil {
		for id, c := range deltas {
			f.counterResults[id] = f.counterResults[id].Add(c)
		}
	}
	f.mu.Unlock()
	if f.counterCalled != nil {
		cp := make(map[string]store.DeviceCounters, len(deltas))
		for id, c := range deltas {
			cp[id] = c
		}
		f.counterCalled <- cp
	}
	return err
}

func (f *fakeStore) setAppendErr(err error) {
	f.mu.Lock()
	f.appendErr = err
	f.mu.Unlock()
}

func (f *fakeStore) setCounterErr(err error) {
	f.mu.Lock()
	f.counterErr = err
	f.mu.Unlock()
}

func (f *fakeStore) snapshot() (batches []int, rows map[string]int, counterCalls int, counters map[string]store.DeviceCounters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rows = make(map[string]int, len(f.rows))
	for k, v := range f.rows {
		rows[k] = v
	}
	counters = make(map[string]store.DeviceCounters, len(f.counterResults))
	for k, v := range f.counterResults {
		counters[k] = v
	}
	return append([]int(nil), f.batches...), rows, f.counterCalls, counters
}

// noopStore accepts everything instantly; the benchmarks use it to
// measure the pipeline's own overhead.
type noopStore struct{}

func (noopStore) AppendReadings(context.Context, []store.Reading) error { return nil }
func (noopStore) AddDeviceCounters(context.Context, map[string]store.DeviceCounters) error {
	return nil
}

func (f *fakeStore) AddViolations(context.Context, []store.ViolationCount) error {
	if f.violationEntered != nil {
		close(f.violationEntered)
	}
	if f.violationGate != nil {
		<-f.violationGate
	}
	return nil
}
func (noopStore) AddViolations(context.Context, []store.ViolationCount) error { return nil }
