package manifest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// What streams of different device types reveal together is declared in
// a rules file shipped with the hub, by personal-data category, so that a
// door sensor, a camera and a smart meter, each harmless alone, are seen
// together for what they show: when people are home.

//go:embed inference.json
var inferenceJSON []byte

// InferenceRule says what a set of personal-data categories reveals when
// streams of at least two device types carry them together.
type InferenceRule struct {
	Categories []string `json:"categories"`
	Reveals    string   `json:"reveals"`
	// From is the device type whose manifest declares the rule
	// (candor:revealsAcross); empty for the shipped rules. A declared
	// rule applies only where a device of that type carries one of its
	// categories.
	From string `json:"from,omitempty"`
	// DeviceTypes, when set, are the other device types the rule is
	// about: each must carry one of its categories, and only streams of
	// these types and From count.
	DeviceTypes []string `json:"deviceTypes,omitempty"`
}

// Rules returns the shipped rules followed by the ones the given
// manifests declare, each once, however many devices share a manifest.
func Rules(ms ...*Manifest) ([]InferenceRule, error) {
	shipped, err := InferenceRules()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(shipped)
	for _, m := range ms {
		if m == nil {
			continue
		}
		for _, r := range m.RevealsAcross {
			if !slices.ContainsFunc(out, func(o InferenceRule) bool { return sameRule(o, r) }) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func sameRule(a, b InferenceRule) bool {
	return a.From == b.From && a.Reveals == b.Reveals &&
		slices.Equal(slices.Sorted(slices.Values(a.Categories)), slices.Sorted(slices.Values(b.Categories))) &&
		slices.Equal(slices.Sorted(slices.Values(a.DeviceTypes)), slices.Sorted(slices.Values(b.DeviceTypes)))
}

// counts reports whether a stream of device type t may carry the rule.
func (r InferenceRule) counts(t string) bool {
	return len(r.DeviceTypes) == 0 || t == r.From || slices.Contains(r.DeviceTypes, t)
}

// present reports whether the device types carrying the rule's
// categories are enough for it: at least two, including From and every
// one of DeviceTypes.
func (r InferenceRule) present(types map[string]bool) bool {
	if len(types) < 2 || (r.From != "" && !types[r.From]) {
		return false
	}
	for _, t := range r.DeviceTypes {
		if !types[t] {
			return false
		}
	}
	return true
}

var inferenceRules = sync.OnceValues(func() ([]InferenceRule, error) {
	var f struct {
		Rules []InferenceRule `json:"rules"`
	}
	if err := json.Unmarshal(inferenceJSON, &f); err != nil {
		return nil, fmt.Errorf("inference.json: %w", err)
	}
	for i, r := range f.Rules {
		if len(r.Categories) == 0 || r.Reveals == "" {
			return nil, fmt.Errorf("inference.json: rules[%d]: needs categories and reveals", i)
		}
	}
	return f.Rules, nil
})

// InferenceRules returns the shipped rules.
func InferenceRules() ([]InferenceRule, error) { return inferenceRules() }

// TypedStream is one stream of one device, with the personal-data
// categories its manifest declares.
type TypedStream struct {
	DeviceID, Device, DeviceType string
	Stream, Title                string
	Categories                   []string
}

// Finding is a rule that applies to a set of streams, with the streams
// that carry its categories.
type Finding struct {
	Reveals string
	Streams []TypedStream
}

// RevealedTogether returns the rules that apply to streams: every
// category of the rule is carried by some stream, and those streams come
// from at least two device types (for a declared rule: its own type and
// every type it names). Each finding lists the streams that carry its
// categories.
func RevealedTogether(rules []InferenceRule, streams []TypedStream) []Finding {
	var out []Finding
	for _, r := range rules {
		var carrying []TypedStream
		covered := true
		for _, c := range r.Categories {
			found := false
			for _, s := range streams {
				if r.counts(s.DeviceType) && slices.Contains(s.Categories, c) {
					found = true
					if !slices.ContainsFunc(carrying, func(x TypedStream) bool { return x.DeviceID == s.DeviceID && x.Stream == s.Stream }) {
						carrying = append(carrying, s)
					}
				}
			}
			covered = covered && found
		}
		types := map[string]bool{}
		for _, s := range carrying {
			types[s.DeviceType] = true
		}
		if covered && r.present(types) {
			out = append(out, Finding{Reveals: r.Reveals, Streams: carrying})
		}
	}
	return out
}
