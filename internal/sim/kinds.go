package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// TopicRoot is the first level of every topic a device uses.
const TopicRoot = "candor"

// Topic is the topic a device publishes a stream's readings to:
// candor/<device-id>/<stream>.
func Topic(deviceID, stream string) string {
	return TopicRoot + "/" + deviceID + "/" + stream
}

// ControlTopic is the topic on which the hub tells a device whether to
// collect a stream: candor/<device-id>/control/<stream>.
func ControlTopic(deviceID, stream string) string {
	return TopicRoot + "/" + deviceID + "/control/" + stream
}

// ControlFilter is the subscription a device makes to hear every control
// message addressed to it: candor/<device-id>/control/+.
func ControlFilter(deviceID string) string {
	return TopicRoot + "/" + deviceID + "/control/+"
}

// StateTopic is where a device reports its firmware and hardware versions:
// candor/<device-id>/$state (docs/DEVICES.md).
func StateTopic(deviceID string) string {
	return TopicRoot + "/" + deviceID + "/$state"
}

// FieldType is the JSON type of a field in a reading.
type FieldType string

// Field types.
const (
	Number  FieldType = "number"  // a JSON number, within [Field.Min, Field.Max]
	Integer FieldType = "integer" // a JSON number without fraction, within [Field.Min, Field.Max]
	Boolean FieldType = "boolean" // true or false
	String  FieldType = "string"  // one of Field.Enum
)

// Field is one measured value in a reading. Its name carries its unit where
// it has one ("celsius", "humidity_percent", "kwh_total").
type Field struct {
	Name        string
	Type        FieldType
	Unit        string   // unit symbol, "" when the value has none
	Min, Max    float64  // inclusive range, for Number and Integer
	Enum        []string // allowed values, for String
	Increasing  bool     // a counter that never goes down
	Description string
}

// Stream is one series of readings a kind of device sends, each reading a
// JSON object with exactly the stream's fields.
type Stream struct {
	Name        string
	Description string
	// Interval is the time between two readings at Speed 1. For an event
	// stream it is the shortest gap between two events.
	Interval time.Duration
	// MaxInterval, when greater than Interval, makes this an event stream:
	// the gap to the next event is drawn uniformly from
	// [Interval, MaxInterval].
	MaxInterval time.Duration
	Fields      []Field
}

// Event reports whether readings come on random events rather than on a
// fixed period.
func (s Stream) Event() bool { return s.MaxInterval > s.Interval }

// FieldNames lists the stream's field names in declaration order.
func (s Stream) FieldNames() []string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	return names
}

// Check reports whether payload is a reading of this stream: a JSON object
// whose keys are exactly the stream's fields, each value of the declared
// type and within the declared range or enumeration.
func (s Stream) Check(payload []byte) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("stream %s: not a JSON object: %w", s.Name, err)
	}
	if obj == nil {
		return fmt.Errorf("stream %s: not a JSON object", s.Name)
	}
	if dec.More() {
		return fmt.Errorf("stream %s: trailing data after JSON object", s.Name)
	}
	for _, f := range s.Fields {
		v, ok := obj[f.Name]
		if !ok {
			return fmt.Errorf("stream %s: field %s missing", s.Name, f.Name)
		}
		if err := f.Check(v); err != nil {
			return fmt.Errorf("stream %s: %w", s.Name, err)
		}
	}
	if len(obj) != len(s.Fields) {
		var extra []string
		for k := range obj {
			if !slices.Contains(s.FieldNames(), k) {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		return fmt.Errorf("stream %s: undeclared fields %s", s.Name, strings.Join(extra, ", "))
	}
	return nil
}

// Check reports whether v, a value decoded from JSON (float64 or
// json.Number for numbers, bool, string), fits the field.
func (f Field) Check(v any) error {
	switch f.Type {
	case Number, Integer:
		var x float64
		switch n := v.(type) {
		case float64:
			x = n
		case json.Number:
			var err error
			if x, err = n.Float64(); err != nil {
				return fmt.Errorf("field %s: %w", f.Name, err)
			}
		default:
			return fmt.Errorf("field %s: want %s, got %T", f.Name, f.Type, v)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("field %s: not a finite number", f.Name)
		}
		if f.Type == Integer && x != math.Trunc(x) {
			return fmt.Errorf("field %s: %v is not an integer", f.Name, x)
		}
		if x < f.Min || x > f.Max {
			return fmt.Errorf("field %s: %v outside [%v, %v]", f.Name, x, f.Min, f.Max)
		}
	case Boolean:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("field %s: want boolean, got %T", f.Name, v)
		}
	case String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("field %s: want string, got %T", f.Name, v)
		}
		if !slices.Contains(f.Enum, s) {
			return fmt.Errorf("field %s: %q is not one of %s", f.Name, s, strings.Join(f.Enum, ", "))
		}
	default:
		return fmt.Errorf("field %s: unknown type %q", f.Name, f.Type)
	}
	return nil
}

// Kind is a kind of device: the streams it sends and how it behaves.
type Kind struct {
	Name        string
	Description string
	// StreamSpecs declares every stream the kind sends, in a fixed order.
	StreamSpecs []Stream
	// Firmware and Hardware are the versions the kind reports on its
	// state topic after each connect.
	Firmware string
	Hardware string

	newModel func(r *rand.Rand, now time.Time) model
}

// Streams lists the names of the kind's streams in declaration order.
func (k Kind) Streams() []string {
	names := make([]string, len(k.StreamSpecs))
	for i, s := range k.StreamSpecs {
		names[i] = s.Name
	}
	return names
}

// Stream returns the declaration of the named stream.
func (k Kind) Stream(name string) (Stream, bool) {
	for _, s := range k.StreamSpecs {
		if s.Name == name {
			return s, true
		}
	}
	return Stream{}, false
}

// KindNames lists the names of all kinds, sorted.
func KindNames() []string {
	names := make([]string, 0, len(Kinds))
	for n := range Kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Motion zones a camera watches, and sleep stages a wearable reports.
var (
	motionZones = []string{"hall", "garden", "driveway"}
	sleepStages = []string{"awake", "light", "deep", "rem"}
)

// Kinds is the table of every kind of device the simulator knows, keyed by
// kind name. Treat it as read-only.
var Kinds = map[string]Kind{
	"thermostat": {
		Name:        "thermostat",
		Firmware:    "1.3.0",
		Hardware:    "rev-b",
		Description: "Room thermostat: measures temperature and humidity, holds a setpoint and switches the heating.",
		StreamSpecs: []Stream{
			{
				Name:        "temperature",
				Description: "Room climate; follows the day and the heating.",
				Interval:    5 * time.Second,
				Fields: []Field{
					{Name: "celsius", Type: Number, Unit: "°C", Min: 15, Max: 28, Description: "air temperature"},
					{Name: "humidity_percent", Type: Number, Unit: "%", Min: 30, Max: 70, Description: "relative humidity"},
				},
			},
			{
				Name:        "setpoint",
				Description: "Target temperature; changes rarely: day and night program, and now and then someone turns the dial.",
				Interval:    60 * time.Second,
				Fields: []Field{
					{Name: "celsius", Type: Number, Unit: "°C", Min: 17, Max: 23, Description: "target temperature"},
				},
			},
			{
				Name:        "heating",
				Description: "Whether the thermostat calls for heat.",
				Interval:    10 * time.Second,
				Fields: []Field{
					{Name: "on", Type: Boolean, Description: "heating switched on"},
				},
			},
		},
		newModel: newThermostat,
	},
	"smart-meter": {
		Name:        "smart-meter",
		Firmware:    "2.1.0",
		Description: "Electricity meter: the household's power draw and the meter reading.",
		StreamSpecs: []Stream{
			{
				Name:        "power",
				Description: "Instantaneous power; a daily load curve with appliance spikes.",
				Interval:    2 * time.Second,
				Fields: []Field{
					{Name: "watts", Type: Number, Unit: "W", Min: 80, Max: 4000, Description: "power drawn"},
				},
			},
			{
				Name:        "energy",
				Description: "Meter register; only ever goes up.",
				Interval:    30 * time.Second,
				Fields: []Field{
					{Name: "kwh_total", Type: Number, Unit: "kWh", Min: 0, Max: 10_000_000, Increasing: true, Description: "energy used since the meter was installed"},
				},
			},
		},
		newModel: newSmartMeter,
	},
	"door-sensor": {
		Name:        "door-sensor",
		Firmware:    "1.0.4",
		Description: "Contact sensor on a door, running on a battery.",
		StreamSpecs: []Stream{
			{
				Name:        "contact",
				Description: "Sent each time the door opens or closes.",
				Interval:    10 * time.Second,
				MaxInterval: 60 * time.Second,
				Fields: []Field{
					{Name: "open", Type: Boolean, Description: "door open"},
				},
			},
			{
				Name:        "battery",
				Description: "Battery charge; falls slowly, about 2 % a day.",
				Interval:    60 * time.Second,
				Fields: []Field{
					{Name: "percent", Type: Number, Unit: "%", Min: 0, Max: 100, Description: "charge left"},
				},
			},
		},
		newModel: newDoorSensor,
	},
	"motion-camera": {
		Name:        "motion-camera",
		Firmware:    "3.2.1",
		Hardware:    "v2",
		Description: "Camera that reports motion events (never video) and whether it is recording.",
		StreamSpecs: []Stream{
			{
				Name:        "motion",
				Description: "Sent when motion is detected in a zone; rarer at night.",
				Interval:    15 * time.Second,
				MaxInterval: 120 * time.Second,
				Fields: []Field{
					{Name: "detected", Type: Boolean, Description: "motion seen (always true on an event)"},
					{Name: "zone", Type: String, Enum: motionZones, Description: "where the motion was"},
					{Name: "confidence", Type: Number, Min: 0, Max: 1, Description: "detector confidence"},
				},
			},
			{
				Name:        "status",
				Description: "Whether the camera is recording; it records for a while after motion.",
				Interval:    30 * time.Second,
				Fields: []Field{
					{Name: "recording", Type: Boolean, Description: "camera recording"},
				},
			},
		},
		newModel: newMotionCamera,
	},
	"wearable": {
		Name:        "wearable",
		Firmware:    "0.9.7",
		Description: "Wrist wearable: heart rate, steps and sleep of the person wearing it.",
		StreamSpecs: []Stream{
			{
				Name:        "heart_rate",
				Description: "Pulse; rises with activity, lowest asleep.",
				Interval:    5 * time.Second,
				Fields: []Field{
					{Name: "bpm", Type: Integer, Unit: "bpm", Min: 50, Max: 160, Description: "beats per minute"},
				},
			},
			{
				Name:        "steps",
				Description: "Steps walked today; starts again at midnight.",
				Interval:    15 * time.Second,
				Fields: []Field{
					{Name: "count", Type: Integer, Unit: "steps", Min: 0, Max: 100_000, Description: "steps since midnight"},
				},
			},
			{
				Name:        "sleep",
				Description: "Sleep stage.",
				Interval:    60 * time.Second,
				Fields: []Field{
					{Name: "stage", Type: String, Enum: sleepStages, Description: "awake, light, deep or rem"},
				},
			},
		},
		newModel: newWearable,
	},
}
