package ingest

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination the test reads while the pipeline
// writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// While every commit fails (a full disk), Health says so and the log gets
// one line for the first failure and one summary per interval, not one
// per batch or reading; both recover with the next commit that succeeds.
func TestStorageFailureHealthAndBoundedLog(t *testing.T) {
	fs := newFakeStore()
	fs.setAppendErr(errFakeStore)
	logs := &syncBuffer{}
	p := newPipeline(t, fs, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	var (
		clockMu sync.Mutex
		clock   = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	)
	p.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	errorLines := func() int { return strings.Count(logs.String(), "level=ERROR") }

	if err := p.Health(); err != nil {
		t.Fatalf("Health before any commit: %v", err)
	}
	const failing = 100
	for range failing {
		err := p.Submit(t.Context(), "dev-1", "temp", []byte(`{"secret":"do-not-log"}`), true)
		if !errors.Is(err, ErrStorage) || !errors.Is(err, errFakeStore) {
			t.Fatalf("Submit while the store fails: %v, want ErrStorage wrapping the store's error", err)
		}
	}
	if err := p.Health(); !errors.Is(err, ErrNotReady) || !errors.Is(err, errFakeStore) {
		t.Fatalf("Health while commits fail: %v, want ErrNotReady wrapping the store's error", err)
	}
	if n := errorLines(); n != 1 {
		t.Fatalf("%d ERROR lines for %d failed commits, want 1 until the summary is due:\n%s", n, failing, logs.String())
	}

	advance(storeFailLogEvery)
	if err := p.Submit(t.Context(), "dev-1", "temp", []byte(`{"secret":"do-not-log"}`), true); !errors.Is(err, ErrStorage) {
		t.Fatalf("Submit: %v", err)
	}
	if n := errorLines(); n != 2 {
		t.Fatalf("%d ERROR lines after the interval, want 2 (first failure, one summary):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "failed_batches=") {
		t.Errorf("the summary does not count the failed batches:\n%s", logs.String())
	}

	fs.setAppendErr(nil)
	if err := p.Submit(t.Context(), "dev-1", "temp", []byte(`{"secret":"do-not-log"}`), true); err != nil {
		t.Fatalf("Submit after the store recovered: %v", err)
	}
	if err := p.Health(); err != nil {
		t.Fatalf("Health after a commit succeeded: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "storage commits again") || !strings.Contains(out, "failed_batches=101") {
		t.Errorf("the recovery is not logged with the count of failed batches:\n%s", out)
	}
	if strings.Contains(out, "do-not-log") {
		t.Errorf("the log carries payload contents:\n%s", out)
	}
}
