package bridge

import (
	"log/slog"
	"strings"
	"testing"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

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

// bridge/devices and bridge/state come from a bridge: outside input.
// Whatever they hold, what is kept is bounded, sorted, has a friendly name
// and a definition that is an object, and never the IEEE address.
func FuzzBridgeMessages(f *testing.F) {
	f.Add([]byte(`[{"ieee_address":"0x1","type":"Coordinator","friendly_name":"Coordinator"},{"ieee_address":"0x2","friendly_name":"a","definition":{"model":"M","vendor":"V","exposes":[]}}]`))
	f.Add([]byte(`[{"friendly_name":"b","definition":null},{"friendly_name":"","definition":{}}]`))
	f.Add([]byte(`{"state":"online"}`))
	f.Add([]byte(`online`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		s := &Service{log: discard(), online: map[string]bool{}, seen: map[string][]SeenDevice{}}
		s.noteState("b1", payload)
		s.noteDevices("hh", payload)
		seen := s.seen["hh"]
		if len(seen) > maxSeen {
			t.Fatalf("%d devices kept", len(seen))
		}
		for i, d := range seen {
			if d.FriendlyName == "" || len(d.Definition) == 0 || d.Definition[0] != '{' {
				t.Fatalf("kept %+v", d)
			}
			if i > 0 && seen[i-1].FriendlyName > d.FriendlyName {
				t.Fatal("not sorted")
			}
		}
	})
}
