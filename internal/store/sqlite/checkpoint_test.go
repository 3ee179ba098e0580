package sqlite

import (
	"testing"
	"time"
)

// The checkpointer copies the WAL after checkpointReadings readings or
// checkpointMaxAge, not at every check: paced ingest rewrites the same
// pages between merge passes, and each checkpoint copies them again
// (issue #19).
func TestCheckpointDue(t *testing.T) {
	for _, c := range []struct {
		readings int64
		since    time.Duration
		want     bool
	}{
		{0, checkpointEvery, false},
		{checkpointReadings - 1, checkpointMaxAge - time.Millisecond, false},
		{checkpointReadings, checkpointEvery, true},
		{0, checkpointMaxAge, true},
		{10, 2 * checkpointMaxAge, true},
	} {
		if got := checkpointDue(c.readings, c.since); got != c.want {
			t.Errorf("checkpointDue(%d, %v) = %v, want %v", c.readings, c.since, got, c.want)
		}
	}
}

// A few paced readings do not make the checkpointer copy the WAL at its
// next checks; enough readings do.
func TestCheckpointerWaitsForReadings(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	db := openTemp(t)
	if err := db.AppendReadings(ctx, historyBatch(10, 0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * checkpointEvery)
	n := db.checkpoints.Load()
	if n != 0 && time.Since(start) < checkpointMaxAge {
		t.Fatalf("%d checkpoints after 10 readings in %v, want none before %v", n, time.Since(start), checkpointMaxAge)
	}
	if err := db.AppendReadings(ctx, historyBatch(checkpointReadings, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for db.checkpoints.Load() == n || db.sinceCheckpoint.Load() >= checkpointReadings {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint after %d readings: %d counted since the last", checkpointReadings+10, db.sinceCheckpoint.Load())
		}
		time.Sleep(checkpointEvery / 2)
	}
}
