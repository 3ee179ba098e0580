package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrStorage marks a reading that was accepted by the policy path but
// could not be committed: the store failed (a full disk, say). Such a
// reading is never acknowledged.
var ErrStorage = errors.New("storage failed to commit")

// ErrNotReady is returned by Health while the last commit failed.
var ErrNotReady = errors.New("storage is failing to commit readings")

// storeFailLogEvery is how often a storage failure that goes on is
// summarised in the log. A full disk fails every batch; one line per
// batch (or per reading) would fill the disk faster, and tell the
// operator nothing the summary does not.
const storeFailLogEvery = 30 * time.Second

// health follows whether commits succeed. The first failure is logged at
// once, then one summary per storeFailLogEvery, and the recovery once.
type health struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	err      error     // last commit's error; nil when it succeeded
	since    time.Time // first failure of the current run of failures
	lastLog  time.Time
	batches  int // failed batches not yet logged
	rows     int // their readings
	runTotal int // failed batches since the run began

	// Readings the store refused while committing the rest of their
	// batch (see refused).
	refusedLog  time.Time // when they were last logged
	refusedRows int       // refused since, not yet logged
}

// commit records the outcome of one batch of n readings.
func (h *health) commit(n int, err error) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.err != nil {
			h.log.Warn("storage commits again", "failed_batches", h.runTotal, "failing_for", now.Sub(h.since).Round(time.Millisecond).String())
		}
		h.err, h.batches, h.rows, h.runTotal = nil, 0, 0, 0
		return
	}
	if h.err == nil {
		h.err, h.since, h.lastLog, h.runTotal = err, now, now, 1
		h.log.Error("storage failed to commit a batch; its readings are not acknowledged, and /readyz answers 503 until a commit succeeds",
			"rows", n, "err", err)
		return
	}
	h.err = err
	h.batches++
	h.rows += n
	h.runTotal++
	if now.Sub(h.lastLog) >= storeFailLogEvery {
		h.log.Error("storage still failing to commit; readings not acknowledged",
			"failed_batches", h.batches, "rows", h.rows, "failing_for", now.Sub(h.since).Round(time.Second).String(), "err", err)
		h.lastLog, h.batches, h.rows = now, 0, 0
	}
}

// refused records n readings the store refused from a batch whose other
// readings it committed (store.RefusedReadingsError), err saying why.
// They are logged like failures, the first at once and then one summary
// per storeFailLogEvery (a device past a limit keeps sending), but they
// leave Health as it is: commits succeed, and every other device's
// readings are stored.
func (h *health) refused(n int, err error) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refusedRows += n
	if !h.refusedLog.IsZero() && now.Sub(h.refusedLog) < storeFailLogEvery {
		return
	}
	h.log.Error("storage refused readings it cannot store, committing any others of their batch; the refused are not stored, nor acknowledged unless acknowledged before the commit (--ack durable-within)",
		"rows", h.refusedRows, "err", err)
	h.refusedLog, h.refusedRows = now, 0
}

// state returns nil while commits succeed, or why they do not.
func (h *health) state() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return nil
	}
	return fmt.Errorf("%w since %s: %w", ErrNotReady, h.since.UTC().Format(time.RFC3339), h.err)
}

// Health reports whether readings are being committed: nil when the last
// batch committed (or none was written yet), an error wrapping
// ErrNotReady and the store's error while commits fail. It recovers with
// the next commit that succeeds.
func (p *Pipeline) Health() error { return p.health.state() }
