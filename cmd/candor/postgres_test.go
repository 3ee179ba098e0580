package main

import (
	"testing"

	"github.com/candor-iot/candor/internal/store/postgres/pgtest"
)

// TestKillOnPostgresLosesNoAcknowledgedReading kills the hub with
// SIGKILL while a device publishes at QoS 1 as fast as it is
// acknowledged, starts it again on the same database and data directory,
// and finds every acknowledged reading stored.
func TestKillOnPostgresLosesNoAcknowledgedReading(t *testing.T) {
	r := killUnderLoad(t, killRun{store: []string{"--store", pgtest.NewDatabase(t)}, before: 50})
	if len(r.lost) > 0 {
		t.Fatalf("%d of %d acknowledged readings lost after SIGKILL", len(r.lost), len(r.acked))
	}
}
