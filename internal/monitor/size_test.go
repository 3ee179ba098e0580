package monitor

import (
	"testing"

	"github.com/candor-iot/candor/internal/testsupport/allocsize"
)

// TestDeviceStateSize keeps a device's record within the runtime's
// 640-byte size class: the monitor holds one for every device connected,
// and the next class up is 704 bytes. It measures what the allocator
// really spends, so the 8-byte header the runtime puts before objects
// over 512 bytes that hold pointers is counted. (The record was 824
// bytes, in the 896-byte class, with two streams inline.) See
// inlineStreams.
func TestDeviceStateSize(t *testing.T) {
	const class = 640
	if per := allocsize.Of[deviceState](1000); per > class {
		t.Errorf("a deviceState takes %d bytes of heap, over the %d-byte size class", per, class)
	}
}
