package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Trace plays a kind's normal traffic over a stretch of simulated time
// without a network: the same models (with their daily rhythm) and the
// same schedule a running device uses, called in time order. It lets a
// test check a day of ordinary behaviour in moments, which a device
// running against a hub at real speed could not.
func Trace(kind string, seed uint64, start time.Time, d time.Duration, f func(t time.Time, stream string, payload []byte)) error {
	k, ok := Kinds[kind]
	if !ok {
		return fmt.Errorf("unknown kind %q", kind)
	}
	model := k.newModel(rand.New(rand.NewPCG(seed, 1)), start)
	sched := rand.New(rand.NewPCG(seed, 2))
	gap := func(st Stream) time.Duration {
		g := st.Interval
		if st.Event() {
			g += time.Duration(sched.Int64N(int64(st.MaxInterval - st.Interval)))
		}
		return g
	}
	specs := k.StreamSpecs
	next := make([]time.Time, len(specs))
	for i, st := range specs {
		if st.Event() {
			next[i] = start.Add(gap(st))
		} else {
			next[i] = start.Add(time.Duration(sched.Int64N(int64(st.Interval) + 1)))
		}
	}
	end := start.Add(d)
	for {
		i := 0
		for j := range next {
			if next[j].Before(next[i]) {
				i = j
			}
		}
		t := next[i]
		if !t.Before(end) {
			return nil
		}
		model.advance(t)
		if fields := model.reading(specs[i].Name); fields != nil {
			payload, err := json.Marshal(fields)
			if err != nil {
				return fmt.Errorf("encode %s: %w", specs[i].Name, err)
			}
			f(t, specs[i].Name, payload)
		}
		next[i] = t.Add(gap(specs[i]))
	}
}
