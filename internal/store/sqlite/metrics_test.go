package sqlite

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/candor-iot/candor/internal/store"
)

// The merge metrics move with the merge: readings leaving the stage are
// counted once, whichever way they leave (the merger's pass, in steps, or
// a deletion that moves the stage first), and only steps are timed.
func TestMergeMetrics(t *testing.T) {
	for _, tc := range []struct {
		name      string
		staged    int
		stepRows  int
		deletion  bool
		wantSteps uint64
	}{
		{name: "pass in steps", staged: 10, stepRows: 4, wantSteps: 3},
		{name: "pass in one step", staged: 7, stepRows: 128, wantSteps: 1},
		{name: "deletion", staged: 5, deletion: true, wantSteps: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			db := openTemp(t)
			stopMergerForTest(t, db)
			reg := prometheus.NewPedanticRegistry()
			if err := db.RegisterMetrics(reg); err != nil {
				t.Fatal(err)
			}
			stageReadings(t, db, "d0", tc.staged)
			if got := gaugeValue(t, reg, "candor_store_staged_readings"); got != float64(tc.staged) {
				t.Fatalf("staged gauge %v before the merge, want %d", got, tc.staged)
			}
			if tc.deletion {
				if _, err := db.DeleteReadings(ctx, store.ReadingQuery{DeviceID: "nobody"}, 0); err != nil {
					t.Fatal(err)
				}
			} else {
				p, err := db.planPass(ctx, mergeChunk)
				if err != nil || p == nil {
					t.Fatal(p, err)
				}
				for !p.done {
					if err := db.mergeStep(ctx, p, tc.stepRows, false); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := stagedRows(ctx, db); n != 0 {
				t.Fatalf("%d rows still staged", n)
			}
			if got := metricOf(t, reg, "candor_store_merged_readings_total").GetCounter().GetValue(); got != float64(tc.staged) {
				t.Errorf("merged readings %v, want %d", got, tc.staged)
			}
			if got := gaugeValue(t, reg, "candor_store_staged_readings"); got != 0 {
				t.Errorf("staged gauge %v after the merge, want 0", got)
			}
			h := histogramOf(t, reg, "candor_store_merge_step_seconds")
			if h.GetSampleCount() != tc.wantSteps {
				t.Errorf("%d step durations observed, want %d", h.GetSampleCount(), tc.wantSteps)
			}
			if tc.wantSteps > 0 && h.GetSampleSum() <= 0 {
				t.Errorf("step durations sum to %v", h.GetSampleSum())
			}
		})
	}
}

func metricOf(t *testing.T, reg prometheus.Gatherer, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0]
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func gaugeValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	return metricOf(t, reg, name).GetGauge().GetValue()
}

func histogramOf(t *testing.T, reg prometheus.Gatherer, name string) *dto.Histogram {
	return metricOf(t, reg, name).GetHistogram()
}
