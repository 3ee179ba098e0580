package apps

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
)

// FuzzTopicFilter feeds the topic filters and topic names apps send (the
// outside input this package parses) to the matcher and the reading-topic
// splitter: they must not panic, a topic always matches itself and '#',
// and a split reading topic joins back to the same topic.
func FuzzTopicFilter(f *testing.F) {
	for _, s := range [][2]string{
		{"candor/#", "candor/dev_a/temperature"},
		{"candor/+/temperature", "candor/dev_a/temperature"},
		{"+/+/+", "$SYS/x/y"},
		{"candor/dev_a/control/#", "candor/dev_a/control/temperature"},
		{"", ""},
		{"#/x", "a//b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		_ = matchFilter(filter, topic)
		if strings.ContainsAny(topic, "+#") {
			return
		}
		if !matchFilter(topic, topic) {
			t.Errorf("topic %q does not match itself", topic)
		}
		if !strings.HasPrefix(topic, "$") && !matchFilter("#", topic) {
			t.Errorf("topic %q does not match #", topic)
		}
		if d, s, ok := ReadingTopic(topic); ok && TopicRoot+"/"+d+"/"+s != topic {
			t.Errorf("ReadingTopic(%q) = %q, %q", topic, d, s)
		}
		if d, n, ok := SplitCommandTopic(topic); ok && CommandTopic(d, n) != topic {
			t.Errorf("SplitCommandTopic(%q) = %q, %q", topic, d, n)
		}
	})
}

// FuzzCommandPayload feeds command payloads, as an app sends them, to the
// check against a declared schema (a closed object with one bounded
// integer): it must not panic, and whatever it lets through is exactly
// an object with that one field in range.
func FuzzCommandPayload(f *testing.F) {
	raw := []byte(`{"candor:deviceType":"t","actions":{"boost":{"input":{"type":"object","additionalProperties":false,` +
		`"required":["minutes"],"properties":{"minutes":{"type":"integer","minimum":1,"maximum":60}}}}}}`)
	e := &catalog.Entry{Version: 1, Manifest: &manifest.Manifest{DeviceType: "t", Raw: raw}}
	s := &Service{}
	sch := s.schemaFor(e, "boost")
	if sch == nil {
		f.Fatal("the boost schema did not compile")
	}
	for _, p := range []string{`{"minutes":10}`, `{"minutes":61}`, `{"minutes":1.5}`, `{}`, `[]`, `{"minutes":10}x`, `{"minutes":10,"x":1}`, ``} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if !validPayload(sch, payload) {
			return
		}
		var v map[string]json.Number
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || len(v) != 1 {
			t.Fatalf("accepted %q, which is not an object with one field", payload)
		}
		// JSON Schema counts 10.0 as an integer too.
		n, err := v["minutes"].Float64()
		if err != nil || n != math.Trunc(n) || n < 1 || n > 60 {
			t.Fatalf("accepted %q: minutes out of the declared range", payload)
		}
	})
}
