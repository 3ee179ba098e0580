package importer

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/manifest"
)

// fuzzCheck asserts what must hold for any input: an error is an
// *InputError with text, and a document is a valid draft that Confirm
// accepts.
func fuzzCheck(t *testing.T, out []byte, err error) {
	if err != nil {
		var ie *InputError
		if !errors.As(err, &ie) || err.Error() == "" {
			t.Fatalf("error %v (%T) is not a located input error", err, err)
		}
		if out != nil {
			t.Fatal("a document was returned with an error")
		}
		return
	}
	m, perr := manifest.Parse("fuzz", out)
	if perr != nil {
		t.Fatalf("output does not parse: %v\n%s", perr, out)
	}
	if !m.Draft {
		t.Fatal("output is not a draft")
	}
	for _, s := range m.Streams {
		if s.Topic != manifest.TopicTemplate+s.Name {
			t.Fatalf("stream %s has topic %s", s.Name, s.Topic)
		}
	}
	confirmed, cerr := Confirm(out)
	if cerr != nil {
		t.Fatalf("Confirm: %v", cerr)
	}
	if m, perr = manifest.Parse("fuzz", confirmed); perr != nil || m.Draft {
		t.Fatalf("confirmed output: %v, draft %v", perr, m != nil && m.Draft)
	}
}

func FuzzFromHomeAssistant(f *testing.F) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "homeassistant", "*"))
	sort.Strings(dirs)
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.json"))
		sort.Strings(files)
		var payloads [][]byte
		var topics []string
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			payloads = append(payloads, b)
			topics = append(topics, strings.ReplaceAll(strings.TrimSuffix(filepath.Base(file), ".json"), "__", "/"))
		}
		second := []byte{}
		if len(payloads) > 1 {
			second = payloads[1]
		}
		f.Add(topics[0], payloads[0], second)
		f.Add("", payloads[0], second)
	}
	f.Add("", []byte(`{"stat_t":"t","unit_of_meas":"°F","dev_cla":"temperature","dev":{"ids":["a"],"name":"A"}}`), []byte(`{"~":"b","stat_t":"~/s","pl_on":1}`))
	f.Add("homeassistant/climate/x/config", []byte(`{"curr_temp_t":"c","temp_stat_t":"s","min_temp":"30","max_temp":"10","modes":["a","a"]}`), []byte{})
	f.Add("homeassistant/device/x/config", []byte(`{"dev":{"ids":"x"},"cmps":{"a":{"p":"binary_sensor","dev_cla":"door"},"b":{"p":"camera","t":"img"}},"stat_t":"s"}`), []byte(`{"name":null}`))
	f.Fuzz(func(t *testing.T, topic string, a, b []byte) {
		msgs := []Discovery{{Topic: topic, Payload: a}}
		if len(b) > 0 {
			msgs = append(msgs, Discovery{Payload: b})
		}
		out, err := FromHomeAssistantDiscovery("", msgs...)
		fuzzCheck(t, out, err)
	})
}

func FuzzFromZigbee2MQTT(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "zigbee2mqtt", "*.json"))
	sort.Strings(files)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"definition":{"model":"M","exposes":[{"type":"composite","property":"c","features":[{"type":"binary","name":"b","property":"b","access":1,"value_on":1,"value_off":0}]},{"type":"enum","name":"e","property":"e","access":7,"values":[3,1]},{"type":"numeric","name":"temperature","property":"t","access":1,"unit":"°F","value_min":500}]}}`))
	f.Add([]byte(`[{"exposes":[{"type":"list","name":"l","property":"l","access":1}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := FromZigbee2MQTT("", data)
		fuzzCheck(t, out, err)
	})
}

func FuzzConfirm(f *testing.F) {
	in, err := os.ReadFile(filepath.Join("testdata", "zigbee2mqtt", "aqara_mccgq11lm.json"))
	if err != nil {
		f.Fatal(err)
	}
	draft, err := FromZigbee2MQTT("door", in)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(draft)
	f.Add([]byte(`{"candor:draft": true}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := Confirm(doc)
		if err != nil {
			return
		}
		m, perr := manifest.Parse("fuzz", out)
		if perr != nil || m.Draft {
			t.Fatalf("Confirm returned %v, draft %v", perr, m != nil && m.Draft)
		}
	})
}
