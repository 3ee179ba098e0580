package manifest

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to the manifest parser: it must
// never panic, and it either returns a manifest whose streams all have a
// topic and a purpose, or a ValidationError (never both).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"thermostat", "wearable", "motion-camera", "door-sensor"} {
		b, err := templateFS.ReadFile("templates/" + name + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"properties": {"x": null}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := Parse("fuzz.json", doc)
		if (m == nil) == (err == nil) {
			t.Fatalf("Parse returned manifest %v and error %v", m != nil, err)
		}
		if m == nil {
			return
		}
		for _, s := range m.Streams {
			if s.Topic == "" || len(s.Purposes) == 0 || s.Retention.IsZero() {
				t.Fatalf("accepted stream %q without topic, purpose or retention", s.Name)
			}
		}
		for _, r := range m.RevealsAcross {
			if r.From != m.DeviceType || len(r.Categories) == 0 || strings.TrimSpace(r.Reveals) == "" {
				t.Fatalf("accepted cross-device rule %+v", r)
			}
		}
		Compile(m)
		_ = Explain(m, m.Support.SecurityUpdatesUntil).Text()
	})
}

// FuzzCheck feeds arbitrary readings to a compiled template: never a
// panic; accepted readings are JSON objects whose keys are all declared.
func FuzzCheck(f *testing.F) {
	ts, err := Templates()
	if err != nil {
		f.Fatal(err)
	}
	c := Compile(ts["thermostat"])
	m := ts["thermostat"]
	for _, seed := range []string{`{"celsius": 21}`, `{"on": true}`, `{"celsius": 1e999}`, `{"celsius": "x"}`, `{`, `[]`, `{"celsius": 21, "x": 1}`} {
		f.Add("temperature", []byte(seed), false)
		f.Add("heating", []byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, stream string, payload []byte, strip bool) {
		out, v := c.Check(stream, payload, strip)
		if !json.Valid(payload) {
			return // Check's contract: the caller has checked JSON syntax
		}
		if v != nil {
			// Names (stream, field) come from the device and may be echoed;
			// a value never is.
			named := strings.ReplaceAll(strings.ReplaceAll(v.Error(), stream, ""), v.Field, "")
			if len(payload) > 8 && strings.Contains(named, string(payload)) {
				t.Fatalf("violation message contains the payload")
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("accepted a reading that is not a JSON object: %q", out)
		}
		s := m.Stream(stream)
		for k := range obj {
			if s.Field(k) == nil {
				t.Fatalf("accepted undeclared field %q", k)
			}
		}
	})
}
