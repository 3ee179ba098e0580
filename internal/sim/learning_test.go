package sim

import (
	"math/rand/v2"
	"testing"
	"time"
)

// nightOf runs a thermostat from 01:00 to 06:29 in one-minute steps,
// with the hub's switches for its temperature stream, and reports the
// first time its setpoint went up to comfort before the program does
// (zero if never) and the warm-up rate it ended with.
func nightOf(t *testing.T, seed uint64, learn, decide bool) (time.Time, float64) {
	t.Helper()
	start := time.Date(2026, 1, 12, 1, 0, 0, 0, time.UTC)
	m := newThermostat(rand.New(rand.NewPCG(seed, 1)), start).(*thermostat)
	m.setLearning("temperature", learn, decide)
	m.setLearning("heating", true, true) // other streams do not switch it
	var early time.Time
	for now := start; hourOf(now) < comfortStart; now = now.Add(time.Minute) {
		m.advance(now)
		if early.IsZero() && m.setpoint == m.comfort {
			early = now
		}
	}
	return early, m.warmRate
}

// The thermostat learns how fast its room warms up and, from that, starts
// heating before 06:30 so the room is warm on time. Told "learn": false
// it forgets the rate and keeps to the plain program; told "decide":
// false it still learns but no longer acts on it by itself.
func TestThermostatHonoursLearningSwitch(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		early, rate := nightOf(t, seed, true, true)
		if early.IsZero() || rate <= 0 {
			t.Fatalf("seed %d, learning on: no preheating before 06:30 (rate %.2f)", seed, rate)
		}
		if h := hourOf(early); h < comfortStart-3 {
			t.Errorf("seed %d: preheating started at %s, too early", seed, early.Format("15:04"))
		}
		if early, rate := nightOf(t, seed, false, true); !early.IsZero() || rate != 0 {
			t.Errorf("seed %d, learn false: preheated at %s, rate %.2f; want the plain program and nothing learned", seed, early.Format("15:04"), rate)
		}
		if early, rate := nightOf(t, seed, true, false); !early.IsZero() || rate <= 0 {
			t.Errorf("seed %d, decide false: preheated at %s, rate %.2f; want learning without acting on it", seed, early.Format("15:04"), rate)
		}
	}
}

// Switching learning off while the thermostat preheats brings the
// setpoint back to the program's at once, and the rate is forgotten.
func TestThermostatStopsPreheatingWhenTold(t *testing.T) {
	start := time.Date(2026, 1, 12, 1, 0, 0, 0, time.UTC)
	m := newThermostat(rand.New(rand.NewPCG(3, 1)), start).(*thermostat)
	now := start
	for ; hourOf(now) < comfortStart && !m.preheating; now = now.Add(time.Minute) {
		m.advance(now)
	}
	if !m.preheating {
		t.Fatal("never preheated")
	}
	m.setLearning("temperature", false, true)
	m.advance(now.Add(time.Minute))
	if m.preheating || m.setpoint != m.eco || m.warmRate != 0 {
		t.Fatalf("after learn false: preheating %v, setpoint %.1f (eco %.1f), rate %.2f", m.preheating, m.setpoint, m.eco, m.warmRate)
	}
}
