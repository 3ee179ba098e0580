package bridge

import (
	"strings"
	"testing"
)

func TestSplitSuffix(t *testing.T) {
	tests := []struct{ rest, name, suffix string }{
		{"desk plug", "desk plug", ""},
		{"hallway/motion", "hallway/motion", ""},
		{"hallway/motion/availability", "hallway/motion", "/availability"},
		{"desk plug/set", "desk plug", "/set"},
		{"desk plug/set/state", "desk plug", "/set"},
		{"desk plug/get", "desk plug", "/get"},
		{"settings", "settings", ""},
	}
	for _, tc := range tests {
		if name, suffix := splitSuffix(tc.rest); name != tc.name || suffix != tc.suffix {
			t.Errorf("splitSuffix(%q) = %q, %q; want %q, %q", tc.rest, name, suffix, tc.name, tc.suffix)
		}
	}
}

// A command goes back under the key path Zigbee2MQTT published the
// property with.
func TestSetPayload(t *testing.T) {
	s, err := New(Options{Apps: noApps{}, Store: nil, Ingest: nil})
	if err == nil || s != nil {
		t.Fatal("New without a store and ingest")
	}
	s = &Service{keys: map[streamKey][]string{}}
	s.remember("zb_1", "color_x", []string{"color", "x"})
	s.remember("zb_1", "pm2_5", []string{"PM2.5"})
	tests := []struct{ stream, in, want string }{
		{"state", `{"state":"ON"}`, `{"state":"ON"}`},
		{"color_x", `{"color_x":0.4}`, `{"color":{"x":0.4}}`},
		{"pm2_5", `{"pm2_5":3}`, `{"PM2.5":3}`},
		{"boost", `{"minutes":5}`, `{"minutes":5}`},
	}
	for _, tc := range tests {
		got, err := s.setPayload("zb_1", tc.stream, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("setPayload(%s, %s) = %s, %v; want %s", tc.stream, tc.in, got, err, tc.want)
		}
	}
}

type noApps struct{}

func (noApps) Bridge(string) (string, bool) { return "", false }

// Topics come from a bridge over MQTT: outside input. Whatever the topic,
// the split gives back a name that, with the suffix, is a prefix of it.
func FuzzSplitSuffix(f *testing.F) {
	for _, s := range []string{"a", "a/set", "a/b/availability", "/set", "set/set/set", "a/get/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		name, suffix := splitSuffix(rest)
		if !strings.HasPrefix(rest, name+suffix) {
			t.Fatalf("splitSuffix(%q) = %q, %q", rest, name, suffix)
		}
		if suffix == "" && name != rest {
			t.Fatalf("splitSuffix(%q) cut %q without a suffix", rest, name)
		}
	})
}
