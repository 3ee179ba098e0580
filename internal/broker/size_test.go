package broker

import (
	"runtime"
	"testing"
)

// TestGuardConnSize keeps a connection's guardConn within the runtime's
// 320-byte size class (the next is 352): one is held for every
// connection, idle or not. It measures what the allocator spends. See
// guardConn.writeBy.
func TestGuardConnSize(t *testing.T) {
	const n, class = 1000, 320
	keep := make([]*guardConn, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = new(guardConn)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > class {
		t.Errorf("a guardConn takes %d bytes of heap, over the %d-byte size class", per, class)
	}
}
