package broker

import (
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/allocsize"
)

// TestGuardConnSize keeps a connection's guardConn within the runtime's
// 320-byte size class (the next is 352): one is held for every
// connection, idle or not. It measures what the allocator spends. See
// guardConn.writeBy.
func TestGuardConnSize(t *testing.T) {
	const class = 320
	if per := allocsize.Of[guardConn](1000); per > class {
		t.Errorf("a guardConn takes %d bytes of heap, over the %d-byte size class", per, class)
	}
}
