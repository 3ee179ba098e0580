package senml

import "strings"

// primaryUnits is the SenML Units registry: RFC 8428 §12.1 and the units
// RFC 8798 §2 added. Units the registry marks "NOT RECOMMENDED to be
// produced" (g, l, l/s, Bspl, 1/min, beat/min, beats) are listed because
// readers must accept them; UnitFor produces only beat/min of these (see
// there).
var primaryUnits = map[string]bool{
	"m": true, "kg": true, "g": true, "s": true, "A": true, "K": true,
	"cd": true, "mol": true, "Hz": true, "rad": true, "sr": true, "N": true,
	"Pa": true, "J": true, "W": true, "C": true, "V": true, "F": true,
	"Ohm": true, "S": true, "Wb": true, "T": true, "H": true, "Cel": true,
	"lm": true, "lx": true, "Bq": true, "Gy": true, "Sv": true, "kat": true,
	"m2": true, "m3": true, "l": true, "m/s": true, "m/s2": true,
	"m3/s": true, "l/s": true, "W/m2": true, "cd/m2": true, "bit": true,
	"bit/s": true, "lat": true, "lon": true, "pH": true, "dB": true,
	"dBW": true, "Bspl": true, "count": true, "/": true, "%": true,
	"%RH": true, "%EL": true, "EL": true, "1/s": true, "1/min": true,
	"beat/min": true, "beats": true, "S/m": true,
	// RFC 8798 §2
	"B": true, "VA": true, "VAs": true, "var": true, "vars": true,
	"J/m": true, "kg/m3": true, "deg": true,
}

// secondaryUnits is the Secondary Units registry of RFC 8798 §3: scaled
// forms of primary units. A Pack may use them only when its version says so
// (VersionSecondaryUnits, RFC 9100 §4).
var secondaryUnits = map[string]bool{
	"ms": true, "min": true, "h": true, "MHz": true, "kW": true,
	"kVA": true, "kvar": true, "Ah": true, "Wh": true, "kWh": true,
	"varh": true, "kvarh": true, "kVAh": true, "Wh/km": true, "KiB": true,
	"GB": true, "Mbit/s": true, "B/s": true, "MB/s": true, "mV": true,
	"mA": true, "dBm": true, "ug/m3": true, "mm/h": true, "m/h": true,
	"ppm": true, "/100": true, "/1000": true, "hPa": true, "mm": true,
	"cm": true, "km": true, "km/h": true,
}

// IsUnit reports whether sym is a unit of the SenML Units registry.
func IsUnit(sym string) bool { return primaryUnits[sym] }

// IsSecondaryUnit reports whether sym is an RFC 8798 secondary unit.
func IsSecondaryUnit(sym string) bool { return secondaryUnits[sym] }

// plainUnits maps the plain-language units manifests use (lower case,
// single spaces) to SenML symbols. Plurals and common spellings are listed
// explicitly rather than guessed.
var plainUnits = map[string]string{
	"degree celsius": "Cel", "degrees celsius": "Cel", "celsius": "Cel",
	"°c": "Cel", "degree c": "Cel",
	"kelvin":  "K",
	"percent": "%", "per cent": "%", "percentage": "%",
	"ratio": "/", "fraction": "/",
	"watt": "W", "watts": "W",
	"kilowatt": "kW", "kilowatts": "kW",
	"watt hour": "Wh", "watt hours": "Wh",
	"kilowatt hour": "kWh", "kilowatt hours": "kWh",
	"joule": "J", "joules": "J",
	"volt": "V", "volts": "V",
	"millivolt": "mV", "millivolts": "mV",
	"ampere": "A", "amperes": "A", "amp": "A", "amps": "A",
	"milliampere": "mA", "milliamperes": "mA",
	"volt ampere": "VA", "volt amperes": "VA",
	"hertz": "Hz",
	// RFC 8428 marks beat/min "NOT RECOMMENDED to be produced"; its
	// replacement (1/s) would need the value divided by 60, and an export
	// must keep the number the device sent. So beat/min it is.
	"beats per minute": "beat/min", "beat per minute": "beat/min", "bpm": "beat/min",
	"count": "count", "counts": "count", "steps": "count", "step": "count",
	"events": "count",
	"second": "s", "seconds": "s",
	"millisecond": "ms", "milliseconds": "ms",
	"minute": "min", "minutes": "min",
	"hour": "h", "hours": "h",
	"metre": "m", "metres": "m", "meter": "m", "meters": "m",
	"millimetre": "mm", "millimetres": "mm", "millimeter": "mm", "millimeters": "mm",
	"centimetre": "cm", "centimetres": "cm", "centimeter": "cm", "centimeters": "cm",
	"kilometre": "km", "kilometres": "km", "kilometer": "km", "kilometers": "km",
	"metre per second": "m/s", "metres per second": "m/s",
	"meter per second": "m/s", "meters per second": "m/s",
	"kilometre per hour": "km/h", "kilometres per hour": "km/h",
	"kilometer per hour": "km/h", "kilometers per hour": "km/h",
	"kilogram": "kg", "kilograms": "kg",
	"pascal": "Pa", "pascals": "Pa",
	"hectopascal": "hPa", "hectopascals": "hPa",
	"lux":     "lx",
	"decibel": "dB", "decibels": "dB",
	"parts per million": "ppm", "ppm": "ppm",
	"microgram per cubic metre": "ug/m3", "micrograms per cubic metre": "ug/m3",
	"microgram per cubic meter": "ug/m3", "micrograms per cubic meter": "ug/m3",
	"degree latitude": "lat", "degrees latitude": "lat", "latitude": "lat",
	"degree longitude": "lon", "degrees longitude": "lon", "longitude": "lon",
	"byte": "B", "bytes": "B",
	"bit": "bit", "bits": "bit",
	"bit per second": "bit/s", "bits per second": "bit/s",
	"cubic metre": "m3", "cubic metres": "m3", "cubic meter": "m3", "cubic meters": "m3",
	"square metre": "m2", "square metres": "m2", "square meter": "m2", "square meters": "m2",
}

// UnitFor returns the SenML unit symbol for a manifest's unit, or "" when
// SenML has none (the caller then leaves the unit out of the Record).
//
// unit may already be a SenML symbol ("Cel", "kWh"), which is returned as
// it is, or plain language ("degree Celsius", "kilowatt hour"), matched
// without regard to case, '-' and '_'. name is the value's name (for
// example "temperature:humidity_percent"); it refines percentages, which
// SenML distinguishes: "%RH" when the name mentions humidity, "%EL" (battery
// level) when it mentions a battery, "%" otherwise.
//
// The result may be a secondary unit (see IsSecondaryUnit), which needs
// VersionSecondaryUnits.
func UnitFor(unit, name string) string {
	u := strings.TrimSpace(unit)
	sym := ""
	switch {
	case u == "":
		return ""
	case primaryUnits[u] || secondaryUnits[u]:
		sym = u
	default:
		key := strings.Join(strings.Fields(strings.NewReplacer("-", " ", "_", " ").Replace(strings.ToLower(u))), " ")
		sym = plainUnits[key]
	}
	if sym == "%" {
		n := strings.ToLower(name)
		switch {
		case strings.Contains(n, "humid"):
			return "%RH"
		case strings.Contains(n, "battery"):
			return "%EL"
		}
	}
	return sym
}
