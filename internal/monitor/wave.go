package monitor

import (
	"sync"
	"time"
)

// typeTable counts, per device type, how many devices were in trouble in
// the last windows, to see a fleet wave (a botnet or a bad firmware).
type typeTable struct {
	mu sync.Mutex
	m  map[string]*typeState
}

type typeState struct {
	devices   int
	win       [2]int64 // the window each slot counts
	bad       [2]int
	evaluated int64
	run       run
}

func (t *typeTable) seen(typ string) {
	t.mu.Lock()
	ts := t.m[typ]
	if ts == nil {
		ts = &typeState{win: [2]int64{-1, -1}}
		t.m[typ] = ts
	}
	ts.devices++
	t.mu.Unlock()
}

func (t *typeTable) troubled(typ string, idx int64) {
	t.mu.Lock()
	if ts := t.m[typ]; ts != nil {
		slot := idx & 1
		if ts.win[slot] != idx {
			ts.win[slot], ts.bad[slot] = idx, 0
		}
		ts.bad[slot]++
	}
	t.mu.Unlock()
}

// evaluate looks at the window before idx once, after Tick has closed
// every device's windows.
func (t *typeTable) evaluate(m *Monitor, idx int64, out []effect) []effect {
	prev := idx - 1
	now := m.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for typ, ts := range t.m {
		if ts.evaluated >= prev {
			continue
		}
		ts.evaluated = prev
		n := 0
		if ts.win[prev&1] == prev {
			n = ts.bad[prev&1]
		}
		bad := n >= m.cfg.WaveDevices && float64(n) >= m.cfg.WaveShare*float64(ts.devices)
		r := &ts.run
		switch {
		case bad:
			r.good = 0
			r.peak = max(r.peak, float32(n))
			if !r.active {
				r.active, r.sev, r.limit = true, Critical, float32(m.cfg.WaveDevices)
				out = append(out, effect{op: opRaise, alarm: waveAlarm(typ, r, m.cfg.Window, now)})
			}
		case r.active:
			r.good++
			if int(r.good) >= m.cfg.ClearAfter {
				out = append(out, effect{op: opClear, alarm: waveAlarm(typ, r, m.cfg.Window, now)})
				*r = run{}
			}
		}
	}
	return out
}

func waveAlarm(typ string, r *run, w time.Duration, now time.Time) Alarm {
	return Alarm{Type: typ, Kind: KindWave, Severity: r.sev, Observed: float64(r.peak),
		Limit: float64(r.limit), Window: w, Raised: now}
}

// Waves returns the fleet waves raised and not yet cleared.
func (m *Monitor) Waves() []Alarm {
	now := m.cfg.Now()
	m.types.mu.Lock()
	defer m.types.mu.Unlock()
	var out []Alarm
	for typ, ts := range m.types.m {
		if ts.run.active {
			out = append(out, waveAlarm(typ, &ts.run, m.cfg.Window, now))
		}
	}
	return out
}
