package senml

import "testing"

func TestUnitFor(t *testing.T) {
	tests := []struct{ unit, name, want string }{
		{"degree Celsius", "temperature:celsius", "Cel"},
		{"Degrees celsius", "x", "Cel"},
		{"percent", "temperature:humidity_percent", "%RH"},
		{"percent", "battery:percent", "%EL"},
		{"percent", "window:open_percent", "%"},
		{"%", "humidity", "%RH"},
		{"watt", "power:watts", "W"},
		{"kilowatt hour", "energy:kwh_total", "kWh"},
		{"kilowatt-hour", "energy", "kWh"},
		{"beats per minute", "heart_rate:bpm", "beat/min"},
		{"steps", "steps:count", "count"},
		{"count", "x", "count"},
		{"ratio", "motion:confidence", "/"},
		{"Cel", "x", "Cel"},
		{"kWh", "x", "kWh"},
		{"furlongs per fortnight", "x", ""},
		{"", "x", ""},
		{"cel", "x", ""}, // symbols are case-sensitive and "cel" is no plain word
	}
	for _, tc := range tests {
		if got := UnitFor(tc.unit, tc.name); got != tc.want {
			t.Errorf("UnitFor(%q, %q) = %q, want %q", tc.unit, tc.name, got, tc.want)
		}
		if tc.want != "" && !IsUnit(tc.want) && !IsSecondaryUnit(tc.want) {
			t.Errorf("%q is in neither registry", tc.want)
		}
	}
	for plain, sym := range plainUnits {
		if !IsUnit(sym) && !IsSecondaryUnit(sym) {
			t.Errorf("%q maps to %q, which is in neither registry", plain, sym)
		}
	}
}
