package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
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
		v, had := m.restricted.Load(q.DeviceID)
		if had && v.(*restriction).same(q) {
			// Unchanged: installing it again would refill a rate
			// limit's bucket at every reload (any hold changed anywhere).
			continue
		}
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

// same reports whether the restriction is already the hold q (its start
// aside, which the store may keep less precisely).
func (r *restriction) same(q store.Quarantine) bool {
	r.mu.Lock()
	have := r.q
	r.mu.Unlock()
	have.Since, q.Since = time.Time{}, time.Time{}
	return have == q && r.quarantined.Load() == !q.RateLimited
}
