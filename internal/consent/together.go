package consent

import (
	"context"
	"slices"

	"github.com/candor-iot/candor/internal/manifest"
)

// Together is something a recipient could learn from a household once it
// also gets one more stream, that none of the streams shows alone.
type Together struct {
	// Devices names the devices whose streams show it together, each
	// once, in the order the rule's categories find them.
	Devices []string `json:"devices"`
	Reveals string   `json:"reveals"`
}

// Together says what recipient could learn from the household's devices
// (names maps their ids to their names, in the order given by ids) once
// it gets stream of deviceID as well as what it gets now: the findings of
// the shipped rules and of the devices' manifests (candor:revealsAcross)
// that need that stream.
func (s *Service) Together(ctx context.Context, ids []string, names map[string]string, deviceID, stream, recipient string) []Together {
	var streams []manifest.TypedStream
	var ms []*manifest.Manifest
	for _, id := range ids {
		dt, err := s.table(ctx, id)
		if err != nil {
			continue
		}
		m := dt.entry.Manifest
		if !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
		for _, st := range m.Streams {
			gets := (id == deviceID && st.Name == stream) || slices.Contains(dt.lookup(st.Name).Recipients, recipient)
			if !st.Personal() || !gets {
				continue
			}
			streams = append(streams, manifest.TypedStream{DeviceID: id, Device: names[id], DeviceType: m.DeviceType,
				Stream: st.Name, Title: st.Title, Categories: st.PersonalData})
		}
	}
	rules, err := manifest.Rules(ms...)
	if err != nil {
		s.log.Error("consent: inference rules not read", "err", err)
		return nil
	}
	var out []Together
	for _, f := range manifest.RevealedTogether(rules, streams) {
		if !slices.ContainsFunc(f.Streams, func(t manifest.TypedStream) bool { return t.DeviceID == deviceID && t.Stream == stream }) {
			continue
		}
		var devs []string
		for _, t := range f.Streams {
			if !slices.Contains(devs, t.Device) {
				devs = append(devs, t.Device)
			}
		}
		out = append(out, Together{Devices: devs, Reveals: f.Reveals})
	}
	return out
}
