package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// Reload makes the action per severity and the holds in memory those kept
// in the store, for changes made by another hub node sharing it: the
// admin's choice of actions is restored (as Load does), each stored hold
// is installed as it is stored, and released ones are lifted. A device
// connected here is told on its control topic whenever it becomes
// quarantined, its quarantine changes, or it stops being quarantined, as
// when this node decides.
func (m *Monitor) Reload(ctx context.Context) error {
	if err := m.loadPolicy(ctx); err != nil {
		return err
	}
	if m.cfg.Store == nil {
		return nil
	}
	// From the read to the last change in memory: a hold this node places
	// or lifts meanwhile waits, so what was read is not stale by then.
	m.holds.Lock()
	defer m.holds.Unlock()
	qs, err := m.cfg.Store.Quarantines(ctx)
	if err != nil {
		return fmt.Errorf("reload quarantines: %w", err)
	}
	held := make(map[string]bool, len(qs))
	for _, q := range qs {
		held[q.DeviceID] = true
		changed, wasQuarantined := m.install(q)
		// Unchanged: nothing to tell, and the bucket is not refilled. A
		// rate limit is not announced, unless it ends a quarantine.
		if changed && (!q.RateLimited || wasQuarantined) {
			m.control(q.DeviceID)
		}
	}
	m.restricted.Range(func(k, v any) bool {
		id := k.(string)
		if !held[id] && m.restricted.CompareAndDelete(k, v) {
			m.nRestricted.Add(-1)
			if v.(*restriction).quarantined.Load() {
				m.control(id)
			}
		}
		return true
	})
	return nil
}

// install makes the device's hold in memory the stored hold q, as it is.
// A stored row is final: the monitor that decided merged it with what it
// held already (hold), so merging again here would undo a change made
// elsewhere (an advisory lifted by a fix, a quarantine released and
// followed by a rate limit). It reports whether the hold changed, and
// whether the device was quarantined before. holds must be held.
func (m *Monitor) install(q store.Quarantine) (changed, wasQuarantined bool) {
	q = normalRate(q)
	v, loaded := m.restricted.LoadOrStore(q.DeviceID, &restriction{})
	r := v.(*restriction)
	if !loaded {
		m.nRestricted.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	wasQuarantined = r.quarantined.Load()
	if loaded && sameHold(r.q, wasQuarantined, q) {
		// Installing it again would refill a rate limit's bucket at every
		// reload (any hold changed anywhere).
		return false, wasQuarantined
	}
	if q.RateLimited {
		r.rate = q.Rate
		r.burst = max(r.rate*10, 5)
		r.tokens = r.burst
	}
	r.quarantined.Store(!q.RateLimited)
	r.q = q
	return true, wasQuarantined
}

// normalRate gives a rate limit kept with no rate (a row stored before the
// rate was kept) the rate hold gives it in memory: one a second.
func normalRate(q store.Quarantine) store.Quarantine {
	if q.RateLimited && q.Rate <= 0 {
		q.Rate = 1
	}
	return q
}

// sameHold reports whether the hold in memory (have, quarantined) is
// already the stored hold q (its start aside, which the store may keep
// less precisely, and a missing rate read as hold reads it).
func sameHold(have store.Quarantine, quarantined bool, q store.Quarantine) bool {
	have, q = normalRate(have), normalRate(q)
	have.Since, q.Since = time.Time{}, time.Time{}
	return have == q && quarantined == !q.RateLimited
}
