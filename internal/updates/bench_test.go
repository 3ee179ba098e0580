package updates

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRefresh measures one TUF refresh of a repository with 100
// firmware images over HTTP on loopback: warm (the hub's cache is current,
// only root and timestamp are fetched) and cold (an empty cache, the
// whole walk).
func BenchmarkRefresh(b *testing.B) {
	r := newTestRepo(b)
	for i := range 100 {
		name := fmt.Sprintf("thermostat/fw-1.%d.0.bin", i)
		custom := fmt.Appendf(nil, `{"candor":{"deviceType":"thermostat","version":"1.%d.0","notes":"n","security":true}}`, i)
		if err := r.Add(name, firmware("thermostat", name), custom); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Publish(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("warm", func(b *testing.B) {
		c := r.client(b, "thermostat/")
		if _, err := c.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		src := r.source(b, "thermostat/")
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			c, err := NewClient(src, b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := c.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
