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
// from at least two device types. Each finding lists the streams that
// carry its categories.
func RevealedTogether(rules []InferenceRule, streams []TypedStream) []Finding {
	var out []Finding
	for _, r := range rules {
		var carrying []TypedStream
		covered := true
		for _, c := range r.Categories {
			found := false
			for _, s := range streams {
				if slices.Contains(s.Categories, c) {
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
		if covered && len(types) >= 2 {
			out = append(out, Finding{Reveals: r.Reveals, Streams: carrying})
		}
	}
	return out
}
