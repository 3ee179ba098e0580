package hub

import (
	"context"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/cluster"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/store/sqlite"
	"github.com/candor-iot/candor/internal/store/sqlite/sqlitetest"
)

// readCounter is the real store, counting the monitor's reads of its
// holds.
type readCounter struct {
	*sqlite.DB
	reads int
}

func (s *readCounter) Quarantines(ctx context.Context) ([]store.Quarantine, error) {
	s.reads++
	return s.DB.Quarantines(ctx)
}

// A round that carries the holds of many devices (a flood held them in
// one window) and the monitor's actions rereads the monitor's table once,
// not once per change, and still installs every hold.
func TestApplyChangesRereadsTheMonitorOnce(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlitetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC)
	if err := st.CreateHousehold(ctx, store.Household{ID: "h1", Name: "Home", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	ids := []string{"d1", "d2", "d3", "d4"}
	var changes []cluster.Change
	for _, id := range ids {
		if err := st.CreateDevice(ctx, store.Device{ID: id, HouseholdID: "h1", Name: id, Type: "smart-meter",
			SecretHash: "x", CredentialSetAt: now, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutQuarantine(ctx, store.Quarantine{DeviceID: id, Kind: "declared_rate", Severity: "critical", Since: now}); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, cluster.Change{Kind: cluster.KindHold, ID: id})
	}
	changes = append(changes, cluster.Change{Kind: cluster.KindMonitorActions})
	rc := &readCounter{DB: st}
	h := &Hub{mon: monitor.New(monitor.Config{Store: rc, Actions: st})}
	h.nodeReady.Store(true)
	if err := h.applyChanges(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if rc.reads != 1 {
		t.Errorf("a round of %d hold changes read the holds %d times; want once", len(ids), rc.reads)
	}
	for _, id := range ids {
		if v := h.mon.Admit(id); v != monitor.Quarantined {
			t.Errorf("%s after the round: %v; want quarantined", id, v)
		}
	}
}
