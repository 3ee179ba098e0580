package monitor

import (
	"testing"
	"unsafe"
)

// TestDeviceStateSize keeps a device's record within the runtime's
// 640-byte size class: the monitor holds one for every device connected,
// and the next class up is 704 bytes (the record was 824 bytes, in the
// 896-byte class, with two streams inline). See inlineStreams.
func TestDeviceStateSize(t *testing.T) {
	if n := unsafe.Sizeof(deviceState{}); n > 640 {
		t.Errorf("deviceState is %d bytes, over the 640-byte size class", n)
	}
}
