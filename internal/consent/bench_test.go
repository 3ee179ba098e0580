package consent

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkAllowed measures the per-reading question with 1,000 devices
// loaded (3,000-odd streams), some with explicit decisions.
func BenchmarkAllowed(b *testing.B) {
	devices := map[string]string{}
	types := []string{"wearable", "smart-meter", "thermostat", "door-sensor", "motion-camera"}
	for i := range 1000 {
		devices[fmt.Sprintf("dev_%04d", i)] = types[i%len(types)]
	}
	mf := newFakeManifests(b, devices)
	svc := newService(b, openDB(b, filepath.Join(b.TempDir(), "candor.db")), mf)
	ids := make([]string, 0, len(devices))
	for id := range devices {
		ids = append(ids, id)
	}
	if err := svc.Refresh(context.Background(), ids...); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Set(context.Background(), Change{AccountID: "a", DeviceID: "dev_0000", Stream: "heart_rate",
		Purpose: "dpv:ResearchAndDevelopment", Recipient: research, On: true}); err != nil {
		b.Fatal(err)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := svc.Allowed("dev_0000", "heart_rate"); !d.Collect {
				b.Fatal("not collected")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				_ = svc.Allowed(ids[i%len(ids)], "power")
				i++
			}
		})
	})
}
