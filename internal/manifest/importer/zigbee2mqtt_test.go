package importer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/manifest"
)

var lqi = num("link quality indicator", 0, 255)

// The examples in testdata/zigbee2mqtt are entries of zigbee2mqtt/bridge/devices
// as Zigbee2MQTT 1.x publishes them, with the exposes its converters define
// for each model.
func TestZigbee2MQTTExamples(t *testing.T) {
	tests := []struct {
		file       string
		deviceType string
		title      string
		maker      string
		state      wantStream
		skipped    []string
		accept     []string // state payloads as Zigbee2MQTT publishes them
		refuse     []string
	}{
		{
			file: "aqara_mccgq11lm.json", deviceType: "mccgq11lm", title: "Door and window sensor (Aqara MCCGQ11LM)", maker: "Aqara",
			state: wantStream{fields: map[string]wantField{
				"battery":            num("percent", 0, 100),
				"contact":            boolean,
				"device_temperature": num("degree Celsius", -40, 125),
				"voltage":            num("millivolt", 0, 1e6),
				"power_outage_count": num("count", 0, 1e9),
				"trigger_count":      num("count", 0, 1e9),
				"linkquality":        lqi,
			}, personal: presence, purposes: []string{"candor:HomeSecurity", "candor:HomeAutomation", "dpv:ServiceProvision"},
				reveals: "when people are at home"},
			accept: []string{`{"battery":100,"contact":true,"device_temperature":26,"linkquality":120,"power_outage_count":12,"trigger_count":0,"voltage":3045}`,
				`{"contact":false,"linkquality":87}`},
			refuse: []string{`{"contact":"open"}`, `{"battery":100,"last_seen":"2024-01-01T00:00:00Z"}`},
		},
		{
			file: "xiaomi_wsdcgq11lm.json", deviceType: "wsdcgq11lm", title: "Aqara temperature, humidity and pressure sensor (Xiaomi WSDCGQ11LM)", maker: "Xiaomi",
			state: wantStream{fields: map[string]wantField{
				"battery":     num("percent", 0, 100),
				"temperature": num("degree Celsius", -40, 125),
				"humidity":    num("percent", 0, 100),
				"pressure":    num("hectopascal", 300, 1100),
				"voltage":     num("millivolt", 0, 1e6),
				"linkquality": lqi,
			}, personal: none, purposes: []string{"candor:HomeAutomation", "dpv:ServiceProvision"}, reveals: "when a room is in use"},
			accept: []string{`{"battery":91,"humidity":55.21,"linkquality":63,"pressure":1008.4,"temperature":24.62,"voltage":3005}`},
			refuse: []string{`{"temperature":130}`},
		},
		{
			file: "philips_9290012607.json", deviceType: "9290012607", title: "Hue motion sensor (Philips 9290012607)", maker: "Philips",
			state: wantStream{fields: map[string]wantField{
				"occupancy":          boolean,
				"battery":            num("percent", 0, 100),
				"illuminance_lux":    num("lux", 0, 200000),
				"illuminance":        num("unitless", -1e9, 1e9), // raw, no unit given
				"temperature":        num("degree Celsius", -40, 125),
				"motion_sensitivity": enum("low", "medium", "high"),
				"led_indication":     boolean,
				"occupancy_timeout":  num("second", 0, 65535),
				"linkquality":        lqi,
			}, personal: presence, purposes: []string{"candor:HomeSecurity", "candor:HomeAutomation", "dpv:ServiceProvision"}},
			accept: []string{`{"battery":100,"illuminance":16284,"illuminance_lux":42,"led_indication":false,"linkquality":102,"motion_sensitivity":"high","occupancy":true,"occupancy_timeout":30,"temperature":21.37}`},
			refuse: []string{`{"motion_sensitivity":"max"}`},
		},
		{
			file: "xiaomi_zncz02lm.json", deviceType: "zncz02lm", title: "Mi power plug ZigBee (Xiaomi ZNCZ02LM)", maker: "Xiaomi",
			state: wantStream{fields: map[string]wantField{
				"state":               enum("ON", "OFF"), // published as "ON"/"OFF", not true/false
				"power":               num("watt", 0, 100000),
				"energy":              num("kilowatt hour", 0, 1e9),
				"device_temperature":  num("degree Celsius", -40, 125),
				"power_outage_memory": boolean,
				"linkquality":         lqi,
			}, personal: []string{"candor:EnergyUse", "candor:Presence"}, purposes: []string{"candor:EnergyManagement", "candor:HomeAutomation", "dpv:ServiceProvision"},
				reveals: "which appliances you use"},
			accept: []string{`{"device_temperature":31,"energy":0.52,"linkquality":87,"power":12.3,"power_outage_memory":true,"state":"ON"}`},
			refuse: []string{`{"state":true}`, `{"state":"TOGGLE"}`},
		},
		{
			file: "philips_9290022166.json", deviceType: "9290022166", title: "Hue white and color ambiance E26/E27 (Philips 9290022166)", maker: "Philips",
			state: wantStream{fields: map[string]wantField{
				"state":              enum("ON", "OFF"),
				"brightness":         num("level", 0, 254),
				"color_temp":         num("mired", 153, 500),
				"color_temp_startup": num("mired", 153, 65535), // widened for the "previous" preset
				"color_x":            num("CIE 1931 x", 0, 1),  // color.x, flattened
				"color_y":            num("CIE 1931 y", 0, 1),
				"color_hue":          num("degree", 0, 360),
				"color_saturation":   num("percent", 0, 100),
				"power_on_behavior":  enum("off", "previous", "on"),
				"linkquality":        lqi,
			}, personal: presence, purposes: []string{"candor:HomeAutomation", "dpv:ServiceProvision"}},
			skipped: []string{`"effect" (write-only)`},
			accept:  []string{`{"brightness":254,"color_temp":366,"color_temp_startup":65535,"color_x":0.4573,"color_y":0.41,"linkquality":255,"power_on_behavior":"previous","state":"ON"}`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			in := readZ2M(t, tc.file)
			out, err := FromZigbee2MQTT("", in)
			if err != nil {
				t.Fatal(err)
			}
			m := checkDraft(t, out)
			if m.DeviceType != tc.deviceType || m.Title != tc.title || m.Maker.Name != tc.maker {
				t.Errorf("type %q title %q maker %q", m.DeviceType, m.Title, m.Maker.Name)
			}
			checkZ2MStreams(t, m, tc.state)
			for _, s := range m.Streams {
				if len(s.Required) != 0 {
					t.Errorf("%s: required %v: Zigbee2MQTT leaves out properties not reported yet", s.Name, s.Required)
				}
			}
			for _, sk := range tc.skipped {
				if !strings.Contains(m.Description, sk) {
					t.Errorf("description does not list skipped %s: %s", sk, m.Description)
				}
			}
			c := manifest.Compile(m)
			for _, p := range tc.accept {
				if v := checkZ2MPayload(t, m, c, p); v != nil {
					t.Errorf("Zigbee2MQTT payload %s refused: %v", p, v)
				}
			}
			for _, p := range tc.refuse {
				if checkZ2MPayload(t, m, c, p) == nil {
					t.Errorf("payload %s accepted", p)
				}
			}
			for _, instance := range []string{`"ieee_address"`, "0x00", "friendly_name\":"} {
				if strings.Contains(string(out), instance) {
					t.Errorf("an instance identifier (%s) was copied into the type's manifest", instance)
				}
			}
			checkConfirm(t, out)
		})
	}
}

func TestZigbee2MQTTSupportAndShapes(t *testing.T) {
	in := readZ2M(t, "aqara_mccgq11lm.json")
	out, err := FromZigbee2MQTT("door", in)
	if err != nil {
		t.Fatal(err)
	}
	m := checkDraft(t, out)
	if !strings.Contains(m.Support.UpdateMechanism, "supports_ota is false") {
		t.Errorf("update mechanism: %s", m.Support.UpdateMechanism)
	}
	// The same device as a one-entry bridge/devices list, as a
	// bridge/event interview message and as a bare definition.
	def := strings.TrimSpace(string(in))
	var entry map[string]json.RawMessage
	if err := json.Unmarshal(in, &entry); err != nil {
		t.Fatal(err)
	}
	bare := string(entry["definition"])
	for name, input := range map[string]string{
		"list":  "[" + def + "]",
		"event": `{"type":"device_interview","data":` + def + `}`,
		"bare":  bare,
	} {
		out2, err := FromZigbee2MQTT("door", []byte(input))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		m2 := checkDraft(t, out2)
		if got, want := len(m2.Streams), len(m.Streams); got != want {
			t.Errorf("%s: %d streams, want %d", name, got, want)
		}
	}
}

// Exposes written inline for the types the examples do not cover.
func TestZigbee2MQTTExposes(t *testing.T) {
	wrap := func(exposes string) []byte {
		return []byte(`{"ieee_address":"0x1","friendly_name":"x","definition":{"model":"M1","vendor":"V","description":"Test device","exposes":[` + exposes + `]}}`)
	}
	tests := []struct {
		name     string
		exposes  string
		fields   map[string]wantField
		personal []string
		note     string
	}{
		{"thermostat", `{"type":"climate","features":[
			{"type":"numeric","name":"occupied_heating_setpoint","property":"occupied_heating_setpoint","value_min":5,"value_max":30,"value_step":0.5,"access":7,"unit":"°C"},
			{"type":"numeric","name":"local_temperature","property":"local_temperature","access":5,"unit":"°C"},
			{"type":"enum","name":"system_mode","property":"system_mode","values":["off","auto","heat"],"access":7},
			{"type":"enum","name":"running_state","property":"running_state","values":["idle","heat"],"access":5},
			{"type":"numeric","name":"pi_heating_demand","property":"pi_heating_demand","access":5,"unit":"%","value_min":0,"value_max":100}]}`,
			map[string]wantField{
				"occupied_heating_setpoint": num("degree Celsius", 5, 30),
				"local_temperature":         num("degree Celsius", -40, 125),
				"system_mode":               enum("off", "auto", "heat"),
				"running_state":             enum("idle", "heat"),
				"pi_heating_demand":         num("percent", 0, 100),
			}, []string{"candor:Presence", "pd:Preference"}, ""},
		{"lock", `{"type":"lock","features":[
			{"type":"binary","name":"state","property":"state","value_on":"LOCK","value_off":"UNLOCK","access":7},
			{"type":"enum","name":"lock_state","property":"lock_state","values":["not_fully_locked","locked","unlocked"],"access":1}]}`,
			map[string]wantField{"state": enum("LOCK", "UNLOCK"), "lock_state": enum("not_fully_locked", "locked", "unlocked")},
			[]string{"candor:Presence"}, ""},
		{"two-gang switch with endpoints", `{"type":"switch","endpoint":"l1","features":[{"type":"binary","name":"state","property":"state_l1","value_on":"ON","value_off":"OFF","access":7,"endpoint":"l1"}]},
			{"type":"switch","endpoint":"l2","features":[{"type":"binary","name":"state","property":"state_l2","value_on":"ON","value_off":"OFF","access":7,"endpoint":"l2"}]}`,
			map[string]wantField{"state_l1": enum("ON", "OFF"), "state_l2": enum("ON", "OFF")}, []string{"candor:Presence"}, ""},
		{"fan named apart from its property", `{"type":"fan","features":[{"type":"binary","name":"state","property":"fan_state","value_on":"ON","value_off":"OFF","access":7},
			{"type":"enum","name":"mode","property":"fan_mode","values":["off","low","high"],"access":7}]}`,
			map[string]wantField{"fan_state": enum("ON", "OFF"), "fan_mode": enum("off", "low", "high")}, []string{"candor:Presence"}, ""},
		{"heart rate radar", `{"type":"binary","name":"presence","property":"presence","value_on":true,"value_off":false,"access":1},
			{"type":"numeric","name":"heart_rate","property":"heart_rate","access":1,"unit":"bpm"},
			{"type":"numeric","name":"breath_rate","property":"breath_rate","access":1}`,
			map[string]wantField{"presence": boolean, "heart_rate": num("beats per minute", 20, 300), "breath_rate": num("breaths per minute", 0, 100)},
			[]string{"pd:PhysicalHealth", "candor:Presence"}, "health"},
		{"button actions and text", `{"type":"enum","name":"action","property":"action","values":["single","double","hold"],"access":1,"category":"diagnostic"},
			{"type":"text","name":"inserted","property":"inserted","access":1}`,
			map[string]wantField{"action": enum("single", "double", "hold"), "inserted": {typ: "string", maxLen: 256}},
			[]string{"candor:Presence"}, "nothing about its privacy could be suggested"},
		{"numeric enum, list and mixed enum", `{"type":"enum","name":"sensitivity","property":"sensitivity","values":[1,2,3],"access":1},
			{"type":"list","name":"no_occupancy_since","property":"no_occupancy_since","access":1,"item_type":"number"},
			{"type":"enum","name":"odd","property":"odd","values":["a",2],"access":1}`,
			map[string]wantField{"sensitivity": num("code", 1, 3)}, []string{}, `"no_occupancy_since" (a list`},
		{"renamed property", `{"type":"numeric","name":"PM2.5","property":"PM2.5","access":1,"unit":"µg/m³"}`,
			map[string]wantField{"pm2_5": num("microgram per cubic metre", 0, 10000)}, []string{}, `publishes it as "PM2.5"; the bridge renames it to pm2_5`},
		{"write-only composite and config category", `{"type":"composite","name":"color_options","property":"color_options","access":2,"features":[{"type":"binary","name":"execute_if_off","property":"execute_if_off","access":2,"value_on":true,"value_off":false}]},
			{"type":"composite","name":"level_config","property":"level_config","category":"config","features":[{"type":"numeric","name":"on_level","property":"on_level","access":7,"value_min":1,"value_max":254,"presets":[{"name":"previous","value":"previous","description":"Use previous value"}]}]}`,
			map[string]wantField{"level_config_on_level": num("unitless", 1, 254)}, []string{}, "preset name instead of a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := FromZigbee2MQTT("", wrap(tc.exposes))
			if err != nil {
				t.Fatal(err)
			}
			m := checkDraft(t, out)
			if m.DeviceType != "m1" {
				t.Errorf("device type %q", m.DeviceType)
			}
			checkZ2MStreams(t, m, wantStream{fields: tc.fields, personal: tc.personal})
			if tc.note != "" && !strings.Contains(allText(m), tc.note) {
				t.Errorf("the draft does not mention %q:\n%s", tc.note, out)
			}
			checkConfirm(t, out)
		})
	}
}

func purposesOf(s *manifest.Stream) []string {
	var out []string
	for _, p := range s.Purposes {
		out = append(out, p.ID)
	}
	return out
}

func TestZigbee2MQTTLinkqualityIsNotPersonal(t *testing.T) {
	out, err := FromZigbee2MQTT("lq", []byte(`{"definition":{"model":"X","vendor":"V","exposes":[{"type":"numeric","name":"linkquality","property":"linkquality","access":1,"unit":"lqi","value_min":0,"value_max":255}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := checkDraft(t, out)
	s := m.Stream("linkquality")
	if s.Personal() || len(s.Purposes) != 1 || s.Purposes[0].ID != "dpv:ServiceProvision" || !s.Purposes[0].Essential {
		t.Errorf("linkquality: personal %v purposes %+v", s.PersonalData, s.Purposes)
	}
}

func TestZigbee2MQTTBadInput(t *testing.T) {
	ok := `{"type":"numeric","name":"battery","property":"battery","access":1,"unit":"%"}`
	def := func(exposes string) string {
		return `{"friendly_name":"x","definition":{"model":"M","vendor":"V","exposes":[` + exposes + `]}}`
	}
	deep := `{"type":"numeric","name":"n","property":"n","access":1}`
	for i := 0; i < 10; i++ {
		deep = `{"type":"composite","name":"c","property":"c","features":[` + deep + `]}`
	}
	tests := []struct {
		name, input, want string
	}{
		{"empty", "", "input: empty"},
		{"syntax", "{\n  \"definition\": {\n    \"exposes\": [}\n}", "input: not valid JSON: line 3, column 18"},
		{"not an object", `"MCCGQ11LM"`, "input: must be a JSON object, not a string"},
		{"whole bridge/devices", `[` + def(ok) + `,` + def(ok) + `]`, "input: a bridge/devices list of 2 devices"},
		{"no definition", `{"friendly_name":"x","ieee_address":"0x1"}`, "definition: missing"},
		{"unsupported device", `{"friendly_name":"x","definition":null,"supported":false}`, "definition: null"},
		{"coordinator", `{"type":"Coordinator","friendly_name":"Coordinator"}`, "Coordinator entry"},
		{"definition not an object", `{"definition":[1]}`, "definition: must be a JSON object, not an array"},
		{"exposes missing", `{"definition":{"model":"M"}}`, "definition.exposes: missing"},
		{"exposes not an array", `{"definition":{"exposes":{}}}`, "definition.exposes: must be an array, not an object"},
		{"exposes empty", def(""), "definition.exposes: empty"},
		{"unknown type", def(ok + `,` + ok + `,` + ok + `,{"type":"foo","name":"f","property":"f","access":1}`), `definition.exposes[3]: unknown type "foo"`},
		{"type missing", def(`{"name":"f","access":1}`), "definition.exposes[0]: type missing"},
		{"type not a string", def(`{"type":7}`), "definition.exposes[0]: type must be a string, not a number"},
		{"expose not an object", def(ok + `,"battery"`), "definition.exposes[1]: must be a JSON object, not a string"},
		{"no property", def(`{"type":"light","features":[` + ok + `,{"type":"numeric","access":7}]}`), "definition.exposes[0].features[1]: property and name missing"},
		{"features missing", def(`{"type":"switch"}`), "definition.exposes[0]: switch without features"},
		{"access missing", def(`{"type":"numeric","name":"n","property":"n"}`), "definition.exposes[0]: access missing"},
		{"access out of range", def(`{"type":"numeric","name":"n","property":"n","access":9}`), "definition.exposes[0]: access 9 is not a 3-bit mask"},
		{"binary without values", def(`{"type":"binary","name":"b","property":"b","access":1}`), "definition.exposes[0]: binary without value_on and value_off"},
		{"enum without values", def(`{"type":"enum","name":"e","property":"e","access":1,"values":[]}`), "definition.exposes[0]: enum without values"},
		{"enum value an object", def(`{"type":"enum","name":"e","property":"e","access":1,"values":[{}]}`), "definition.exposes[0]: values[0] must be a string or number, not an object"},
		{"bad value_min", def(`{"type":"numeric","name":"n","property":"n","access":1,"value_min":"low"}`), `definition.exposes[0]: value_min must be a number, not "low"`},
		{"all write-only", def(`{"type":"enum","name":"effect","property":"effect","access":2,"values":["blink"]}`), `definition.exposes: nothing the device publishes: every feature is write-only or skipped ("effect" (write-only))`},
		{"nested too deep", def(deep), "features nested more than 8 deep"},
		{"no letters", def(`{"type":"numeric","name":"温度","property":"温度","access":1}`), `definition.exposes[0]: property "温度" has no letters or digits`},
		{"bad device type", def(ok), `device type: "BAD" must be`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dt := ""
			if tc.name == "bad device type" {
				dt = "BAD"
			}
			out, err := FromZigbee2MQTT(dt, []byte(tc.input))
			if out != nil {
				t.Error("a document was returned with the error")
			}
			errContains(t, err, tc.want)
		})
	}
}

func TestZigbee2MQTTFieldLimit(t *testing.T) {
	var b strings.Builder
	for i := 0; i <= maxZ2MFields; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"numeric","name":"n%d","property":"n%d","access":1}`, i, i)
	}
	_, err := FromZigbee2MQTT("many", []byte(`{"definition":{"model":"M","exposes":[`+b.String()+`]}}`))
	errContains(t, err, "more than 500 properties")
}

// allText joins every description of a manifest, for searching.
func allText(m *manifest.Manifest) string {
	parts := []string{m.Title, m.Description}
	for _, s := range m.Streams {
		parts = append(parts, s.Title, s.Description, s.Reveals, s.Use)
		for _, p := range s.Purposes {
			parts = append(parts, p.Description)
		}
		for _, f := range s.Fields {
			parts = append(parts, f.Description)
		}
	}
	return strings.Join(parts, "\n")
}

// checkZ2MStreams checks that every property is a stream of its own that
// holds only that property, so each can be switched alone, and that the
// streams together declare the personal data and purposes in want
// (purposes and reveals only when given).
func checkZ2MStreams(t *testing.T, m *manifest.Manifest, want wantStream) {
	t.Helper()
	per := map[string]wantStream{}
	personal, purposes := map[string]bool{}, map[string]bool{}
	reveals := ""
	for name, wf := range want.fields {
		s := m.Stream(name)
		if s == nil {
			t.Errorf("no stream %s", name)
			continue
		}
		per[name] = wantStream{fields: map[string]wantField{name: wf}, personal: s.PersonalData, purposes: purposesOf(s)}
		for _, p := range s.PersonalData {
			personal[p] = true
		}
		for _, p := range s.Purposes {
			purposes[p.ID] = true
		}
		reveals += s.Reveals + "\n"
	}
	checkStreams(t, m, per)
	if got, exp := strings.Join(sortedKeys(personal), ","), strings.Join(sortedKeys(setOf(want.personal)), ","); got != exp {
		t.Errorf("personal data of the streams together [%s], want [%s]", got, exp)
	}
	if want.purposes != nil {
		if got, exp := strings.Join(sortedKeys(purposes), ","), strings.Join(sortedKeys(setOf(want.purposes)), ","); got != exp {
			t.Errorf("purposes of the streams together [%s], want [%s]", got, exp)
		}
	}
	if want.reveals != "" && !strings.Contains(reveals, want.reveals) {
		t.Errorf("no stream reveals %q:\n%s", want.reveals, reveals)
	}
}

func setOf(xs []string) map[string]bool {
	out := map[string]bool{}
	for _, x := range xs {
		out[x] = true
	}
	return out
}

// checkZ2MPayload splits a Zigbee2MQTT state message as the bridge does
// and checks each part against its stream; the first refusal is returned.
func checkZ2MPayload(t *testing.T, m *manifest.Manifest, c *manifest.Checker, payload string) error {
	t.Helper()
	parts, err := SplitZigbee2MQTT([]byte(payload))
	if err != nil {
		return err
	}
	for _, p := range parts {
		if s := m.Stream(p.Stream); s != nil && len(p.Payload) > s.MaxPayloadBytes {
			t.Errorf("a real payload (%d bytes) is larger than maxPayloadBytes %d", len(p.Payload), s.MaxPayloadBytes)
		}
		if _, v := c.Check(p.Stream, p.Payload, false); v != nil {
			return v
		}
	}
	return nil
}
