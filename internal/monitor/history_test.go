package monitor

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// history is a History in memory.
type history struct {
	ws     []store.MonitorWindow
	purged []time.Time
}

func (h *history) AddMonitorWindows(_ context.Context, ws []store.MonitorWindow) error {
	h.ws = append(h.ws, ws...)
	return nil
}

func (h *history) MonitorWindows(_ context.Context, id string, since time.Time) ([]store.MonitorWindow, error) {
	var out []store.MonitorWindow
	for _, w := range h.ws {
		if w.DeviceID == id && !w.Start.Before(since) {
			out = append(out, w)
		}
	}
	return out, nil
}

func (h *history) PurgeMonitorWindows(_ context.Context, before time.Time) (int64, error) {
	h.purged = append(h.purged, before)
	return 0, nil
}

// Each closed window with anything in it becomes one stored row of counts;
// quiet windows store nothing; held-back publishes count as refused.
func TestHistoryKeepsWindowCounts(t *testing.T) {
	h := &history{}
	m, c := newTestMonitor(t, Config{History: h})
	r := Reading{Device: "d1", Type: "plug", Stream: "power", Size: 40, PerMinute: 6, MaxBytes: 256}
	m.Connect("d1", "d1", addrA)
	m.Reading(r)
	big := r
	big.Size = 100
	m.Reading(big)
	m.Reading(Reading{Device: "d1", Undeclared: true, Size: 10})
	m.Denied("d1")
	c.advance(time.Minute)
	m.Tick()
	// A quiet window, then one in which the device is held back.
	c.advance(time.Minute)
	m.Tick()
	m.hold(storeQuarantine("d1"), 0)
	for range 3 {
		m.Admit("d1")
	}
	c.advance(time.Minute)
	m.Tick()
	m.Flush(t.Context())

	want := []store.MonitorWindow{
		{DeviceID: "d1", Start: t0, Length: time.Minute, Readings: 2, Bytes: 140, MaxBytes: 100, Refused: 1, Probes: 1, Connects: 1},
		{DeviceID: "d1", Start: t0.Add(2 * time.Minute), Length: time.Minute, Refused: 3},
	}
	if !reflect.DeepEqual(h.ws, want) {
		t.Fatalf("stored windows:\n%+v\nwant\n%+v", h.ws, want)
	}
	if got, err := m.Recent(t.Context(), "d1", t0.Add(time.Minute)); err != nil || !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("Recent = %+v, %v; want the second window", got, err)
	}
	if len(h.purged) != 1 || !h.purged[0].Equal(c.t.Add(-DefaultKeep)) {
		t.Errorf("purged before %v; want once, before %v (30 days ago)", h.purged, c.t.Add(-DefaultKeep))
	}
	// The next write within the hour stores but does not purge again.
	m.Flush(t.Context())
	if len(h.purged) != 1 {
		t.Errorf("purged %d times; want once an hour", len(h.purged))
	}
}
