package broker

import "testing"

// TestInSizes checks the fixed-header follower behind the per-connection
// packet limit, with packets split anywhere across reads.
func TestInSizes(t *testing.T) {
	// Three packets: PINGREQ (2 bytes), a PUBLISH of remaining length 200
	// (a two-byte length: 0xc8 0x01), and a PUBLISH of remaining length 5.
	stream := []byte{0xc0, 0}
	stream = append(stream, 0x30, 0xc8, 0x01)
	stream = append(stream, make([]byte, 200)...)
	stream = append(stream, 0x30, 5, 1, 2, 3, 4, 5)
	for _, tc := range []struct {
		limit int
		fit   bool
	}{{0, true}, {201, true}, {200, false}, {1 << 20, true}} {
		for split := 1; split <= len(stream); split++ {
			var s inSizes
			ok := true
			for b := stream; len(b) > 0 && ok; {
				k := min(split, len(b))
				ok = s.fit(b[:k], tc.limit)
				b = b[k:]
			}
			if ok != tc.fit {
				t.Fatalf("limit %d, reads of %d bytes: fit %v, want %v", tc.limit, split, ok, tc.fit)
			}
			if ok && (s.left != 0 || s.nh != 0) {
				t.Fatalf("limit %d, reads of %d bytes: ended mid-packet (%d left, %d header bytes)", tc.limit, split, s.left, s.nh)
			}
		}
	}
}
