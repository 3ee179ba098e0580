package importer

import (
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/manifest"
)

var (
	ambientPurpose  = []string{"candor:HomeAutomation"}
	presencePurpose = []string{"candor:HomeSecurity", "candor:HomeAutomation"}
	energyPurpose   = []string{"candor:EnergyManagement"}
	devicePurpose   = []string{"dpv:ServiceProvision"}
	presence        = []string{"candor:Presence"}
	energyUse       = []string{"candor:EnergyUse"}
	none            = []string{}
)

// The examples in testdata/homeassistant are discovery payloads from Home
// Assistant's MQTT documentation (the bedroom sensors, the garden motion
// sensor, the device-discovery kitchen example, the irrigation switch with a
// base topic, the livingroom HVAC with abbreviations) and from Tasmota's
// abbreviated discovery for a Sonoff Pow R2 plug.
func TestHomeAssistantExamples(t *testing.T) {
	tests := []struct {
		dir        string
		deviceType string
		title      string
		maker      string
		streams    map[string]wantStream
		read       map[string]string // stream → a reading the hub must accept
	}{
		{
			dir: "bedroom", deviceType: "example-sensor", title: "Example Sensor by Example sensors Ltd.", maker: "Example sensors Ltd.",
			streams: map[string]wantStream{
				"temperature": {fields: map[string]wantField{"temperature": num("degree Celsius", -40, 125)},
					personal: none, purposes: ambientPurpose, reveals: "when a room is in use", with: []string{"humidity"}},
				"humidity": {fields: map[string]wantField{"humidity": num("percent", 0, 100)},
					personal: none, purposes: ambientPurpose, reveals: "when a room is in use", with: []string{"temperature"}},
			},
			read: map[string]string{"temperature": `{"temperature": 23.2}`, "humidity": `{"humidity": 43.7}`},
		},
		{
			dir: "garden", deviceType: "home-assistant-device", title: "Device imported from Home Assistant", maker: PlaceholderMaker,
			streams: map[string]wantStream{
				"motion": {fields: map[string]wantField{"motion": boolean}, personal: presence, purposes: presencePurpose,
					reveals: "when people are at home"},
			},
			read: map[string]string{"motion": `{"motion": true}`},
		},
		{
			dir: "kitchen", deviceType: "xya", title: "xya by Bla electronics", maker: "Bla electronics",
			streams: map[string]wantStream{
				"temperature": {fields: map[string]wantField{"temperature": num("degree Celsius", -40, 125)},
					personal: none, purposes: ambientPurpose, with: []string{"humidity"}},
				"humidity": {fields: map[string]wantField{"humidity": num("percent", 0, 100)},
					personal: none, purposes: ambientPurpose, with: []string{"temperature"}},
			},
		},
		{
			dir: "irrigation", deviceType: "home-assistant-device", title: "Device imported from Home Assistant", maker: PlaceholderMaker,
			streams: map[string]wantStream{
				"garden": {fields: map[string]wantField{"on": boolean}, personal: presence, purposes: ambientPurpose,
					reveals: "when someone switches"},
			},
			read: map[string]string{"garden": `{"on": false}`},
		},
		{
			dir: "livingroom", deviceType: "home-assistant-device", title: "Device imported from Home Assistant", maker: PlaceholderMaker,
			streams: map[string]wantStream{
				"livingroom": {fields: map[string]wantField{
					"current_temperature": num("degree Celsius", -40, 125),
					"target_temperature":  num("degree Celsius", 15, 25), // min_temp/max_temp "15"/"25"
					"mode":                enum("off", "heat"),
				}, personal: []string{"pd:Preference"}, purposes: ambientPurpose, reveals: "daily schedule"},
			},
			read: map[string]string{"livingroom": `{"current_temperature": 20.5, "target_temperature": 21, "mode": "heat"}`},
		},
		{
			dir: "printer-plug", deviceType: "sonoff-pow-r2", title: "Sonoff Pow R2 by Tasmota", maker: "Tasmota",
			streams: map[string]wantStream{
				"switch": {fields: map[string]wantField{"on": boolean}, personal: presence, purposes: ambientPurpose},
				"energy_total": {fields: map[string]wantField{"energy": num("kilowatt hour", 0, 1e9)},
					personal: energyUse, purposes: energyPurpose, reveals: "which appliances you use"},
				"energy_power": {fields: map[string]wantField{"power": num("watt", 0, 100000)},
					personal: energyUse, purposes: energyPurpose},
				"energy_voltage": {fields: map[string]wantField{"voltage": num("volt", 0, 1000)},
					personal: none, purposes: devicePurpose},
				// Tasmota sends unit " " for a timestamp: text, not a number.
				"energy_total_start_time": {fields: map[string]wantField{"value": {typ: "string", maxLen: 256}},
					personal: energyUse, purposes: energyPurpose},
			},
			read: map[string]string{"energy_total": `{"energy": 12.345}`, "energy_total_start_time": `{"value": "2019-12-23T17:02:03"}`},
		},
	}
	for _, tc := range tests {
		for _, withTopics := range []bool{true, false} {
			name := tc.dir
			if !withTopics {
				name += "/payloads-only"
			}
			t.Run(name, func(t *testing.T) {
				msgs := readHA(t, tc.dir)
				var out []byte
				var err error
				if withTopics {
					out, err = FromHomeAssistantDiscovery("", msgs...)
				} else {
					payloads := make([][]byte, len(msgs))
					for i, m := range msgs {
						payloads[i] = m.Payload
					}
					out, err = FromHomeAssistant("", payloads...)
				}
				if err != nil {
					t.Fatal(err)
				}
				m := checkDraft(t, out)
				if m.DeviceType != tc.deviceType || m.Title != tc.title || m.Maker.Name != tc.maker {
					t.Errorf("type %q title %q maker %q", m.DeviceType, m.Title, m.Maker.Name)
				}
				checkStreams(t, m, tc.streams)
				c := manifest.Compile(m)
				for stream, reading := range tc.read {
					if _, v := c.Check(stream, []byte(reading), false); v != nil {
						t.Errorf("reading %s on %s refused: %v", reading, stream, v)
					}
				}
				for _, instance := range []string{"12AE3010545", "bedroom01ae", "ea334450945afc", "Bedroom\"", "Garden", "motion01ad", "temp01ae", "35EBF6_RL_1", "3DPrinter"} {
					if strings.Contains(string(out), instance) {
						t.Errorf("%s, which identifies one device, was copied into the type's manifest", instance)
					}
				}
				// Device discovery names each component's platform.
				inferred := strings.Contains(string(out), "inferred from the payload")
				if inferred != (!withTopics && tc.dir != "kitchen") {
					t.Errorf("component inference noted %v with topics %v", inferred, withTopics)
				}
				checkConfirm(t, out)
			})
		}
	}
}

func TestHomeAssistantNamesTheSourceInDescriptions(t *testing.T) {
	out, err := FromHomeAssistantDiscovery("irrigation", readHA(t, "irrigation")...)
	if err != nil {
		t.Fatal(err)
	}
	m := checkDraft(t, out)
	s := m.Stream("garden")
	// The "~" base topic is expanded.
	if !strings.Contains(s.Description, `state_topic "homeassistant/switch/irrigation/state"`) {
		t.Errorf("description does not name the expanded state topic: %s", s.Description)
	}
	out, err = FromHomeAssistantDiscovery("plug", readHA(t, "printer-plug")...)
	if err != nil {
		t.Fatal(err)
	}
	m = checkDraft(t, out)
	if d := m.Stream("energy_total").Description; !strings.Contains(d, `value_template "{{value_json['ENERGY']['Total']}}"`) ||
		!strings.HasPrefix(d, "Suggested from Home Assistant device_class energy — check before confirming") {
		t.Errorf("energy_total description: %s", d)
	}
	if f := m.Stream("energy_total").Field("energy"); !strings.Contains(f.Description, "total_increasing") {
		t.Errorf("state_class not mentioned: %s", f.Description)
	}
	if !strings.Contains(m.Support.UpdateMechanism, "9.5.0(tasmota)") {
		t.Errorf("update mechanism does not mention the software version: %s", m.Support.UpdateMechanism)
	}
}

// Single entities written inline, to cover the device classes and
// components the documentation examples do not.
func TestHomeAssistantSuggestions(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string
		streams map[string]wantStream
		note    string // substring of the stream's or field's description
	}{
		{"heart rate from name", "", `{"name":"Heart rate","stat_t":"band/hr","unit_of_meas":"bpm","uniq_id":"hr1"}`,
			map[string]wantStream{"heart_rate": {fields: map[string]wantField{"value": num("beats per minute", 20, 300)},
				personal: []string{"pd:PhysicalHealth"}, purposes: []string{"candor:HealthMonitoring"}, reveals: "health"}},
			`entity name "Heart rate" (no device_class given)`},
		{"blood glucose", "", `{"name":"Glucose","state_topic":"cgm/state","unit_of_measurement":"mmol/L","device_class":"blood_glucose_concentration"}`,
			map[string]wantStream{"glucose": {fields: map[string]wantField{"blood_glucose_concentration": num("millimole per litre", 0, 55.5062167)},
				personal: []string{"pd:PhysicalHealth"}, purposes: []string{"candor:HealthMonitoring"}}}, ""},
		{"battery", "", `{"name":"Battery","state_topic":"s/bat","unit_of_measurement":"%","device_class":"battery","entity_category":"diagnostic"}`,
			map[string]wantStream{"battery": {fields: map[string]wantField{"battery": num("percent", 0, 100)},
				personal: none, purposes: devicePurpose}}, ""},
		{"fahrenheit", "", `{"name":"Porch","state_topic":"p/t","unit_of_measurement":"°F","device_class":"temperature"}`,
			map[string]wantStream{"porch": {fields: map[string]wantField{"temperature": num("degree Fahrenheit", -40, 257)},
				personal: none, purposes: ambientPurpose}}, ""},
		{"co2 and lux", "", `{"name":"CO2","state_topic":"a/co2","unit_of_measurement":"ppm","device_class":"carbon_dioxide"}`,
			map[string]wantStream{"co2": {fields: map[string]wantField{"carbon_dioxide": num("parts per million", 0, 10000)},
				personal: none, purposes: ambientPurpose}}, ""},
		{"unknown class", "", `{"name":"Mystery","state_topic":"m/s","unit_of_measurement":"zorks","device_class":"flux_capacity"}`,
			map[string]wantStream{"mystery": {fields: map[string]wantField{"flux_capacity": num("zorks", -1e9, 1e9)},
				personal: none, purposes: ambientPurpose, reveals: "unknown"}},
			"narrow it before confirming"},
		{"no class, no unit", "", `{"name":"Status","state_topic":"x/status"}`,
			map[string]wantStream{"status": {fields: map[string]wantField{"value": {typ: "string", maxLen: 256}},
				personal: none, purposes: ambientPurpose, reveals: "unknown"}}, "Nothing about its privacy"},
		{"enum sensor", "", `{"name":"Washer","state_topic":"w/s","device_class":"enum","options":["idle","washing","spinning"]}`,
			map[string]wantStream{"washer": {fields: map[string]wantField{"enum": enum("idle", "washing", "spinning")},
				personal: none, purposes: ambientPurpose}}, ""},
		{"door", "", `{"name":"Front door","state_topic":"d/s","device_class":"door","payload_on":"open","payload_off":"closed"}`,
			map[string]wantStream{"front_door": {fields: map[string]wantField{"door": boolean},
				personal: presence, purposes: presencePurpose}}, `payload_on "open" becomes true`},
		{"occupancy by topic, no class", "homeassistant/binary_sensor/hall/occupancy/config", `{"state_topic":"h/occ","object_id":"hall_occupancy"}`,
			map[string]wantStream{"hall_occupancy": {fields: map[string]wantField{"value": boolean},
				personal: presence, purposes: presencePurpose}}, ""},
		{"smoke", "", `{"name":"Smoke","state_topic":"s/s","device_class":"smoke"}`,
			map[string]wantStream{"smoke": {fields: map[string]wantField{"smoke": boolean},
				personal: none, purposes: []string{"candor:HomeSecurity"}}}, ""},
		{"camera", "", `{"name":"Doorbell","topic":"cam/doorbell/image","unique_id":"cam1"}`,
			map[string]wantStream{"doorbell": {fields: map[string]wantField{"image": {typ: "string", maxLen: 60000}},
				personal: []string{"candor:Image"}, purposes: []string{"candor:HomeSecurity"}, reveals: "camera"}}, "base64"},
		{"light, JSON schema", "", `{"~":"homeassistant/light/kitchen","name":"Kitchen","unique_id":"kitchen_light","cmd_t":"~/set","stat_t":"~/state","schema":"json","brightness":true}`,
			map[string]wantStream{"kitchen": {fields: map[string]wantField{"on": boolean},
				personal: presence, purposes: ambientPurpose}}, "Only on/off is imported"},
		{"default_entity_id names the stream", "", `{"name":"Temperature","default_entity_id":"sensor.attic_temp","state_topic":"a/t","unit_of_measurement":"°C","device_class":"temperature"}`,
			map[string]wantStream{"attic_temp": {fields: map[string]wantField{"temperature": num("degree Celsius", -40, 125)},
				personal: none, purposes: ambientPurpose}}, ""},
		{"accents", "", `{"name":"Umidità","state_topic":"u/h","unit_of_measurement":"%","device_class":"humidity"}`,
			map[string]wantStream{"umidita": {fields: map[string]wantField{"humidity": num("percent", 0, 100)},
				personal: none, purposes: ambientPurpose}}, ""},
		{"a stream may not be called control", "", `{"name":"Control","state_topic":"c/s","unit_of_measurement":"%"}`,
			map[string]wantStream{"control_2": {fields: map[string]wantField{"value": num("percent", -1e9, 1e9)},
				personal: none, purposes: ambientPurpose}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := FromHomeAssistantDiscovery("test-device", Discovery{Topic: tc.topic, Payload: []byte(tc.payload)})
			if err != nil {
				t.Fatal(err)
			}
			m := checkDraft(t, out)
			checkStreams(t, m, tc.streams)
			if tc.note != "" {
				found := false
				for _, s := range m.Streams {
					found = found || strings.Contains(s.Description, tc.note)
					for _, f := range s.Fields {
						found = found || strings.Contains(f.Description, tc.note)
					}
				}
				if !found {
					t.Errorf("no description mentions %q:\n%s", tc.note, out)
				}
			}
			checkConfirm(t, out)
		})
	}
}

func TestHomeAssistantSkipsWhatItCannotMap(t *testing.T) {
	out, err := FromHomeAssistant("mixed",
		[]byte(`{"name":"Temp","state_topic":"t","unit_of_measurement":"°C","device_class":"temperature"}`),
		[]byte(`{"name":"Blind","command_topic":"b/set","position_topic":"b/pos"}`),
		[]byte(`{"name":"Pump","command_topic":"p/set"}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	m := checkDraft(t, out)
	if got := strings.Join(m.StreamNames(), ","); got != "temp" {
		t.Errorf("streams %s", got)
	}
	for _, want := range []string{"config 2 (cover entity, inferred from its keys", "config 3 (switch without a state_topic reports nothing)"} {
		if !strings.Contains(m.Description, want) {
			t.Errorf("description does not list %q: %s", want, m.Description)
		}
	}
}

func TestHomeAssistantBadInput(t *testing.T) {
	temp := `{"name":"T","state_topic":"t","unit_of_measurement":"°C","device_class":"temperature","unique_id":"t1","device":{"identifiers":["a"]}}`
	tests := []struct {
		name    string
		topics  []string
		configs []string
		want    string
	}{
		{"nothing", nil, nil, "no Home Assistant discovery config given"},
		{"syntax", nil, []string{temp, "{\n  \"name\": \"x\",\n  \"stat_t\" \"y\"\n}"}, "config 2: not valid JSON: line 3, column 13"},
		{"truncated", nil, []string{`{"name": "x"`}, "config 1: not valid JSON: line 1, column 13"},
		{"trailing data", nil, []string{temp + ` {}`}, "config 1: not valid JSON: line 1, column"},
		{"not an object", nil, []string{`["state_topic"]`}, "config 1: must be a JSON object, not an array"},
		{"empty payload", nil, []string{temp, ""}, "config 2: empty payload"},
		{"sensor without state_topic", nil, []string{temp, `{"name":"H","unit_of_measurement":"%","device_class":"humidity"}`}, "config 2: state_topic missing"},
		{"binary_sensor without state_topic", []string{"homeassistant/binary_sensor/x/config"}, []string{`{"name":"M","device_class":"motion"}`}, "config 1: state_topic missing"},
		{"wrong type", nil, []string{`{"state_topic":"t","unit_of_measurement":5}`}, "config 1: unit_of_measurement must be a string, not a number"},
		{"wrong type, abbreviated", nil, []string{`{"stat_t":"t","unit_of_meas":["°C"]}`}, "config 1: unit_of_meas (unit_of_measurement) must be a string, not an array"},
		{"device not an object", nil, []string{`{"stat_t":"t","dev":"kitchen"}`}, "config 1: dev (device) must be an object, not a string"},
		{"two devices", nil, []string{temp, strings.Replace(strings.Replace(temp, `"a"`, `"b"`, 1), `"t1"`, `"t2"`, 1)}, `config 2: belongs to another device (identifiers b) than config 1`},
		{"same entity twice", nil, []string{temp, temp}, `config 2: unique_id "t1" repeats config 1`},
		{"bad topic", []string{"homeassistant/sensor/config"}, []string{temp}, `config 1: topic "homeassistant/sensor/config" is not`},
		{"component without platform", []string{"homeassistant/device/x/config"}, []string{`{"dev":{"ids":"x"},"cmps":{"t":{"device_class":"temperature"}},"stat_t":"s"}`}, `config 1, component "t": platform (p) missing`},
		{"device discovery without components", []string{"homeassistant/device/x/config"}, []string{`{"dev":{"ids":"x"}}`}, "config 1: a device discovery payload needs components"},
		{"components not an object", nil, []string{`{"cmps":["t"]}`}, "config 1: cmps (components) must be an object, not an array"},
		{"camera without topic", []string{"homeassistant/camera/c/config"}, []string{`{"name":"C"}`}, "config 1: topic missing"},
		{"bad number", []string{"homeassistant/climate/c/config"}, []string{`{"curr_temp_t":"c","min_temp":"cold"}`}, `config 1: min_temp must be a number, not "cold"`},
		{"only unsupported", nil, []string{`{"name":"Blind","command_topic":"b/set","position_topic":"b/pos"}`}, "nothing to import: config 1 (cover entity"},
		{"bad device type", nil, []string{temp}, `device type: "Bad Type" must be`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []Discovery
			for i, c := range tc.configs {
				d := Discovery{Payload: []byte(c)}
				if i < len(tc.topics) {
					d.Topic = tc.topics[i]
				}
				msgs = append(msgs, d)
			}
			dt := "t"
			if tc.name == "bad device type" {
				dt = "Bad Type"
			}
			out, err := FromHomeAssistantDiscovery(dt, msgs...)
			if out != nil {
				t.Error("a document was returned with the error")
			}
			errContains(t, err, tc.want)
		})
	}
}
