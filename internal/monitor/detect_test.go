package monitor

import (
	"slices"
	"testing"
	"time"
)

func TestDetectors(t *testing.T) {
	meter := Reading{Device: "d1", Type: "smart-meter", Stream: "power", Size: 40, PerMinute: 60, MaxBytes: 256}
	tests := []struct {
		name  string
		drive func(m *Monitor, c *clock)
		want  []Kind
		sev   Severity
	}{
		{"within its declared rate", func(m *Monitor, c *clock) {
			for range 10 {
				spread(m, c, 60, meter)
			}
		}, nil, 0},
		{"flood far above its declared rate", func(m *Monitor, c *clock) {
			for range 3 {
				spread(m, c, 5400, meter)
			}
		}, []Kind{KindDeclaredRate}, Critical},
		{"a little above, sustained", func(m *Monitor, c *clock) {
			for range 3 {
				spread(m, c, 200, meter)
			}
		}, []Kind{KindDeclaredRate}, Warning},
		{"above for fewer windows than it takes to raise", func(m *Monitor, c *clock) {
			spread(m, c, 5400, meter)
			spread(m, c, 5400, meter)
			spread(m, c, 60, meter)
			spread(m, c, 5400, meter)
		}, nil, 0},
		{"messages above the declared size", func(m *Monitor, c *clock) {
			big := meter
			big.Size = 4000
			for range 3 {
				spread(m, c, 10, big)
			}
		}, []Kind{KindDeclaredSize}, Warning},
		{"a burst of undeclared streams", func(m *Monitor, c *clock) {
			for range 5 {
				m.Reading(Reading{Device: "d1", Stream: "contacts", Undeclared: true})
			}
			m.Tick()
			c.advance(time.Minute)
			m.Tick()
		}, []Kind{KindUndeclared}, Warning},
		{"keeps sending after the off switch", func(m *Monitor, c *clock) {
			off := meter
			off.Off = true
			for range 3 {
				spread(m, c, 60, off)
			}
		}, []Kind{KindIgnoresOff}, Critical},
		{"one reading in flight when switched off", func(m *Monitor, c *clock) {
			off := meter
			off.Off = true
			spread(m, c, 1, off)
			for range 6 {
				spread(m, c, 0, meter)
			}
		}, nil, 0},
		{"wrong-secret storm", func(m *Monitor, c *clock) {
			for range 10 {
				m.AuthFailure(t.Context(), "d1")
			}
		}, []Kind{KindWrongSecrets}, Warning},
		{"throttled guesses at a device it knows", func(m *Monitor, c *clock) {
			m.AuthFailure(t.Context(), "d1")
			for range 9 {
				m.AuthThrottled("d1")
			}
		}, []Kind{KindWrongSecrets}, Warning},
		{"throttled guesses at an id it never saw", func(m *Monitor, c *clock) {
			for range 20 {
				m.AuthThrottled("d1")
			}
		}, nil, 0},
		{"a few typos", func(m *Monitor, c *clock) {
			for range 3 {
				for range 3 {
					m.AuthFailure(t.Context(), "d1")
				}
				c.advance(time.Minute)
			}
		}, nil, 0},
		{"probing outside its namespace", func(m *Monitor, c *clock) {
			for range 5 {
				m.Denied("d1")
			}
		}, []Kind{KindProbe}, Warning},
		{"reconnect storm", func(m *Monitor, c *clock) {
			for range 20 {
				m.Connect("d1", "d1", addrA)
				m.Disconnect("d1", "d1")
			}
		}, []Kind{KindReconnects}, Warning},
		{"one secret from two places at once", func(m *Monitor, c *clock) {
			m.Connect("d1", "d1", addrA)
			m.Connect("d1", "d1-2", addrB)
			for range 2 {
				c.advance(time.Minute)
				m.Tick()
			}
		}, []Kind{KindClone}, Critical},
		{"a dead connection left behind after a move", func(m *Monitor, c *clock) {
			m.Connect("d1", "d1-a", addrA)
			m.Connect("d1", "d1-b", addrB)
			c.advance(time.Minute)
			m.Tick()
			m.Disconnect("d1", "d1-a")
			for range 3 {
				c.advance(time.Minute)
				m.Tick()
			}
		}, nil, 0},
		{"client id taken back and forth", func(m *Monitor, c *clock) {
			m.Connect("d1", "d1", addrA)
			m.Connect("d1", "d1", addrB)
			m.Connect("d1", "d1", addrA)
		}, []Kind{KindTakeover}, Critical},
		{"client id taken over once by a device that moved", func(m *Monitor, c *clock) {
			m.Connect("d1", "d1", addrA)
			m.Connect("d1", "d1", addrB)
		}, nil, 0},
		{"reconnects from the same place", func(m *Monitor, c *clock) {
			for range 5 {
				m.Connect("d1", "d1", addrA)
				m.Disconnect("d1", "d1")
				c.advance(time.Hour)
			}
		}, nil, 0},
		{"a settled device at a new address", func(m *Monitor, c *clock) {
			for range 3 {
				m.Connect("d1", "d1", addrA)
				m.Disconnect("d1", "d1")
				c.advance(time.Hour)
			}
			m.Connect("d1", "d1", addrB)
		}, []Kind{KindNewAddress}, Info},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, c := newTestMonitor(t, Config{})
			tc.drive(m, c)
			es := drain(m)
			if got := raisedKinds(es); !slices.Equal(got, tc.want) {
				t.Fatalf("raised %v; want %v", got, tc.want)
			}
			if tc.want != nil && es[0].alarm.Severity != tc.sev {
				t.Errorf("severity %v; want %v", es[0].alarm.Severity, tc.sev)
			}
		})
	}
}

// An alarm clears only after ClearAfter good windows in a row, and its
// numbers say what was seen against what was declared.
func TestRaiseAndClear(t *testing.T) {
	m, c := newTestMonitor(t, Config{RaiseAfter: 2, ClearAfter: 3})
	r := Reading{Device: "d1", Stream: "power", Size: 40, PerMinute: 6}
	spread(m, c, 600, r)
	if es := drain(m); len(es) != 0 {
		t.Fatalf("raised after one window: %+v", es)
	}
	spread(m, c, 600, r)
	es := drain(m)
	if len(es) != 1 || es[0].op != opRaise {
		t.Fatalf("after two windows: %+v; want one raise", es)
	}
	a := es[0].alarm
	if a.Observed != 600 || a.Limit != 12 || a.Stream != "power" || a.Device != "d1" {
		t.Errorf("alarm numbers %+v; want 600 seen against a limit of 12 on power", a)
	}
	if got := m.Active("d1"); len(got) != 1 || got[0].Kind != KindDeclaredRate {
		t.Errorf("Active = %+v", got)
	}
	for i := range 3 {
		if es := drain(m); len(es) != 0 {
			t.Fatalf("cleared after %d good windows", i)
		}
		spread(m, c, 6, r)
	}
	if es := drain(m); len(es) != 1 || es[0].op != opClear {
		t.Fatalf("after three good windows: %+v; want one clear", es)
	}
	if got := m.Active("d1"); len(got) != 0 {
		t.Errorf("still active: %+v", got)
	}
}

// A learned baseline counts only after warm-up, then flags a stream that
// suddenly sends far more, or far larger messages, than it learned.
func TestLearnedBaseline(t *testing.T) {
	tests := []struct {
		name   string
		warmUp int
		n      int // readings per window after warm-up
		size   int
		want   []Kind
	}{
		{"same as learned", 30, 10, 40, nil},
		{"ten times the rate", 30, 100, 40, []Kind{KindUnusualRate}},
		{"ten times the size", 30, 10, 400, []Kind{KindUnusualSize}},
		{"ten times the rate before warm-up ends", 60, 100, 40, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, c := newTestMonitor(t, Config{WarmUp: tc.warmUp})
			// No declared profile: only the learned baseline can see it.
			r := Reading{Device: "d1", Stream: "level", Size: 40}
			for i := range 40 {
				r.Size = 38 + i%5
				spread(m, c, 9+i%3, r)
			}
			if es := drain(m); len(es) != 0 {
				t.Fatalf("alarm during warm-up: %+v", es)
			}
			r.Size = tc.size
			for range 3 {
				spread(m, c, tc.n, r)
			}
			if got := raisedKinds(drain(m)); !slices.Equal(got, tc.want) {
				t.Fatalf("raised %v; want %v", got, tc.want)
			}
		})
	}
}

// Several devices of one type in trouble in the same window is a wave.
func TestFleetWave(t *testing.T) {
	tests := []struct {
		name    string
		devices int
		flood   int
		want    bool
	}{
		{"three of four", 4, 3, true},
		{"one of four", 4, 1, false},
		{"three of ten", 10, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, c := newTestMonitor(t, Config{})
			ids := make([]string, tc.devices)
			for i := range ids {
				ids[i] = string(rune('a'+i)) + "1"
				m.Reading(Reading{Device: ids[i], Type: "camera", Stream: "motion", Size: 30, PerMinute: 10})
			}
			for range 3 {
				for i, id := range ids {
					n := 2
					if i < tc.flood {
						n = 500
					}
					for range n {
						m.Reading(Reading{Device: id, Type: "camera", Stream: "motion", Size: 30, PerMinute: 10})
					}
				}
				c.advance(time.Minute)
				m.Tick()
			}
			got := slices.Contains(raisedKinds(drain(m)), KindWave)
			if got != tc.want {
				t.Fatalf("wave raised = %v; want %v", got, tc.want)
			}
			if got && len(m.Waves()) != 1 {
				t.Errorf("Waves = %+v", m.Waves())
			}
		})
	}
}
