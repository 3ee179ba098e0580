package monitor

import (
	"context"
	"fmt"
)

// Reload makes the holds in memory those kept in the store, for holds
// placed or released by another hub node sharing it: new ones are added
// (as Load does) and released ones are lifted.
func (m *Monitor) Reload(ctx context.Context) error {
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
		m.hold(q, 0)
	}
	m.restricted.Range(func(k, v any) bool {
		if !held[k.(string)] && m.restricted.CompareAndDelete(k, v) {
			m.nRestricted.Add(-1)
		}
		return true
	})
	return nil
}
