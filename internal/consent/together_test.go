package consent

import (
	"context"
	"slices"
	"testing"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
)

// withSupplier returns a copy of a template whose stream also goes to the
// energy supplier, so a recipient can get streams of several device types.
func withSupplier(t *testing.T, typ, stream string) *manifest.Manifest {
	t.Helper()
	m := *templates(t)[typ]
	m.Streams = nil
	for _, st := range templates(t)[typ].Streams {
		c := *st
		if c.Name == stream {
			c.Recipients = append(slices.Clone(c.Recipients), manifest.Recipient{Name: supplier, Role: "dpv:ThirdParty",
				Purpose: "candor:HomeSecurity", Identifiable: "linked", Retention: dur(t, "P1Y"), Contact: "mailto:x@example.invalid"})
		}
		m.Streams = append(m.Streams, &c)
	}
	return &m
}

// TestTogether checks the warning before sharing: what the recipient
// could learn from the household with the new stream and what it already
// gets, by the shipped rules and by the door sensor's own rule.
func TestTogether(t *testing.T) {
	f := newFixture(t)
	const door, camera = "dev_door", "dev_camera"
	f.mf.set(door, &catalog.Entry{Version: 1, Manifest: withSupplier(t, "door-sensor", "contact")})
	f.mf.set(camera, &catalog.Entry{Version: 1, Manifest: withSupplier(t, "motion-camera", "motion")})
	ids := []string{door, meter, camera}
	names := map[string]string{door: "Front door", meter: "Meter", camera: "Porch camera"}
	doorRule := templates(t)["door-sensor"].RevealsAcross[0].Reveals
	reveals := func() []string {
		var out []string
		for _, tg := range f.svc.Together(context.Background(), ids, names, meter, "energy", supplier) {
			out = append(out, tg.Reveals)
		}
		return out
	}
	if got := reveals(); len(got) != 0 {
		t.Errorf("the supplier gets nothing else yet: %v, want no warning", got)
	}
	f.set(t, camera, "motion", "candor:HomeSecurity", supplier, true)
	got := reveals()
	if !slices.ContainsFunc(got, func(s string) bool { return s == "your daily routine: when you get up, cook, go out and come back" }) {
		t.Errorf("with the camera's motion: %v, want the shipped routine rule", got)
	}
	if slices.Contains(got, doorRule) {
		t.Errorf("the door's rule applies without the door's data: %v", got)
	}
	f.set(t, door, "contact", "candor:HomeSecurity", supplier, true)
	if got := reveals(); !slices.Contains(got, doorRule) {
		t.Errorf("with the door's and the camera's data: %v, want the door's own rule", got)
	}
	for _, tg := range f.svc.Together(context.Background(), ids, names, meter, "energy", supplier) {
		if tg.Reveals == doorRule && !slices.Equal(slices.Sorted(slices.Values(tg.Devices)), []string{"Front door", "Meter", "Porch camera"}) {
			t.Errorf("the door's rule names %v", tg.Devices)
		}
	}
}
