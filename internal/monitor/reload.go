package monitor

import (
	"context"
	"fmt"
)

// Reload makes the action per severity and the holds in memory those kept
// in the store, for changes made by another hub node sharing it: the
// admin's choice of actions is restored (as Load does), new holds are
// added and released ones are lifted, and each device whose hold came or
// went is told on its control topic, as when this node decides.
func (m *Monitor) Reload(ctx context.Context) error {
	if err := m.loadPolicy(ctx); err != nil {
		return err
	}
	if m.cfg.Store == nil {
		return nil
	}
	qs, err := m.cfg.Store.Quarantines(ctx)
	if err != nil {
		return fmt.Errorf("reload quarantines: %w", err)
	}
	held := make(map[string]bool, len(qs))
	for _, q := range qs {
		held[q.DeviceID] = true
		_, had := m.restricted.Load(q.DeviceID)
		m.hold(q, 0)
		if !had && !q.RateLimited {
			m.control(q.DeviceID, true, Kind(q.Kind))
		}
	}
	m.restricted.Range(func(k, v any) bool {
		id := k.(string)
		if !held[id] && m.restricted.CompareAndDelete(k, v) {
			m.nRestricted.Add(-1)
			if v.(*restriction).quarantined.Load() {
				m.control(id, false, "")
			}
		}
		return true
	})
	return nil
}
