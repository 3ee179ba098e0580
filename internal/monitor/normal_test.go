package monitor

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/sim"
)

// The five demo kinds, behaving normally (with their daily rhythm) for a
// simulated day, raise no alarm with the default settings. The day runs
// on the injected clock, so it takes moments, and "no alarm" is checked
// after every window has closed, not after a wait.
func TestNormalDayRaisesNoAlarm(t *testing.T) {
	tmpl, err := manifest.Templates()
	if err != nil {
		t.Fatal(err)
	}
	const perKind = 3
	for _, kind := range sim.KindNames() {
		t.Run(kind, func(t *testing.T) {
			man := tmpl[kind]
			if man == nil {
				t.Fatalf("no manifest template for kind %s", kind)
			}
			m, c := newTestMonitor(t, Config{})
			type ev struct {
				t      time.Time
				device string
				stream string
				size   int
			}
			var evs []ev
			for i := range perKind {
				id := fmt.Sprintf("%s_%d", kind, i)
				err := sim.Trace(kind, uint64(i+1), t0, 24*time.Hour, func(at time.Time, stream string, p []byte) {
					evs = append(evs, ev{at, id, stream, len(p)})
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			// Merge the devices' traces in time order, as the hub sees them.
			slices.SortStableFunc(evs, func(a, b ev) int { return a.t.Compare(b.t) })
			for i := range perKind {
				m.Connect(fmt.Sprintf("%s_%d", kind, i), fmt.Sprintf("%s_%d", kind, i), addrA)
			}
			next := t0.Add(m.cfg.Window)
			n := 0
			for _, e := range evs {
				for !e.t.Before(next) {
					c.t = next
					m.Tick()
					next = next.Add(m.cfg.Window)
				}
				c.t = e.t
				s := man.Stream(e.stream)
				if s == nil {
					t.Fatalf("stream %s not in the %s manifest", e.stream, kind)
				}
				m.Reading(Reading{Device: e.device, Type: kind, Stream: e.stream, Size: e.size,
					PerMinute: s.MaxPerMinute, MaxBytes: s.MaxPayloadBytes})
				n++
			}
			c.t = next
			m.Tick()
			if n < perKind*1000 {
				t.Fatalf("only %d readings in a day: the trace is not the demo's traffic", n)
			}
			for _, e := range drain(m) {
				t.Errorf("false alarm: %+v", e.alarm)
			}
		})
	}
}
