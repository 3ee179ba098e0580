package web

import (
	"context"
	"slices"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// togetherView is one thing the household's devices show together that
// no one of them shows alone.
type togetherView struct {
	Devices string // "Front door and Meter"
	Reveals string
}

// householdStreams lists the streams of a household's devices that are
// collected now, with their personal-data categories, and the manifests
// of the household's device types (whose candor:revealsAcross rules join
// the shipped ones). keep, when set, selects streams.
func (s *Server) householdStreams(ctx context.Context, householdID string, keep func(store.Device, *manifest.Stream) bool) ([]manifest.TypedStream, []*manifest.Manifest) {
	devs, err := s.st.Devices(ctx, householdID)
	if err != nil {
		return nil, nil
	}
	var out []manifest.TypedStream
	var ms []*manifest.Manifest
	for _, d := range devs {
		e, _ := s.labelFor(d.Type)
		if e == nil {
			continue
		}
		if !slices.Contains(ms, e.Manifest) {
			ms = append(ms, e.Manifest)
		}
		for _, st := range e.Manifest.Streams {
			if len(st.PersonalData) == 0 || (keep != nil && !keep(d, st)) {
				continue
			}
			out = append(out, manifest.TypedStream{DeviceID: d.ID, Device: d.Name, DeviceType: d.Type,
				Stream: st.Name, Title: st.Title, Categories: st.PersonalData})
		}
	}
	return out, ms
}

// together says what the given streams show together, in plain words,
// by the shipped rules and those the manifests declare. only, when set,
// keeps the findings that involve that device's stream.
func together(streams []manifest.TypedStream, ms []*manifest.Manifest, onlyDevice, onlyStream string) []togetherView {
	rules, err := manifest.Rules(ms...)
	if err != nil {
		return nil
	}
	var out []togetherView
	for _, f := range manifest.RevealedTogether(rules, streams) {
		if onlyDevice != "" && !slices.ContainsFunc(f.Streams, func(t manifest.TypedStream) bool {
			return t.DeviceID == onlyDevice && t.Stream == onlyStream
		}) {
			continue
		}
		var names []string
		for _, t := range f.Streams {
			if !slices.Contains(names, t.Device) {
				names = append(names, t.Device)
			}
		}
		out = append(out, togetherView{Devices: joinAnd(names), Reveals: f.Reveals})
	}
	return out
}

// revealedTogether is what the household's devices, as they collect now,
// show together.
func (s *Server) revealedTogether(ctx context.Context, householdID string) []togetherView {
	collected := func(d store.Device, st *manifest.Stream) bool {
		return s.cfg.Consent == nil || s.cfg.Consent.Allowed(d.ID, st.Name).Collect
	}
	streams, ms := s.householdStreams(ctx, householdID, collected)
	return together(streams, ms, "", "")
}

// sharedTogether is what a recipient could learn from the household once
// it also gets one more stream: the findings that need that stream
// (consent.Service.Together, which the API's confirmation uses too).
func (s *Server) sharedTogether(ctx context.Context, d store.Device, stream, recipient string) []togetherView {
	if s.cfg.Consent == nil {
		return nil
	}
	devs, err := s.st.Devices(ctx, d.HouseholdID)
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(devs))
	names := make(map[string]string, len(devs))
	for _, hd := range devs {
		ids = append(ids, hd.ID)
		names[hd.ID] = hd.Name
	}
	var out []togetherView
	for _, t := range s.cfg.Consent.Together(ctx, ids, names, d.ID, stream, recipient) {
		out = append(out, togetherView{Devices: joinAnd(t.Devices), Reveals: t.Reveals})
	}
	return out
}
