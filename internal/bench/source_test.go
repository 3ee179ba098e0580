package bench

import (
	"net"
	"testing"
)

func TestIdleSource(t *testing.T) {
	for _, tc := range []struct {
		addr string
		k    int
		want net.IP
	}{
		{"127.0.0.1:1883", 0, net.IPv4(127, 0, 0, 2)},
		{"127.0.0.1:1883", connsPerSource - 1, net.IPv4(127, 0, 0, 2)},
		{"127.0.0.1:1883", connsPerSource, net.IPv4(127, 0, 0, 3)},
		{"[::1]:1883", 0, nil},
		{"192.0.2.1:1883", 0, nil},
	} {
		if got := idleSource(tc.addr, tc.k); !got.Equal(tc.want) {
			t.Errorf("idleSource(%q, %d) = %v, want %v", tc.addr, tc.k, got, tc.want)
		}
	}
}
