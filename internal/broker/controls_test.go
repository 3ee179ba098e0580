package broker

import "testing"

func TestMatchTopic(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"candor/d/control/s", "candor/d/control/s", true},
		{"candor/d/control/s", "candor/d/control/t", false},
		{"candor/d/control/+", "candor/d/control/s", true},
		{"candor/d/control/+", "candor/d/control/s/x", false},
		{"candor/d/control/#", "candor/d/control/s", true},
		{"candor/d/control/#", "candor/d/control", true}, // the parent level
		{"candor/d/#", "candor/d/control/s", true},
		{"candor/d/+/s", "candor/d/control/s", true},
		{"candor/d/+", "candor/d/control/s", false},
		{"candor/d/control", "candor/d/control/s", false},
		{"candor/d/control/s/x", "candor/d/control/s", false},
		{"candor/e/control/#", "candor/d/control/s", false},
		{"candor/d/control/", "candor/d/control/s", false},
		{"#", "candor/d/control/s", true},
	} {
		if got := matchTopic(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}
