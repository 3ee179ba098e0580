package importer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSplitZigbee2MQTT(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    []string // stream=payload
		err     string
	}{
		{"motion sensor", `{"occupancy":true,"battery":87,"illuminance_lux":12}`,
			[]string{`battery={"battery":87}`, `illuminance_lux={"illuminance_lux":12}`, `occupancy={"occupancy":true}`}, ""},
		{"composite flattened", `{"state":"ON","color":{"x":0.45,"y":0.41}}`,
			[]string{`color_x={"color_x":0.45}`, `color_y={"color_y":0.41}`, `state={"state":"ON"}`}, ""},
		{"renamed key", `{"PM2.5":3}`, []string{`pm2_5={"pm2_5":3}`}, ""},
		{"control is the hub's", `{"control":1}`, []string{`f_control={"f_control":1}`}, ""},
		{"no letters", `{"温度":21}`, []string{`={"":21}`}, ""},
		{"values kept as sent", `{"n":1e2,"s":"a\"b","l":[1,2],"z":null}`,
			[]string{`l={"l":[1,2]}`, `n={"n":1e2}`, `s={"s":"a\"b"}`, `z={"z":null}`}, ""},
		{"empty object", `{}`, nil, ""},
		{"not an object", `[1]`, nil, "must be a JSON object"},
		{"null", `null`, nil, "must be a JSON object"},
		{"trailing data", `{"a":1} {"b":2}`, nil, "data after"},
		{"broken", `{"a":`, nil, "must be a JSON object"},
		{"too deep", strings.Repeat(`{"a":`, 12) + "1" + strings.Repeat("}", 12), nil, "nested more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts, err := SplitZigbee2MQTT([]byte(tc.payload))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrZigbee2MQTTPayload) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, p.Stream+"="+string(p.Payload))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("parts\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// The splitter reads what a Zigbee2MQTT bridge publishes: outside input.
// Whatever it accepts splits into parts that are each one JSON object of
// one property, named as the importer names streams.
func FuzzSplitZigbee2MQTT(f *testing.F) {
	for _, s := range []string{`{"occupancy":true,"battery":87}`, `{"color":{"x":0.4,"y":0.4},"state":"ON"}`,
		`{"PM2.5":3}`, `{}`, `[]`, `{"a":{"b":{"c":[1,{"d":2}]}}}`, `{"":1,"_":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		parts, err := SplitZigbee2MQTT(payload)
		if err != nil {
			if !errors.Is(err, ErrZigbee2MQTTPayload) {
				t.Fatalf("error %v does not wrap ErrZigbee2MQTTPayload", err)
			}
			return
		}
		if len(parts) > maxZ2MFields {
			t.Fatalf("%d parts", len(parts))
		}
		for _, p := range parts {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(p.Payload, &obj); err != nil || len(obj) != 1 {
				t.Fatalf("part %q is not a one-property object: %v", p.Payload, err)
			}
			if _, ok := obj[p.Stream]; !ok {
				t.Fatalf("part %q does not hold its stream %q", p.Payload, p.Stream)
			}
			if p.Stream != "" && p.Stream != Zigbee2MQTTName(strings.Split(p.Key, ".")...) && !strings.Contains(p.Key, ".") {
				t.Fatalf("stream %q is not the name of key %q", p.Stream, p.Key)
			}
		}
	})
}
