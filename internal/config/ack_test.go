package config

import (
	"testing"
	"time"
)

func TestAckWindow(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"commit", 0, true},
		{"", 0, true},
		{"durable-within=10ms", 10 * time.Millisecond, true},
		{"durable-within=1s", time.Second, true},
		{"durable-within=0s", 0, false},
		{"durable-within=1h", 0, false},
		{"durable-within=soon", 0, false},
		{"queued", 0, false},
	} {
		got, err := AckWindow(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("AckWindow(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}
