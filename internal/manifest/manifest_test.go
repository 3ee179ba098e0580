package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/sim"
)

func TestTemplatesAreValidAndMatchTheSimulator(t *testing.T) {
	ts, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) < 5 {
		t.Fatalf("%d templates, want at least 5", len(ts))
	}
	// Every simulated kind has a template that declares exactly its
	// streams and fields, and every value the simulator can send passes.
	for _, kind := range sim.KindNames() {
		m := ts[kind]
		if m == nil {
			t.Errorf("no template for simulated kind %q", kind)
			continue
		}
		k := sim.Kinds[kind]
		if got, want := strings.Join(m.StreamNames(), ","), strings.Join(sorted(k.Streams()), ","); got != want {
			t.Errorf("%s: template streams %s, simulator streams %s", kind, got, want)
		}
		c := Compile(m)
		for _, ss := range k.StreamSpecs {
			obj := map[string]any{}
			for _, f := range ss.Fields {
				switch f.Type {
				case sim.Boolean:
					obj[f.Name] = true
				case sim.String:
					obj[f.Name] = f.Enum[len(f.Enum)-1]
				default:
					obj[f.Name] = f.Max
				}
			}
			b, _ := json.Marshal(obj)
			if _, v := c.Check(ss.Name, b, false); v != nil {
				t.Errorf("%s/%s: simulator's extreme reading refused: %v", kind, ss.Name, v)
			}
		}
		if m.Support.SecurityUpdatesUntil.Before(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: support already ended", kind)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func thermostatDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := templateFS.ReadFile("templates/thermostat.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func set(doc map[string]any, path string, v any) {
	parts := strings.Split(path, "/")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		cur = cur[p].(map[string]any)
	}
	if v == nil {
		delete(cur, parts[len(parts)-1])
	} else {
		cur[parts[len(parts)-1]] = v
	}
}

func TestInvalidManifestsNamePathAndProblem(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		value    any
		wantPath string
		wantMsg  string
	}{
		{"bad retention", "properties/temperature/candor:retention", "5 years", "properties.temperature.candor:retention", "ISO 8601"},
		{"retention missing", "properties/temperature/candor:retention", nil, "properties.temperature", "candor:retention"},
		{"bad sampling", "properties/heating/candor:samplingInterval", "P1D2Y", "properties.heating.candor:samplingInterval", "ISO 8601"},
		{"wrong topic", "properties/temperature/forms", []any{map[string]any{"href": "mqtt://x", "mqv:topic": "candor/{{DEVICE_ID}}/temp"}}, "properties.temperature.forms[0].mqv:topic", "candor/{{DEVICE_ID}}/temperature"},
		{"no purpose", "properties/heating/dpv:hasPurpose", []any{}, "properties.heating.dpv:hasPurpose", ""},
		{"bad purpose term", "properties/heating/dpv:hasPurpose", []any{map[string]any{"@id": "marketing", "description": "x"}}, "properties.heating.dpv:hasPurpose[0].@id", ""},
		{"open schema", "properties/heating/additionalProperties", true, "properties.heating.additionalProperties", ""},
		{"range inverted", "properties/setpoint/properties/celsius/minimum", 40.0, "properties.setpoint.properties.celsius", "above maximum"},
		{"no unit", "properties/setpoint/properties/celsius/unit", nil, "properties.setpoint.properties.celsius.unit", "unit"},
		{"bad date", "candor:support/securityUpdatesUntil", "someday", "candor:support.securityUpdatesUntil", ""},
		{"bad contact", "candor:maker/contact", "call us", "candor:maker.contact", "e-mail"},
		{"bad device type", "candor:deviceType", "Thermo Stat", "candor:deviceType", ""},
		{"unknown combo stream", "properties/setpoint/candor:revealsWith", []any{map[string]any{"streams": []any{"humidity"}, "reveals": "x"}}, "properties.setpoint.candor:revealsWith[0].streams", "humidity"},
		{"personal without reveals", "properties/setpoint/candor:reveals", nil, "properties.setpoint.candor:reveals", "reveal"},
		{"right-to-left override in title", "title", "Thermostat\u202Eevil", "title", "U+202E"},
		{"zero-width space in recipient", "properties/temperature/dpv:hasRecipient", []any{map[string]any{
			"@type": "dpv:DataProcessor", "name": "Grid\u200BCo", "dpv:hasPurpose": "dpv:ServiceProvision",
			"candor:identifiable": "anonymous"}}, "properties.temperature.dpv:hasRecipient[0].name", "U+200B"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := thermostatDoc(t)
			set(doc, tc.path, tc.value)
			b, _ := json.Marshal(doc)
			m, err := Parse("thermostat.json", b)
			if m != nil {
				t.Fatal("an invalid manifest was returned (half-loaded)")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Path == tc.wantPath && strings.Contains(p.Message, tc.wantMsg) {
					if !strings.Contains(err.Error(), "thermostat.json") {
						t.Errorf("error does not name the file: %v", err)
					}
					return
				}
			}
			t.Errorf("no problem at %s mentioning %q; got %v", tc.wantPath, tc.wantMsg, ve.Problems)
		})
	}
}

func TestSyntaxErrorsNameTheLine(t *testing.T) {
	_, err := Parse("broken.json", []byte("{\n  \"title\": \"x\",\n  \"oops\"\n}"))
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("syntax error not located: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"P1Y": 365 * 24 * time.Hour, "P30D": 30 * 24 * time.Hour, "PT5M": 5 * time.Minute, "PT0S": 0,
		"P1DT12H": 36 * time.Hour, "PT1.5S": 1500 * time.Millisecond, "P2W": 14 * 24 * time.Hour, "P6M": 180 * 24 * time.Hour,
	}
	for s, want := range good {
		d, err := ParseDuration(s)
		if err != nil || d.D != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, d.D, err, want)
		}
	}
	for _, s := range []string{"", "P", "PT", "5 years", "P1.5Y", "P1D2Y", "PT1H2H", "P-1D", "1Y", "P1YT", "PT5", "P999999Y"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) accepted", s)
		}
	}
	if h := (Duration{Text: "P1Y", D: 365 * 24 * time.Hour}).Human(); h != "1 year" {
		t.Errorf("Human: %q", h)
	}
}

func TestCheckerEnforcesTheManifest(t *testing.T) {
	ts, err := Templates()
	if err != nil {
		t.Fatal(err)
	}
	c := Compile(ts["thermostat"])
	tests := []struct {
		name, stream, payload string
		strip                 bool
		reason, field, stored string
	}{
		{"declared", "temperature", `{"celsius": 21.5, "humidity_percent": 40}`, false, "", "", `{"celsius": 21.5, "humidity_percent": 40}`},
		{"optional field absent", "temperature", `{"celsius": 21.5}`, false, "", "", `{"celsius": 21.5}`},
		{"undeclared stream", "location", `{"lat": 1}`, false, ViolUndeclaredStream, "", ""},
		{"undeclared field", "temperature", `{"celsius": 21.5, "wifi_ssid": "home"}`, false, ViolUndeclaredField, "wifi_ssid", ""},
		{"undeclared field stripped", "temperature", `{"celsius": 21.5, "wifi_ssid": "home"}`, true, "", "", `{"celsius":21.5}`},
		{"out of range", "temperature", `{"celsius": 99}`, true, ViolOutOfRange, "celsius", ""},
		{"wrong type", "heating", `{"on": "yes"}`, false, ViolWrongType, "on", ""},
		{"missing required", "temperature", `{"humidity_percent": 40}`, false, ViolMissingField, "celsius", ""},
		{"array", "heating", `[true]`, false, ViolMalformed, "", ""},
		{"garbage", "heating", `{"on": tru`, false, ViolMalformed, "", ""},
		{"too large", "heating", `{"on": true` + strings.Repeat(" ", 300) + `}`, false, ViolTooLarge, "", ""},
	}
	for _, tc := range tests {
		out, v := c.Check(tc.stream, []byte(tc.payload), tc.strip)
		switch {
		case tc.reason == "" && v != nil:
			t.Errorf("%s: refused: %v", tc.name, v)
		case tc.reason != "" && (v == nil || v.Reason != tc.reason || v.Field != tc.field):
			t.Errorf("%s: got %+v, want reason %s field %q", tc.name, v, tc.reason, tc.field)
		case tc.reason == "" && string(out) != tc.stored:
			t.Errorf("%s: stored %s, want %s", tc.name, out, tc.stored)
		}
		if v != nil && (strings.Contains(v.Error(), "99") || strings.Contains(v.Error(), "home")) {
			t.Errorf("%s: violation message leaks a value: %v", tc.name, v)
		}
	}
	w := Compile(ts["wearable"])
	if _, v := w.Check("heart_rate", []byte(`{"bpm": 72.5}`), false); v == nil || v.Reason != ViolWrongType {
		t.Errorf("non-integer bpm accepted: %v", v)
	}
	if _, v := w.Check("sleep", []byte(`{"stage": "dreaming"}`), false); v == nil || v.Reason != ViolNotAllowed {
		t.Errorf("value outside enum accepted: %v", v)
	}
}
