package consent

import (
	"fmt"
	"testing"
)

// A change copies only the maps of the devices it touches: the snapshot
// it replaces stays as it was (readers may hold it), the other maps are
// shared, and every device is found in the new one.
func TestSnapshotWithCopiesOnlyTouchedShards(t *testing.T) {
	var tables []*deviceTable
	for i := range 500 {
		tables = append(tables, &deviceTable{id: fmt.Sprintf("dev_%04d", i)})
	}
	old := (&snapshot{}).with(tables, nil)
	for _, dt := range tables {
		if old.get(dt.id) != dt {
			t.Fatalf("%s not found after it was added", dt.id)
		}
	}
	changed := &deviceTable{id: "dev_0007"}
	next := old.with([]*deviceTable{changed, {id: "dev_new_x"}}, []string{"dev_0123"})
	if next.get("dev_0007") != changed || next.get("dev_new_x") == nil || next.get("dev_0123") != nil {
		t.Fatal("the new snapshot does not hold the change")
	}
	if old.get("dev_0007") != tables[7] || old.get("dev_new_x") != nil || old.get("dev_0123") != tables[123] {
		t.Fatal("the change altered the snapshot it replaced")
	}
	touched := map[int]bool{shardOf("dev_0007"): true, shardOf("dev_new_x"): true, shardOf("dev_0123"): true}
	for i := range snapShards {
		shared := fmt.Sprintf("%p", old.shards[i]) == fmt.Sprintf("%p", next.shards[i])
		if touched[i] == shared {
			t.Errorf("shard %d: touched %v, shared %v", i, touched[i], shared)
		}
	}
	if got := len(next.ids()); got != 500 {
		t.Fatalf("%d devices in the new snapshot, want 500", got)
	}
}
