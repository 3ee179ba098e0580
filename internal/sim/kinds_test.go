package sim

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"
)

var namePattern = regexp.MustCompile(`^[a-z0-9_]+$`)

func TestKindsTable(t *testing.T) {
	want := []string{"door-sensor", "motion-camera", "smart-meter", "thermostat", "wearable"}
	if got := KindNames(); !slices.Equal(got, want) {
		t.Fatalf("KindNames() = %v, want %v", got, want)
	}
	for name, k := range Kinds {
		if k.Name != name {
			t.Errorf("Kinds[%q].Name = %q", name, k.Name)
		}
		if k.newModel == nil {
			t.Errorf("%s: no model", name)
		}
		if len(k.StreamSpecs) == 0 || !slices.Equal(k.Streams(), streamNames(k)) {
			t.Errorf("%s: Streams() = %v", name, k.Streams())
		}
		seen := map[string]bool{}
		for _, st := range k.StreamSpecs {
			if !namePattern.MatchString(st.Name) || st.Name == "control" || seen[st.Name] {
				t.Errorf("%s: bad or repeated stream name %q", name, st.Name)
			}
			seen[st.Name] = true
			if got, ok := k.Stream(st.Name); !ok || got.Name != st.Name {
				t.Errorf("%s: Stream(%q) not found", name, st.Name)
			}
			if st.Interval <= 0 || (st.MaxInterval != 0 && st.MaxInterval <= st.Interval) {
				t.Errorf("%s/%s: bad intervals %v..%v", name, st.Name, st.Interval, st.MaxInterval)
			}
			if len(st.Fields) == 0 {
				t.Errorf("%s/%s: no fields", name, st.Name)
			}
			fields := map[string]bool{}
			for _, f := range st.Fields {
				if !namePattern.MatchString(f.Name) || fields[f.Name] {
					t.Errorf("%s/%s: bad or repeated field %q", name, st.Name, f.Name)
				}
				fields[f.Name] = true
				switch f.Type {
				case Number, Integer:
					if !(f.Min < f.Max) {
						t.Errorf("%s/%s.%s: range %v..%v", name, st.Name, f.Name, f.Min, f.Max)
					}
				case String:
					if len(f.Enum) == 0 {
						t.Errorf("%s/%s.%s: string without enum", name, st.Name, f.Name)
					}
				case Boolean:
				default:
					t.Errorf("%s/%s.%s: type %q", name, st.Name, f.Name, f.Type)
				}
			}
		}
		if _, ok := k.Stream("nope"); ok {
			t.Errorf("%s: Stream(nope) found", name)
		}
	}
}

func streamNames(k Kind) []string {
	var n []string
	for _, s := range k.StreamSpecs {
		n = append(n, s.Name)
	}
	return n
}

func TestTopics(t *testing.T) {
	if got := Topic("dev_1", "power"); got != "candor/dev_1/power" {
		t.Errorf("Topic = %q", got)
	}
	if got := ControlTopic("dev_1", "power"); got != "candor/dev_1/control/power" {
		t.Errorf("ControlTopic = %q", got)
	}
	if got := ControlFilter("dev_1"); got != "candor/dev_1/control/+" {
		t.Errorf("ControlFilter = %q", got)
	}
}

func TestStreamCheck(t *testing.T) {
	temp, _ := Kinds["thermostat"].Stream("temperature")
	motion, _ := Kinds["motion-camera"].Stream("motion")
	steps, _ := Kinds["wearable"].Stream("steps")
	cases := []struct {
		st      Stream
		payload string
		ok      bool
	}{
		{temp, `{"celsius":21.5,"humidity_percent":40}`, true},
		{temp, `{"celsius":21.5}`, false},                                    // missing field
		{temp, `{"celsius":21.5,"humidity_percent":40,"t":1}`, false},        // extra field
		{temp, `{"celsius":30,"humidity_percent":40}`, false},                // out of range
		{temp, `{"celsius":"21","humidity_percent":40}`, false},              // wrong type
		{temp, `[21.5, 40]`, false},                                          // not an object
		{temp, `null`, false},                                                // not an object
		{temp, `{"celsius":21.5,"humidity_percent":40} {}`, false},           // trailing data
		{motion, `{"detected":true,"zone":"garden","confidence":0.5}`, true}, //
		{motion, `{"detected":true,"zone":"kitchen","confidence":0.5}`, false},
		{motion, `{"detected":1,"zone":"garden","confidence":0.5}`, false},
		{steps, `{"count":12}`, true},
		{steps, `{"count":12.5}`, false},
		{steps, `{"count":-1}`, false},
	}
	for _, c := range cases {
		err := c.st.Check([]byte(c.payload))
		if (err == nil) != c.ok {
			t.Errorf("%s.Check(%s) = %v, want ok=%v", c.st.Name, c.payload, err, c.ok)
		}
	}
}

// reading is one simulated reading, for model tests.
type reading struct {
	stream  string
	at      time.Time
	payload []byte
}

// simulate drives a model as the device's scheduler would, in simulated time,
// for the given span, and returns every reading.
func simulate(t *testing.T, k Kind, seed uint64, start time.Time, span time.Duration) []reading {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	sched := rand.New(rand.NewPCG(seed, 2))
	m := k.newModel(r, start)
	next := make([]time.Time, len(k.StreamSpecs))
	gap := func(st Stream) time.Duration {
		if st.Event() {
			return st.Interval + time.Duration(sched.Int64N(int64(st.MaxInterval-st.Interval)))
		}
		return st.Interval
	}
	for i, st := range k.StreamSpecs {
		next[i] = start.Add(gap(st))
	}
	var out []reading
	end := start.Add(span)
	for {
		i := 0
		for j := range next {
			if next[j].Before(next[i]) {
				i = j
			}
		}
		now := next[i]
		if now.After(end) {
			return out
		}
		st := k.StreamSpecs[i]
		m.advance(now)
		next[i] = now.Add(gap(st))
		fields := m.reading(st.Name)
		if fields == nil {
			continue
		}
		b, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, reading{st.Name, now, b})
	}
}

// TestModelsRealistic runs every kind for two simulated days and checks
// that each reading is valid, small, and that the values behave like the
// real thing: counters rise, batteries fall, booleans and enums vary.
func TestModelsRealistic(t *testing.T) {
	start := time.Date(2026, 1, 12, 6, 0, 0, 0, time.UTC)
	for _, name := range KindNames() {
		k := Kinds[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := simulate(t, k, 42, start, 48*time.Hour)
			values := map[string]map[string]map[any]bool{} // stream → field → distinct values
			var lastKWh, lastBattery float64 = -1, 101
			lastSteps, lastDay := -1, -1
			heatingTemps := map[bool][]float64{}
			var prevTemp, prevSetpoint float64
			for _, rd := range rs {
				st, _ := k.Stream(rd.stream)
				if err := st.Check(rd.payload); err != nil {
					t.Fatalf("%s at %v: %v (%s)", rd.stream, rd.at, err, rd.payload)
				}
				if n := len(rd.payload); n > 150 {
					t.Errorf("%s: payload of %d bytes", rd.stream, n)
				}
				var obj map[string]any
				_ = json.Unmarshal(rd.payload, &obj)
				if values[rd.stream] == nil {
					values[rd.stream] = map[string]map[any]bool{}
				}
				for f, v := range obj {
					if values[rd.stream][f] == nil {
						values[rd.stream][f] = map[any]bool{}
					}
					values[rd.stream][f][v] = true
				}
				switch rd.stream {
				case "energy":
					v := obj["kwh_total"].(float64)
					if v < lastKWh {
						t.Fatalf("kwh_total fell from %v to %v", lastKWh, v)
					}
					lastKWh = v
				case "battery":
					v := obj["percent"].(float64)
					if v > lastBattery {
						t.Fatalf("battery rose from %v to %v", lastBattery, v)
					}
					lastBattery = v
				case "steps":
					v := int(obj["count"].(float64))
					if rd.at.YearDay() == lastDay && v < lastSteps {
						t.Fatalf("steps fell within a day from %d to %d", lastSteps, v)
					}
					lastSteps, lastDay = v, rd.at.YearDay()
				case "temperature":
					prevTemp = obj["celsius"].(float64)
				case "setpoint":
					prevSetpoint = obj["celsius"].(float64)
				case "heating":
					if prevSetpoint > 0 {
						on := obj["on"].(bool)
						heatingTemps[on] = append(heatingTemps[on], prevTemp-prevSetpoint)
					}
				}
			}
			for _, st := range k.StreamSpecs {
				if len(values[st.Name]) == 0 {
					t.Errorf("stream %s never sent", st.Name)
					continue
				}
				for _, f := range st.Fields {
					seen := values[st.Name][f.Name]
					switch {
					case f.Type == Boolean && st.Name != "motion" && len(seen) != 2:
						t.Errorf("%s.%s took only %v", st.Name, f.Name, seen)
					case f.Type == String && len(seen) != len(f.Enum):
						t.Errorf("%s.%s took only %v of %v", st.Name, f.Name, seen, f.Enum)
					case (f.Type == Number || f.Type == Integer) && len(seen) < 2:
						t.Errorf("%s.%s barely varies: %v", st.Name, f.Name, seen)
					}
				}
			}
			if name == "thermostat" && mean(heatingTemps[true]) >= mean(heatingTemps[false]) {
				t.Errorf("heating on at %.1f °C from setpoint on average, off at %.1f °C: want on when colder",
					mean(heatingTemps[true]), mean(heatingTemps[false]))
			}
		})
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestModelsDeterministic(t *testing.T) {
	start := time.Date(2026, 6, 1, 20, 0, 0, 0, time.UTC)
	for _, name := range KindNames() {
		a := simulate(t, Kinds[name], 7, start, 6*time.Hour)
		b := simulate(t, Kinds[name], 7, start, 6*time.Hour)
		c := simulate(t, Kinds[name], 8, start, 6*time.Hour)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: same seed, different readings", name)
		}
		if reflect.DeepEqual(a, c) {
			t.Errorf("%s: different seeds, same readings", name)
		}
	}
}

func TestWearableFollowsTheDay(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	rs := simulate(t, Kinds["wearable"], 3, start, 24*time.Hour)
	var nightBPM, dayBPM []float64
	for _, rd := range rs {
		var obj map[string]any
		_ = json.Unmarshal(rd.payload, &obj)
		h := rd.at.Hour()
		switch rd.stream {
		case "heart_rate":
			if h >= 1 && h < 6 {
				nightBPM = append(nightBPM, obj["bpm"].(float64))
			} else if h >= 9 && h < 21 {
				dayBPM = append(dayBPM, obj["bpm"].(float64))
			}
		case "sleep":
			stage := obj["stage"].(string)
			if h >= 9 && h < 21 && stage != "awake" {
				t.Fatalf("asleep (%s) at %v", stage, rd.at)
			}
		case "steps":
			if h == 3 && obj["count"].(float64) != 0 {
				t.Fatalf("%v steps by 03:00", obj["count"])
			}
		}
	}
	if mean(nightBPM) >= mean(dayBPM) {
		t.Errorf("night heart rate %.0f not below day %.0f", mean(nightBPM), mean(dayBPM))
	}
}
