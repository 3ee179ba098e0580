package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-iot/candor/internal/store"
)

// TestCommitFailureFailsEveryWaiter: when a batch's transaction fails,
// every publisher that waited on it is told (so it is not acknowledged),
// the error metric moves, and the pipeline keeps working afterwards.
func TestCommitFailureFailsEveryWaiter(t *testing.T) {
	const (
		n       = 8 // one full batch
		waiters = 6 // the other two are fire-and-forget
		secret  = "payload-must-not-appear"
	)
	fs := newFakeStore()
	fs.setAppendErr(errFakeStore)
	reg := prometheus.NewRegistry()
	// The window is far longer than the test: the batch is flushed
	// because it is full, so all n readings are in the same one.
	p := newPipeline(t, fs, Options{BatchMaxRows: n, BatchMaxWait: time.Minute, Registerer: reg})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	submitAll := func() []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = p.Submit(ctx, fmt.Sprintf("dev-%d", i), "s", []byte(`{"x":"`+secret+`"}`), i < waiters)
			})
		}
		wg.Wait()
		return errs
	}

	errs := submitAll()
	for i, err := range errs {
		if i >= waiters {
			if err != nil {
				t.Errorf("fire-and-forget submit %d = %v, want nil (queued)", i, err)
			}
			continue
		}
		if !errors.Is(err, errFakeStore) {
			t.Errorf("waiter %d got %v, want an error wrapping %v", i, err, errFakeStore)
			continue
		}
		var re *RefusedError
		if errors.As(err, &re) {
			t.Errorf("waiter %d: a storage failure is reported as a refusal: %v", i, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("dev-%d", i)) {
			t.Errorf("waiter %d: error %q does not name its device", i, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("waiter %d: error leaks the payload: %q", i, err)
		}
	}
	if got := metricValue(t, reg, "candor_store_batch_errors_total"); got != 1 {
		t.Errorf("batch errors = %v, want 1", got)
	}
	if got := metricValue(t, reg, "candor_readings_accepted_total"); got != 0 {
		t.Errorf("accepted = %v after a failed batch, want 0", got)
	}
	if got := metricValue(t, reg, "candor_store_batch_rows"); got != 0 {
		t.Errorf("batch_rows has %v observations, want 0 (failed batches are not sized)", got)
	}
	if got := metricValue(t, reg, "candor_store_batch_seconds"); got != 1 {
		t.Errorf("batch_seconds has %v observations, want 1", got)
	}

	// The store recovers: the next batch commits and is acknowledged.
	fs.setAppendErr(nil)
	for i, err := range submitAll() {
		if err != nil {
			t.Errorf("submit %d after recovery = %v", i, err)
		}
	}
	if got := metricValue(t, reg, "candor_readings_accepted_total"); got != n {
		t.Errorf("accepted = %v, want %d", got, n)
	}
	if got := metricValue(t, reg, "candor_store_batch_errors_total"); got != 1 {
		t.Errorf("batch errors = %v, want still 1", got)
	}
	batches, _, _, _ := fs.snapshot()
	if !slices.Equal(batches, []int{n}) {
		t.Errorf("committed batches = %v, want [%d]", batches, n)
	}
}

// stuckPipeline returns a pipeline over a fake store whose first AppendReadings hangs until
// release is called, with the pipeline already holding one reading in
// that hung batch. release is idempotent and also runs at cleanup, before
// the pipeline is closed.
func stuckPipeline(t *testing.T, opts Options) (p *Pipeline, fs *fakeStore, release func()) {
	t.Helper()
	fs = newFakeStore()
	fs.entered = make(chan int, 1<<16)
	fs.gate = make(chan struct{})
	p = newPipeline(t, fs, opts)
	var once sync.Once
	release = func() { once.Do(func() { close(fs.gate) }) }
	t.Cleanup(release) // runs before p.Close (cleanups are LIFO)

	if err := p.Submit(t.Context(), "dev-first", "s", []byte(`{}`), false); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case n := <-fs.entered:
		if n != 1 {
			t.Fatalf("first batch has %d rows, want 1", n)
		}
	case <-time.After(testTimeout):
		t.Fatal("first batch never reached the store")
	}
	return p, fs, release
}

// TestBackpressure: while the store is stuck, at most maxPending
// (4×BatchMaxRows) readings queue up; further submitters block instead of
// growing memory, and all of them complete once the store moves again.
func TestBackpressure(t *testing.T) {
	// In a synctest bubble, so "nobody else gets in" is checked once every
	// goroutine is blocked, instead of after a grace period.
	synctest.Test(t, testBackpressure)
}

func testBackpressure(t *testing.T) {
	const (
		maxRows    = 10
		maxPending = 4 * maxRows
		flood      = 100
	)
	p, fs, release := stuckPipeline(t, Options{BatchMaxRows: maxRows, BatchMaxWait: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	returned := make(chan error, flood)
	for i := range flood {
		go func() {
			// Fire-and-forget: these return as soon as they are queued,
			// so the number returned is the number queued.
			returned <- p.Submit(ctx, "dev-flood", "s", fmt.Appendf(nil, `{"i":%d}`, i), false)
		}()
	}
	for i := range maxPending {
		select {
		case err := <-returned:
			if err != nil {
				t.Fatalf("queued submit %d: %v", i, err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d submitters were queued while the store is stuck", i, maxPending)
		}
	}
	// Nobody else gets in while the store is stuck: once every goroutine
	// of the bubble is blocked, none of the others has returned.
	synctest.Wait()
	select {
	case err := <-returned:
		t.Fatalf("a submitter beyond maxPending returned (%v) while the store is stuck", err)
	default:
	}
	p.batcher.mu.Lock()
	queued := len(p.batcher.cur.rows)
	p.batcher.mu.Unlock()
	if queued != maxPending {
		t.Errorf("queued rows = %d, want exactly maxPending %d", queued, maxPending)
	}

	release()
	for i := maxPending; i < flood; i++ {
		select {
		case err := <-returned:
			if err != nil {
				t.Fatalf("blocked submit: %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d submitters completed after the store was released", i, flood)
		}
	}
	p.Close()
	batches, rows, _, _ := fs.snapshot()
	if rows["dev-first"] != 1 || rows["dev-flood"] != flood {
		t.Errorf("stored rows = %v, want dev-first:1 dev-flood:%d", rows, flood)
	}
	if m := slices.Max(batches); m > maxPending {
		t.Errorf("a batch of %d rows exceeded maxPending %d (batches %v)", m, maxPending, batches)
	}
}

// TestBackpressureCloseReleasesBlocked: submitters that wait for the commit are held
// too, and Close releases those still blocked with ErrClosed while
// committing those already queued.
func TestBackpressureCloseReleasesBlocked(t *testing.T) {
	const (
		maxRows    = 5
		maxPending = 4 * maxRows
		flood      = 50
	)
	p, fs, release := stuckPipeline(t, Options{BatchMaxRows: maxRows, BatchMaxWait: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	returned := make(chan error, flood)
	for range flood {
		go func() { returned <- p.Submit(ctx, "dev-flood", "s", []byte(`{}`), true) }()
	}
	// Wait until the queue is full and the rest are parked.
	eventually(t, "a full queue", func() bool {
		p.batcher.mu.Lock()
		defer p.batcher.mu.Unlock()
		return len(p.batcher.cur.rows) == maxPending
	})
	select {
	case err := <-returned:
		t.Fatalf("a waiting submitter returned (%v) while its batch cannot commit", err)
	default:
	}

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	// Close must wait for the stuck batch; the blocked submitters are
	// turned away rather than left hanging.
	var nClosed, nOK int
	for range flood - maxPending {
		select {
		case err := <-returned:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("blocked submitter got %v on Close, want ErrClosed", err)
			}
			nClosed++
		case <-ctx.Done():
			t.Fatalf("only %d blocked submitters were released by Close", nClosed)
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was still being committed")
	default:
	}
	release()
	await(t, "Close", closed)
	for range maxPending {
		select {
		case err := <-returned:
			if err != nil {
				t.Errorf("queued waiter got %v, want nil", err)
			}
			nOK++
		case <-ctx.Done():
			t.Fatal("queued waiters did not complete")
		}
	}
	_, rows, _, _ := fs.snapshot()
	if rows["dev-flood"] != nOK || nOK != maxPending || nClosed != flood-maxPending {
		t.Errorf("stored %d, acknowledged %d, turned away %d; want %d, %d, %d",
			rows["dev-flood"], nOK, nClosed, maxPending, maxPending, flood-maxPending)
	}
}

// TestBatchesGrowWhileStoreIsSlow: readings arriving during a commit are
// written together in the next one, not one transaction each.
func TestBatchesGrowWhileStoreIsSlow(t *testing.T) {
	p, fs, release := stuckPipeline(t, Options{BatchMaxRows: 1000, BatchMaxWait: time.Millisecond})
	ctx := t.Context()
	for range 300 {
		if err := p.Submit(ctx, "dev-1", "s", []byte(`{}`), false); err != nil {
			t.Fatal(err)
		}
	}
	release()
	p.Close()
	batches, _, _, _ := fs.snapshot()
	if !slices.Equal(batches, []int{1, 300}) {
		t.Errorf("batches = %v, want [1 300]", batches)
	}
}

// TestCountersKeptWhenStoreFails drives the flush by hand so each step is
// deterministic.
func TestCountersKeptWhenStoreFails(t *testing.T) {
	fs := newFakeStore()
	fs.setCounterErr(errFakeStore)
	p := newPipeline(t, fs, Options{CounterFlushInterval: time.Hour})

	p.Refuse("dev-1", &RefusedError{Reason: ReasonNotJSON})
	p.Refuse("dev-1", &RefusedError{Reason: ReasonTooLarge})
	p.Count("dev-2", store.DeviceCounters{AuthFailures: 3})

	p.flushCounters() // fails
	if got := p.PendingCounters("dev-1"); got != (store.DeviceCounters{Refused: 2}) {
		t.Errorf("dev-1 pending after failed flush = %+v, want Refused 2", got)
	}
	if got := p.PendingCounters("dev-2"); got != (store.DeviceCounters{AuthFailures: 3}) {
		t.Errorf("dev-2 pending after failed flush = %+v, want AuthFailures 3", got)
	}

	p.Count("dev-1", store.DeviceCounters{Refused: 1, ACLDenied: 1})
	p.flushCounters() // fails again; the new count merges with the kept ones
	want1 := store.DeviceCounters{Refused: 3, ACLDenied: 1}
	if got := p.PendingCounters("dev-1"); got != want1 {
		t.Errorf("dev-1 pending after second failed flush = %+v, want %+v", got, want1)
	}

	fs.setCounterErr(nil)
	p.flushCounters() // succeeds
	_, _, calls, got := fs.snapshot()
	if calls != 3 {
		t.Errorf("AddDeviceCounters calls = %d, want 3", calls)
	}
	want := map[string]store.DeviceCounters{"dev-1": want1, "dev-2": {AuthFailures: 3}}
	if len(got) != len(want) || got["dev-1"] != want["dev-1"] || got["dev-2"] != want["dev-2"] {
		t.Errorf("stored counters = %+v, want %+v", got, want)
	}
	if c := p.PendingCounters("dev-1"); c != (store.DeviceCounters{}) {
		t.Errorf("pending after successful flush = %+v, want zero", c)
	}

	// Nothing pending: no store call, on a tick or on Close.
	p.flushCounters()
	p.Close()
	if _, _, calls, _ := fs.snapshot(); calls != 3 {
		t.Errorf("AddDeviceCounters calls = %d, want still 3 (nothing to flush)", calls)
	}
}

// TestCountersRetriedByTicker: the background loop retries on its own.
func TestCountersRetriedByTicker(t *testing.T) {
	fs := newFakeStore()
	fs.setCounterErr(errFakeStore)
	p := newPipeline(t, fs, Options{CounterFlushInterval: 2 * time.Millisecond})
	p.Count("dev-1", store.DeviceCounters{ACLDenied: 7})
	eventually(t, "three failed flushes", func() bool {
		_, _, calls, _ := fs.snapshot()
		return calls >= 3
	})
	fs.setCounterErr(nil)
	want := store.DeviceCounters{ACLDenied: 7}
	eventually(t, "a successful flush", func() bool {
		_, _, _, got := fs.snapshot()
		return got["dev-1"] == want
	})
	p.Close()
	if _, _, _, got := fs.snapshot(); got["dev-1"] != want {
		t.Errorf("stored counters = %+v, want %+v (counted exactly once)", got["dev-1"], want)
	}
}

// TestCountersFailedOnCloseStayPending: when the final flush fails, the
// counts are not thrown away.
func TestCountersFailedOnCloseStayPending(t *testing.T) {
	fs := newFakeStore()
	fs.setCounterErr(errFakeStore)
	p := newPipeline(t, fs, Options{CounterFlushInterval: time.Hour})
	p.Count("dev-1", store.DeviceCounters{AuthFailures: 2})
	p.Close()
	if _, _, calls, _ := fs.snapshot(); calls != 1 {
		t.Errorf("AddDeviceCounters calls = %d, want 1 (the flush on Close)", calls)
	}
	if got := p.PendingCounters("dev-1"); got != (store.DeviceCounters{AuthFailures: 2}) {
		t.Errorf("pending after failed final flush = %+v, want AuthFailures 2", got)
	}
}

// ---- Regression tests for bugs found in review (all fixed). ----

// TestSecondCloseWaitsForCommit: Close promises to return only after
// everything queued is committed. A second Close (concurrent with the
// first) returns at once, while the first is still committing, so its
// caller may go on to close the store under the batcher's feet.
func TestSecondCloseWaitsForCommit(t *testing.T) {
	synctest.Test(t, testSecondCloseWaitsForCommit)
}

func testSecondCloseWaitsForCommit(t *testing.T) {
	p, fs, release := stuckPipeline(t, Options{BatchMaxWait: time.Millisecond})

	first := make(chan struct{})
	go func() { p.Close(); close(first) }()
	eventually(t, "the first Close to start", func() bool {
		p.batcher.mu.Lock()
		defer p.batcher.mu.Unlock()
		return p.batcher.closed
	})
	second := make(chan struct{})
	go func() { p.Close(); close(second) }()
	synctest.Wait() // both Close calls are as far as they get while the store is stuck
	select {
	case <-second:
		_, rows, _, _ := fs.snapshot()
		t.Errorf("second Close returned while a batch was still uncommitted (committed rows: %v)", rows)
	default:
	}
	release()
	await(t, "first Close", first)
	await(t, "second Close", second)
}

// TestConcurrentClose: Close called from several goroutines at once
// panics with "close of closed channel": those that find the batcher
// already closed race each other on the select-then-close of stopC.
func TestConcurrentClose(t *testing.T) {
	for range 500 {
		p := New(noopStore{}, Options{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("Close panicked: %v", r)
					}
				}()
				p.Close()
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}

// TestSubmitHonoursContextUnderBackpressure: a submitter blocked by
// backpressure cannot give up. Its context is ignored until the store
// drains or the pipeline closes (ReasonOverloaded exists but is never
// used). An HTTP ingest whose client went away, or one whose request has a
// deadline, stays parked for as long as the store is stuck.
func TestSubmitHonoursContextUnderBackpressure(t *testing.T) {
	const maxRows = 2
	p, _, release := stuckPipeline(t, Options{BatchMaxRows: maxRows, BatchMaxWait: time.Millisecond})
	for range 4 * maxRows { // fill the queue
		if err := p.Submit(t.Context(), "dev-1", "s", []byte(`{}`), false); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Submit(ctx, "dev-1", "s", []byte(`{}`), true) }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Submit succeeded while the store is stuck")
		}
	case <-time.After(2 * time.Second):
		t.Errorf("Submit with a 50ms deadline still blocked after 2s of backpressure")
	}
	release()
}

// TestEmptyDeviceIDDoesNotPoisonBatch: the store refuses a reading with an
// empty device id, which would fail the whole group commit; Check must
// refuse it first so the other readings of the batch are stored.
func TestEmptyDeviceIDDoesNotPoisonBatch(t *testing.T) {
	db := openStore(t)
	const n = 4
	p := newPipeline(t, db, Options{BatchMaxRows: n, BatchMaxWait: 50 * time.Millisecond})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dev := fmt.Sprintf("dev-%d", i)
			if i == 0 {
				dev = ""
			}
			errs[i] = p.Submit(t.Context(), dev, "s", []byte(`{}`), true)
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if errs[i] != nil {
			t.Errorf("dev-%d failed because another reading in its batch was bad: %v", i, errs[i])
		}
	}
	var re *RefusedError
	if !errors.As(errs[0], &re) {
		t.Errorf("empty device id: got %v, want a RefusedError from Check", errs[0])
	}
}

// TestSubmitDoesNotAliasPayload: Submit(wait=false) returns while the
// pipeline still holds the caller's payload slice. A caller that reuses
// its buffer (as network code commonly does) changes what is stored, and
// the stored bytes need no longer be the JSON object Check accepted.
func TestSubmitDoesNotAliasPayload(t *testing.T) {
	db := openStore(t)
	p := newPipeline(t, db, Options{BatchMaxWait: time.Minute})
	buf := []byte(`{"c":21}`)
	if err := p.Submit(t.Context(), "dev-1", "s", buf, false); err != nil {
		t.Fatal(err)
	}
	copy(buf, "garbage!") // the caller reuses its buffer
	p.Close()
	rs, err := db.Readings(t.Context(), store.ReadingQuery{DeviceID: "dev-1"})
	if err != nil || len(rs) != 1 {
		t.Fatalf("Readings = %v, %v", rs, err)
	}
	if string(rs[0].Payload) != `{"c":21}` {
		t.Errorf("stored payload = %q, want the accepted %q", rs[0].Payload, `{"c":21}`)
	}
}

// TestPendingCountersDuringFlush: PendingCounters is documented as the
// counts not yet written to the store, and the API shows stored+pending.
// While a flush is in flight the counts are in neither, so the figure
// briefly drops (and if the flush fails, jumps back).
func TestPendingCountersDuringFlush(t *testing.T) {
	synctest.Test(t, testPendingCountersDuringFlush)
}

func testPendingCountersDuringFlush(t *testing.T) {
	fs := newFakeStore()
	fs.counterGate = make(chan struct{})
	p := newPipeline(t, fs, Options{CounterFlushInterval: time.Hour})
	var once sync.Once
	release := func() { once.Do(func() { close(fs.counterGate) }) }
	t.Cleanup(release)

	p.Count("dev-1", store.DeviceCounters{Refused: 5})
	flushed := make(chan struct{})
	go func() { p.flushCounters(); close(flushed) }()
	// The figure an API reader would show while the flush is blocked in
	// the store (synctest.Wait returns once it is).
	synctest.Wait()
	_, _, _, stored := fs.snapshot()
	if shown := stored["dev-1"].Add(p.PendingCounters("dev-1")); shown.Refused != 5 {
		t.Errorf("stored+pending = %+v while a flush is in flight, want Refused 5", shown)
	}
	release()
	await(t, "flush", flushed)
}

// steppedAppender commits one batch each time step is sent to, or every
// batch once quit is closed, and records the rows of every batch by device.
type steppedAppender struct {
	step    chan struct{}
	quit    chan struct{}
	mu      sync.Mutex
	batches []map[string]int
}

func (s *steppedAppender) AppendReadings(ctx context.Context, rs []store.Reading) error {
	select {
	case <-s.step:
	case <-s.quit:
	}
	per := map[string]int{}
	for _, r := range rs {
		per[r.DeviceID]++
	}
	s.mu.Lock()
	s.batches = append(s.batches, per)
	s.mu.Unlock()
	return nil
}

// TestEveryDeviceGetsItsShare: while the writer is behind, the queue holds
// at most maxPending readings, and each device that is sending gets an
// equal share of every batch instead of the first read loops to run after
// a commit filling it (at QoS 0 full speed that left some devices'
// readings waiting for seconds). Each device here is one connection's read
// loop: one reading at a time, never waiting for the commit.
func TestEveryDeviceGetsItsShare(t *testing.T) {
	synctest.Test(t, testEveryDeviceGetsItsShare)
}

func testEveryDeviceGetsItsShare(t *testing.T) {
	const (
		maxRows    = 10
		maxPending = 4 * maxRows
		devices    = 4
		share      = maxPending / devices
		backlog    = 1000 // readings each device has to send: more than the rounds checked take
		rounds     = 5
	)
	b, st, ctx, wg := steppedBatcher(t, maxRows)
	add := func(dev string, i int) error {
		_, _, err := b.add(ctx, store.Reading{DeviceID: dev, Stream: "s", Payload: fmt.Appendf(nil, `{"i":%d}`, i)}, nil)
		return err
	}
	// The writer takes a first, one-device batch and is stuck on it.
	if err := add("dev-first", 0); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()

	errs := make(chan error, devices)
	for d := range devices {
		wg.Go(func() {
			for i := range backlog {
				if err := add(fmt.Sprintf("dev-%d", d), i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	queued := func() map[string]int { return queuedPerDevice(t, b, maxPending) }
	// Once every read loop is blocked the queue is at its bound, whoever
	// filled it: the first batch's shares come from the one-device batch.
	synctest.Wait()
	queued()
	// From then on each commit lets every device queue exactly its share.
	for round := range rounds {
		st.step <- struct{}{}
		synctest.Wait()
		per := queued()
		for d := range devices {
			if dev := fmt.Sprintf("dev-%d", d); per[dev] != share {
				t.Fatalf("after commit %d, queued per device: %v; want %d of each", round+1, per, share)
			}
		}
	}

	// Let the writer go: everything sent is committed.
	close(st.quit)
	wg.Wait()
	b.close()
	select {
	case err := <-errs:
		t.Fatalf("a read loop's reading was not queued: %v", err)
	default:
	}
	total := map[string]int{}
	st.mu.Lock()
	for _, per := range st.batches {
		for dev, n := range per {
			total[dev] += n
		}
	}
	st.mu.Unlock()
	for d := range devices {
		if dev := fmt.Sprintf("dev-%d", d); total[dev] != backlog {
			t.Errorf("%s: %d readings committed, want %d", dev, total[dev], backlog)
		}
	}
}

// TestDevicesTakeTurns: with more devices sending than a batch has turns
// for, a batch holds a few devices' turns (few parts of the readings table
// per commit) and the others come first in the next one: no device waits
// more than one commit beyond its turn.
func TestDevicesTakeTurns(t *testing.T) {
	synctest.Test(t, testDevicesTakeTurns)
}

func testDevicesTakeTurns(t *testing.T) {
	const (
		maxRows    = 20
		maxPending = 4 * maxRows // 80
		turn       = maxRows / 10
		turns      = maxPending / turn // 40
		devices    = 60
		backlog    = 200
		rounds     = 6
	)
	b, st, ctx, wg := steppedBatcher(t, maxRows)
	add := func(dev string) error {
		_, _, err := b.add(ctx, store.Reading{DeviceID: dev, Stream: "s", Payload: []byte(`{}`)}, nil)
		return err
	}
	if err := add("dev-first"); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	for d := range devices {
		wg.Go(func() {
			for range backlog {
				if add(fmt.Sprintf("dev-%02d", d)) != nil {
					return
				}
			}
		})
	}
	queued := func() map[string]int { return queuedPerDevice(t, b, maxPending) }
	synctest.Wait()
	queued()
	// The first batch written while they all send was filled by a race
	// (its turns came from the one-device batch); from the next one on,
	// turns go round.
	st.step <- struct{}{}
	synctest.Wait()
	queued()
	missed := map[string]int{} // batches in a row without a turn
	for round := range rounds {
		st.step <- struct{}{}
		synctest.Wait()
		per := queued()
		if len(per) != turns {
			t.Fatalf("after commit %d: %d devices queued, want %d turns: %v", round+2, len(per), turns, per)
		}
		for d := range devices {
			dev := fmt.Sprintf("dev-%02d", d)
			switch n := per[dev]; n {
			case 0:
				missed[dev]++
				if missed[dev] > 1 {
					t.Fatalf("after commit %d: %s had no turn in two batches in a row", round+2, dev)
				}
			case turn:
				missed[dev] = 0
			default:
				t.Fatalf("after commit %d: %s queued %d readings, want a turn of %d", round+2, dev, n, turn)
			}
		}
	}
}

// TestBatchGathersUnderSteadyTraffic: with BatchMaxWait set, readings that
// arrive while a batch is written are not written the moment it is done
// but gather until the oldest is BatchMaxWait old, so steady traffic makes
// fewer, larger commits (each costs an fsync).
func TestBatchGathersUnderSteadyTraffic(t *testing.T) {
	synctest.Test(t, testBatchGathers)
}

func testBatchGathers(t *testing.T) {
	const wait = 10 * time.Millisecond
	p, fs, release := stuckPipeline(t, Options{BatchMaxRows: 100, BatchMaxWait: wait})
	for i := range 2 {
		if err := p.Submit(t.Context(), "dev-steady", "s", fmt.Appendf(nil, `{"i":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
	}
	release()
	synctest.Wait() // the first batch is written; the batcher waits
	if batches, _, _, _ := fs.snapshot(); !slices.Equal(batches, []int{1}) {
		t.Fatalf("batches written before the gathering window ended: %v, want [1]", batches)
	}
	time.Sleep(wait)
	synctest.Wait()
	if batches, _, _, _ := fs.snapshot(); !slices.Equal(batches, []int{1, 2}) {
		t.Fatalf("batches written after the window: %v, want [1 2]", batches)
	}
}

// TestBatchBusyWait: with BatchBusyWait set, readings that arrive while a
// batch is written gather until the oldest is BatchBusyWait old, but the
// first reading after a quiet spell is written at once: the window costs
// latency only while the writer is busy anyway.
func TestBatchBusyWait(t *testing.T) {
	synctest.Test(t, testBatchBusyWait)
}

func testBatchBusyWait(t *testing.T) {
	const wait = 10 * time.Millisecond
	p, fs, release := stuckPipeline(t, Options{BatchMaxRows: 100, BatchBusyWait: wait})
	submit := func(i int) {
		t.Helper()
		if err := p.Submit(t.Context(), "dev-steady", "s", fmt.Appendf(nil, `{"i":%d}`, i), false); err != nil {
			t.Fatal(err)
		}
	}
	submit(0)
	submit(1)
	release()
	synctest.Wait() // the first batch is written; the next one gathers
	if batches, _, _, _ := fs.snapshot(); !slices.Equal(batches, []int{1}) {
		t.Fatalf("batches written while the writer was busy, before the window ended: %v, want [1]", batches)
	}
	time.Sleep(wait)
	synctest.Wait()
	if batches, _, _, _ := fs.snapshot(); !slices.Equal(batches, []int{1, 2}) {
		t.Fatalf("batches written after the window: %v, want [1 2]", batches)
	}
	time.Sleep(time.Second) // a quiet spell
	start := time.Now()
	submit(2)
	synctest.Wait()
	if batches, _, _, _ := fs.snapshot(); !slices.Equal(batches, []int{1, 2, 1}) {
		t.Fatalf("a lone reading after a quiet spell was not written at once: %v, want [1 2 1]", batches)
	}
	if d := time.Since(start); d != 0 {
		t.Fatalf("a lone reading after a quiet spell waited %v in the bubble, want 0", d)
	}
}

// steppedBatcher starts a batcher of maxRows on a steppedAppender, and
// the context and wait group for the test's read loops. When the test
// ends, however it ends: the read loops blocked in add give up (ctx), the
// test's goroutines are waited for, the writer finishes and the batcher
// closes.
func steppedBatcher(t *testing.T, maxRows int) (*batcher, *steppedAppender, context.Context, *sync.WaitGroup) {
	st := &steppedAppender{step: make(chan struct{}), quit: make(chan struct{})}
	b := newBatcher(st, maxRows, 0, 0, nil)
	ctx, cancel := context.WithCancel(t.Context())
	wg := &sync.WaitGroup{}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		select {
		case <-st.quit:
		default:
			close(st.quit)
		}
		b.close()
	})
	return b, st, ctx, wg
}

// queuedPerDevice counts the readings queued in b's filling batch per
// device, and fails the test if more than maxPending are queued.
func queuedPerDevice(t *testing.T, b *batcher, maxPending int) map[string]int {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.cur.rows); n > maxPending {
		t.Fatalf("%d readings queued, more than maxPending %d", n, maxPending)
	}
	per := map[string]int{}
	for _, r := range b.cur.rows {
		per[r.DeviceID]++
	}
	return per
}

// wakeRecorder is a Waker that reports each call, and whether the ticket
// it waits on was Ready when it was called.
type wakeRecorder struct {
	t     Ticket
	calls chan bool
}

func (w *wakeRecorder) Committed() { w.calls <- w.t.Ready() }

// NotifyCommit: each waker registered with a batch is told once, after the
// commit (the reading is Ready by then), and not before; a registration
// with a batch already committed, or with a ticket that has no batch to
// wait on, is refused, so the caller looks at Ready itself.
func TestNotifyCommit(t *testing.T) {
	b, st, ctx, _ := steppedBatcher(t, 100)
	add := func() Ticket {
		bt, row, err := b.add(ctx, store.Reading{DeviceID: "dev-1", Stream: "s"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return Ticket{b: bt, row: row}
	}
	tk := add()
	ws := []*wakeRecorder{{t: tk, calls: make(chan bool, 2)}, {t: tk, calls: make(chan bool, 2)}}
	for _, w := range ws {
		if !tk.NotifyCommit(w) {
			t.Fatal("registration with a batch not yet committed refused")
		}
	}
	select {
	case <-ws[0].calls:
		t.Fatal("waker told before the commit")
	case <-time.After(20 * time.Millisecond):
	}
	st.step <- struct{}{}
	for i, w := range ws {
		select {
		case ready := <-w.calls:
			if !ready {
				t.Errorf("waker %d told before its reading was Ready", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("waker %d not told of the commit", i)
		}
	}
	if tk.NotifyCommit(&wakeRecorder{calls: make(chan bool, 1)}) {
		t.Error("registration with a committed batch accepted")
	}
	if Completed(nil).NotifyCommit(&wakeRecorder{calls: make(chan bool, 1)}) {
		t.Error("registration with a completed ticket accepted")
	}
	// The next batch's wakers are its own: the first ones are not told
	// again.
	tk2 := add()
	w2 := &wakeRecorder{t: tk2, calls: make(chan bool, 1)}
	if !tk2.NotifyCommit(w2) {
		t.Fatal("registration with the second batch refused")
	}
	st.step <- struct{}{}
	if ready := <-w2.calls; !ready {
		t.Error("second waker told before its reading was Ready")
	}
	for i, w := range ws {
		if len(w.calls) != 0 {
			t.Errorf("waker %d told twice", i)
		}
	}
}
