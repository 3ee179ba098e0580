package monitor

import (
	"github.com/candor-iot/candor/internal/store"
	"net/netip"
	"testing"
	"time"
)

// clock is the monitor's injected time: tests move it by hand, so window
// logic is exact and a simulated day takes no real time.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC)

func newTestMonitor(t testing.TB, cfg Config) (*Monitor, *clock) {
	t.Helper()
	c := &clock{t: t0}
	cfg.Now = c.Now
	return New(cfg), c
}

// drain takes every effect queued so far, without applying it.
func drain(m *Monitor) []effect {
	var out []effect
	for {
		select {
		case e := <-m.effects:
			out = append(out, e)
		default:
			return out
		}
	}
}

func raisedKinds(es []effect) []Kind {
	var ks []Kind
	for _, e := range es {
		if e.op == opRaise {
			ks = append(ks, e.alarm.Kind)
		}
	}
	return ks
}

// spread sends n readings evenly over one window, then closes it.
func spread(m *Monitor, c *clock, n int, r Reading) {
	w := m.cfg.Window
	if n == 0 {
		c.advance(w)
		m.Tick()
		return
	}
	start := c.t
	step := w / time.Duration(n)
	for range n {
		m.Reading(r)
		c.advance(step)
	}
	c.t = start.Add(w) // the steps may not add up to the window exactly
	m.Tick()
}

var (
	addrA = netip.MustParseAddr("192.0.2.10")
	addrB = netip.MustParseAddr("198.51.100.7")
)

func storeQuarantine(id string) store.Quarantine {
	return store.Quarantine{DeviceID: id, Kind: string(KindClone), Severity: "critical", Since: t0}
}
