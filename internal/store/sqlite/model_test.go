package sqlite

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// A random mix of staged and direct appends (clock jumps included),
// partial merges, range deletions with and without limits, purges,
// FinishPurge and restarts, checked after each step against a model:
// no seq is ever handed out twice, and Readings (with Since) returns
// exactly the model's readings.
//
// One seed of 120 steps: the race detector makes each step slow, and
// the conformance suite covers the plain paths.
func TestStoreMatchesModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(1) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkAgainstModel(t, seed) })
	}
}

func checkAgainstModel(t *testing.T, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 7))
	path := filepath.Join(t.TempDir(), "c.db")
	db := openPath(t, path)
	stopMergerForTest(t, db)
	model := map[string][]store.Reading{}
	var maxSeq int64
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := map[string]time.Time{}
	devs := []string{"a", "b", "c"}
	stopBG := make(chan struct{})
	bgDone := make(chan struct{})
	var dbMu sync.Mutex // guards db across restarts
	go func() {
		defer close(bgDone)
		for {
			select {
			case <-stopBG:
				return
			default:
			}
			dbMu.Lock()
			_, _ = db.mergeStaged(ctx, 1+rand.IntN(30))
			dbMu.Unlock()
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		}
	}()
	defer func() { close(stopBG); <-bgDone }()
	check := func(step int, what string) {
		t.Helper()
		for _, d := range devs {
			rs := model[d]
			for range 6 {
				since := base.Add(time.Duration(rng.IntN(40000)) * time.Second)
				var want []int64
				for _, r := range rs {
					if !r.Time.Before(since) {
						want = append(want, r.Seq)
					}
				}
				want = want[:min(len(want), 2000)]
				got, err := db.Readings(ctx, store.ReadingQuery{DeviceID: d, Since: since, Limit: 2000})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(seqsOf(got), want) {
					t.Fatalf("step %d (%s): %s since %v: got %d readings, want %d", step, what, d, since, len(got), len(want))
				}
			}
			n, err := db.CountReadings(ctx, d)
			if err != nil || n != int64(len(rs)) {
				t.Fatalf("step %d (%s): count %s = %d, %v; want %d", step, what, d, n, err, len(rs))
			}
		}
	}
	for step := range 120 {
		var what string
		switch op := rng.IntN(20); {
		case op < 10: // append
			n := 1 + rng.IntN(40)
			if rng.IntN(4) == 0 {
				n = 256 + rng.IntN(200) // straight into the clustered table
			}
			what = fmt.Sprintf("append %d", n)
			batch := make([]store.Reading, n)
			for i := range batch {
				d := devs[rng.IntN(len(devs))]
				if clock[d].IsZero() {
					clock[d] = base
				}
				clock[d] = clock[d].Add(time.Duration(rng.IntN(30)) * time.Second)
				at := clock[d]
				if rng.IntN(30) == 0 {
					at = at.Add(-time.Duration(rng.IntN(5000)) * time.Second)
				}
				batch[i] = store.Reading{DeviceID: d, Stream: "s", Time: at, Payload: []byte("{}")}
			}
			if err := db.AppendReadings(ctx, batch); err != nil {
				t.Fatal(err)
			}
			for _, r := range batch {
				if r.Seq <= maxSeq {
					t.Fatalf("step %d: seq %d handed out again (max so far %d)", step, r.Seq, maxSeq)
				}
				maxSeq = r.Seq
				model[r.DeviceID] = append(model[r.DeviceID], r)
			}
		case op < 12:
			what = "merge some"
			if _, err := db.mergeStaged(ctx, 1+rng.IntN(50)); err != nil {
				t.Fatal(err)
			}
		case op < 15: // delete a range (maybe the newest readings)
			d := devs[rng.IntN(len(devs))]
			q := store.ReadingQuery{DeviceID: d}
			if rng.IntN(3) > 0 {
				q.Since = base.Add(time.Duration(rng.IntN(40000)) * time.Second)
			}
			if rng.IntN(2) == 0 {
				q.Until = q.Since.Add(time.Duration(1+rng.IntN(20000)) * time.Second)
				if q.Since.IsZero() {
					q.Until = base.Add(time.Duration(rng.IntN(40000)) * time.Second)
				}
			}
			limit := 0
			if rng.IntN(2) == 0 {
				limit = 1 + rng.IntN(100)
			}
			what = fmt.Sprintf("delete %s [%v, %v) limit %d", d, q.Since, q.Until, limit)
			n, err := db.DeleteReadings(ctx, q, limit)
			if err != nil {
				t.Fatal(err)
			}
			var keep []store.Reading
			var del int64
			for _, r := range model[d] {
				in := (q.Since.IsZero() || !r.Time.Before(q.Since)) && (q.Until.IsZero() || r.Time.Before(q.Until))
				if in && (limit == 0 || del < int64(limit)) {
					del++
					continue
				}
				keep = append(keep, r)
			}
			if del != n {
				t.Fatalf("step %d (%s): deleted %d, model %d", step, what, n, del)
			}
			model[d] = keep
		case op < 17: // purge (and finish it)
			d := devs[rng.IntN(len(devs))]
			var until int64
			if rng.IntN(2) == 0 && maxSeq > 0 {
				until = 1 + rng.Int64N(maxSeq)
			}
			what = fmt.Sprintf("purge %s until %d", d, until)
			for {
				n, err := db.PurgeReadings(ctx, store.Purge{DeviceID: d, UntilSeq: until}, 50)
				if err != nil {
					t.Fatal(err)
				}
				if n < 50 {
					break
				}
			}
			if err := db.FinishPurge(ctx, store.Purge{DeviceID: d, UntilSeq: until}); err != nil {
				t.Fatal(err)
			}
			var keep []store.Reading
			for _, r := range model[d] {
				if until != 0 && r.Seq > until {
					keep = append(keep, r)
				}
			}
			model[d] = keep
		default:
			what = "restart"
			dbMu.Lock()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openPath(t, path)
			dbMu.Unlock()
			if rng.IntN(2) == 0 {
				stopMergerForTest(t, db)
			}
		}
		check(step, what)
	}
}
