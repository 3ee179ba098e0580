package broker

import (
	"bytes"
	"testing"

	"github.com/candor-iot/candor/internal/broker/mqtttest"
)

// BenchmarkInSizesFit measures the packet-size scan guardConn.Read runs on
// every read after the CONNECT, over what mochi's read loop typically gets
// in one read at full speed: a 2 KiB buffer of 100-byte QoS 0 PUBLISH
// packets. Compare ns/packet with the ~6.5 µs the broker spends per message.
func BenchmarkInSizesFit(b *testing.B) {
	pk := mqtttest.Publish(4, "d/dev-1/s/bench", bytes.Repeat([]byte{'x'}, 100), 0, 0, false)
	var stream []byte
	for len(stream) < 2048 {
		stream = append(stream, pk...)
	}
	packets := float64(len(stream)) / float64(len(pk))
	var s inSizes
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if !s.fit(stream, 1<<20) {
			b.Fatal("refused a packet within the limit")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/packets, "ns/packet")
}
