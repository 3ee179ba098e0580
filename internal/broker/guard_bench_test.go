package broker

import (
	"bytes"
	"testing"
)

// BenchmarkInSizesFit measures the packet-size scan guardConn.Read runs on
// every read after the CONNECT, over what mochi's read loop typically gets
// in one read at full speed: a 2 KiB buffer of 100-byte QoS 0 PUBLISH
// packets. Compare ns/packet with the ~6.5 µs the broker spends per message.
func BenchmarkInSizesFit(b *testing.B) {
	pk := publishPacket("d/dev-1/s/bench", bytes.Repeat([]byte{'x'}, 100))
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

// publishPacket encodes a QoS 0 PUBLISH of payload to topic.
func publishPacket(topic string, payload []byte) []byte {
	body := []byte{byte(len(topic) >> 8), byte(len(topic))}
	body = append(body, topic...)
	body = append(body, payload...)
	out := []byte{0x30}
	for n := len(body); ; {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}
