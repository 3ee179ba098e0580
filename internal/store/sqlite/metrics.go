package sqlite

import (
	"github.com/prometheus/client_golang/prometheus"
)

// mergeMetrics are the background merge's Prometheus metrics (stage.go).
// They exist from Open on, so the merger records into them without a
// check; RegisterMetrics exports them. Staged readings are counted once,
// when they leave the stage (the pass's last step, or a deletion that
// moves the stage first), so the counter and the gauge add up.
type mergeMetrics struct {
	stepSecs prometheus.Histogram
	merged   prometheus.Counter
}

func newMergeMetrics() mergeMetrics {
	return mergeMetrics{
		stepSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "candor_store_merge_step_seconds",
			Help: "SQLite store: time one background merge step holds the writer (begin to commit).",
			// A step is about 1 ms; ingest commits wait for at most one,
			// so the tail is what matters (0.25 ms to about 1 s).
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 13),
		}),
		merged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_store_merged_readings_total",
			Help: "SQLite store: staged readings moved into the clustered readings table.",
		}),
	}
}

// RegisterMetrics registers the store's metrics with reg: the merge step
// histogram, the merged readings counter, the staged readings gauge and
// the steps that gave way to ingest. The hub calls it with its registry;
// the store knows nothing of how they are served.
func (db *DB) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		db.metrics.stepSecs,
		db.metrics.merged,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "candor_store_staged_readings",
			Help: "SQLite store: readings in the staging table, waiting for the background merge (approximate).",
		}, func() float64 { return float64(max(0, db.staged.Load())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "candor_store_merge_yields_total",
			Help: "SQLite store: merge steps not started because an ingest commit was waiting for the writer.",
		}, func() float64 { return float64(db.mergeYields.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// unstaged records n readings leaving the stage (merged into the
// clustered table, committed).
func (db *DB) unstaged(n int64) {
	db.staged.Add(-n)
	if n > 0 {
		db.metrics.merged.Add(float64(n))
	}
}
