package importer

import (
	"math"
	"strconv"
	"strings"
)

// This file holds the tables the suggestions come from: units (with the
// words a label shows and how to convert them), kinds of reading (with a
// wide but finite range and a privacy profile), and the privacy profiles
// themselves. Every table entry is a suggestion the owner confirms.

// unitInfo describes a unit symbol as published by Home Assistant or
// Zigbee2MQTT. A value v in this unit is v*factor+offset in the base unit of
// its dimension (degree Celsius for temperature, hectopascal for pressure,
// watt for power, …).
type unitInfo struct {
	words  string
	dim    string
	factor float64
	offset float64
}

var units = map[string]unitInfo{
	// temperature (base degree Celsius)
	"°C": {"degree Celsius", "temperature", 1, 0},
	"℃":  {"degree Celsius", "temperature", 1, 0},
	"C":  {"degree Celsius", "temperature", 1, 0},
	"ºC": {"degree Celsius", "temperature", 1, 0},
	"°F": {"degree Fahrenheit", "temperature", 5.0 / 9, -160.0 / 9},
	"℉":  {"degree Fahrenheit", "temperature", 5.0 / 9, -160.0 / 9},
	"F":  {"degree Fahrenheit", "temperature", 5.0 / 9, -160.0 / 9},
	"K":  {"kelvin", "temperature", 1, -273.15},
	// ratios (base percent)
	"%": {"percent", "percent", 1, 0},
	// power (base watt)
	"W":    {"watt", "power", 1, 0},
	"kW":   {"kilowatt", "power", 1000, 0},
	"mW":   {"milliwatt", "power", 0.001, 0},
	"MW":   {"megawatt", "power", 1e6, 0},
	"VA":   {"volt-ampere", "apparent_power", 1, 0},
	"kVA":  {"kilovolt-ampere", "apparent_power", 1000, 0},
	"var":  {"volt-ampere reactive", "reactive_power", 1, 0},
	"VAR":  {"volt-ampere reactive", "reactive_power", 1, 0},
	"kvar": {"kilovolt-ampere reactive", "reactive_power", 1000, 0},
	// energy (base kilowatt hour)
	"Wh":  {"watt hour", "energy", 0.001, 0},
	"kWh": {"kilowatt hour", "energy", 1, 0},
	"MWh": {"megawatt hour", "energy", 1000, 0},
	"GWh": {"gigawatt hour", "energy", 1e6, 0},
	"kJ":  {"kilojoule", "energy", 1.0 / 3600, 0},
	"MJ":  {"megajoule", "energy", 1.0 / 3.6, 0},
	"GJ":  {"gigajoule", "energy", 1000 / 3.6, 0},
	// electricity
	"V":   {"volt", "voltage", 1, 0},
	"mV":  {"millivolt", "voltage", 0.001, 0},
	"kV":  {"kilovolt", "voltage", 1000, 0},
	"A":   {"ampere", "current", 1, 0},
	"mA":  {"milliampere", "current", 0.001, 0},
	"Hz":  {"hertz", "frequency", 1, 0},
	"kHz": {"kilohertz", "frequency", 1000, 0},
	"MHz": {"megahertz", "frequency", 1e6, 0},
	"GHz": {"gigahertz", "frequency", 1e9, 0},
	// light
	"lx":    {"lux", "illuminance", 1, 0},
	"lux":   {"lux", "illuminance", 1, 0},
	"W/m²":  {"watt per square metre", "irradiance", 1, 0},
	"W/m2":  {"watt per square metre", "irradiance", 1, 0},
	"mired": {"mired", "color_temp", 1, 0},
	// concentrations (base parts per million; micrograms per cubic metre)
	"ppm":   {"parts per million", "ppm", 1, 0},
	"ppb":   {"parts per billion", "ppm", 0.001, 0},
	"µg/m³": {"microgram per cubic metre", "mass_concentration", 1, 0},
	"μg/m³": {"microgram per cubic metre", "mass_concentration", 1, 0},
	"ug/m3": {"microgram per cubic metre", "mass_concentration", 1, 0},
	"mg/m³": {"milligram per cubic metre", "mass_concentration", 1000, 0},
	"mg/m3": {"milligram per cubic metre", "mass_concentration", 1000, 0},
	// pressure (base hectopascal)
	"hPa":  {"hectopascal", "pressure", 1, 0},
	"mbar": {"millibar", "pressure", 1, 0},
	"Pa":   {"pascal", "pressure", 0.01, 0},
	"kPa":  {"kilopascal", "pressure", 10, 0},
	"bar":  {"bar", "pressure", 1000, 0},
	"cbar": {"centibar", "pressure", 10, 0},
	"psi":  {"pound per square inch", "pressure", 68.9476, 0},
	"inHg": {"inch of mercury", "pressure", 33.8639, 0},
	"mmHg": {"millimetre of mercury", "pressure", 1.33322, 0},
	// sound and signal
	"dB":  {"decibel", "decibel", 1, 0},
	"dBA": {"A-weighted decibel", "decibel", 1, 0},
	"dBm": {"decibel-milliwatt", "dbm", 1, 0},
	"lqi": {"link quality indicator", "lqi", 1, 0},
	// time (base second)
	"ms":  {"millisecond", "duration", 0.001, 0},
	"s":   {"second", "duration", 1, 0},
	"min": {"minute", "duration", 60, 0},
	"h":   {"hour", "duration", 3600, 0},
	"d":   {"day", "duration", 86400, 0},
	// length (base metre)
	"mm": {"millimetre", "distance", 0.001, 0},
	"cm": {"centimetre", "distance", 0.01, 0},
	"m":  {"metre", "distance", 1, 0},
	"km": {"kilometre", "distance", 1000, 0},
	"in": {"inch", "distance", 0.0254, 0},
	"ft": {"foot", "distance", 0.3048, 0},
	"yd": {"yard", "distance", 0.9144, 0},
	"mi": {"mile", "distance", 1609.344, 0},
	// speed (base metre per second)
	"m/s":      {"metre per second", "speed", 1, 0},
	"km/h":     {"kilometre per hour", "speed", 1 / 3.6, 0},
	"mph":      {"mile per hour", "speed", 0.44704, 0},
	"kn":       {"knot", "speed", 0.514444, 0},
	"ft/s":     {"foot per second", "speed", 0.3048, 0},
	"Beaufort": {"Beaufort", "beaufort", 1, 0},
	// rain (base millimetre; millimetre per hour)
	"mm/h": {"millimetre per hour", "precipitation_intensity", 1, 0},
	"in/h": {"inch per hour", "precipitation_intensity", 25.4, 0},
	"mm/d": {"millimetre per day", "precipitation_intensity", 1.0 / 24, 0},
	// volume (base litre)
	"mL":  {"millilitre", "volume", 0.001, 0},
	"L":   {"litre", "volume", 1, 0},
	"l":   {"litre", "volume", 1, 0},
	"m³":  {"cubic metre", "volume", 1000, 0},
	"m3":  {"cubic metre", "volume", 1000, 0},
	"ft³": {"cubic foot", "volume", 28.3168, 0},
	"gal": {"gallon", "volume", 3.78541, 0},
	"CCF": {"hundred cubic feet", "volume", 2831.68, 0},
	// flow (base litre per minute)
	"L/min":   {"litre per minute", "volume_flow_rate", 1, 0},
	"L/h":     {"litre per hour", "volume_flow_rate", 1.0 / 60, 0},
	"m³/h":    {"cubic metre per hour", "volume_flow_rate", 1000.0 / 60, 0},
	"gal/min": {"gallon per minute", "volume_flow_rate", 3.78541, 0},
	// mass (base kilogram)
	"g":  {"gram", "weight", 0.001, 0},
	"kg": {"kilogram", "weight", 1, 0},
	"lb": {"pound", "weight", 0.453592, 0},
	"oz": {"ounce", "weight", 0.0283495, 0},
	"st": {"stone", "weight", 6.35029, 0},
	// angle
	"°": {"degree", "angle", 1, 0},
	// health
	"bpm":    {"beats per minute", "heart_rate", 1, 0},
	"mg/dL":  {"milligram per decilitre", "blood_glucose", 1, 0},
	"mmol/L": {"millimole per litre", "blood_glucose", 18.016, 0},
	// data
	"B":      {"byte", "data_size", 1, 0},
	"kB":     {"kilobyte", "data_size", 1e3, 0},
	"MB":     {"megabyte", "data_size", 1e6, 0},
	"GB":     {"gigabyte", "data_size", 1e9, 0},
	"KiB":    {"kibibyte", "data_size", 1024, 0},
	"MiB":    {"mebibyte", "data_size", 1 << 20, 0},
	"GiB":    {"gibibyte", "data_size", 1 << 30, 0},
	"bit/s":  {"bit per second", "data_rate", 1, 0},
	"kbit/s": {"kilobit per second", "data_rate", 1e3, 0},
	"Mbit/s": {"megabit per second", "data_rate", 1e6, 0},
	"Gbit/s": {"gigabit per second", "data_rate", 1e9, 0},
	// water quality
	"µS/cm": {"microsiemens per centimetre", "conductivity", 1, 0},
	"μS/cm": {"microsiemens per centimetre", "conductivity", 1, 0},
	"mS/cm": {"millisiemens per centimetre", "conductivity", 1000, 0},
	"pH":    {"pH", "ph", 1, 0},
}

// unitFor returns what is known about a unit symbol. An unknown symbol is
// kept as given (it is still a non-empty unit) with no dimension, so no
// range can be suggested for it.
func unitFor(symbol string) (unitInfo, bool) {
	s := strings.TrimSpace(symbol)
	if u, ok := units[s]; ok {
		return u, true
	}
	return unitInfo{words: s}, false
}

// profile is a privacy suggestion: the data categories a reading is, why it
// is collected and what it can reveal.
type profile struct {
	key      string
	personal []string // DPV pd: or candor: categories; empty: not personal alone
	purposes []purposeSuggestion
	reveals  string
	// ambient readings are not personal alone but show when a room is in
	// use in combination with other readings of the same device.
	ambient bool
}

type purposeSuggestion struct {
	id, words string
}

var (
	profPresence = &profile{key: "presence", personal: []string{"candor:Presence"},
		purposes: []purposeSuggestion{
			{"candor:HomeSecurity", "to tell you when someone is at home, comes or goes"},
			{"candor:HomeAutomation", "to run the automations you set up, such as turning on a light"},
		},
		reveals: "when people are at home, come and go, or move about"}
	profActuator = &profile{key: "actuator", personal: []string{"candor:Presence"},
		purposes: []purposeSuggestion{
			{"candor:HomeAutomation", "to show you whether it is on and run the automations you set up"},
		},
		reveals: "when someone switches or sets it by hand, and so when they are at home"}
	profPreference = &profile{key: "preference", personal: []string{"pd:Preference"},
		purposes: []purposeSuggestion{
			{"candor:HomeAutomation", "to show you the settings and run the automations you set up"},
		},
		reveals: "your daily schedule, since the settings follow it"}
	profAmbient = &profile{key: "ambient", ambient: true,
		purposes: []purposeSuggestion{
			{"candor:HomeAutomation", "to show you the reading and run the automations you set up"},
		},
		reveals: "little on its own; together with other readings it can show when a room is in use (candor:Presence), because people warm a room, breathe, shower and switch on lights"}
	profEnergy = &profile{key: "energy", personal: []string{"candor:EnergyUse"},
		purposes: []purposeSuggestion{
			{"candor:EnergyManagement", "to show you how much energy is used, and when"},
		},
		reveals: "when you are at home, when you cook and which appliances you use"}
	profWater = &profile{key: "water", personal: []string{"candor:WaterUse"},
		purposes: []purposeSuggestion{
			{"candor:HomeAutomation", "to show you how much water is used, and when"},
		},
		reveals: "when people are at home, shower, wash and flush"}
	profHealth = &profile{key: "health", personal: []string{"pd:PhysicalHealth"},
		purposes: []purposeSuggestion{
			{"candor:HealthMonitoring", "to show the person measured how their body is doing"},
		},
		reveals: "a person's health, fitness and stress, and when they sleep or are at home"}
	profImage = &profile{key: "image", personal: []string{"candor:Image"},
		purposes: []purposeSuggestion{
			{"candor:HomeSecurity", "to show you what the camera sees"},
		},
		reveals: "who and what is in view of the camera, and when"}
	profSafety = &profile{key: "safety",
		purposes: []purposeSuggestion{
			{"candor:HomeSecurity", "to warn you of smoke, gas, leaks, frost or tampering"},
		},
	}
	profDevice = &profile{key: "device",
		purposes: []purposeSuggestion{
			{"dpv:ServiceProvision", "to keep the device working and tell you when it needs attention, such as a low battery or a weak signal"},
		},
	}
	profUnknown = &profile{key: "unknown",
		purposes: []purposeSuggestion{
			{"candor:HomeAutomation", "to show you the reading and run the automations you set up"},
		},
		reveals: "unknown: the source does not say what this reading is, so nothing could be suggested — decide what it reveals, and whether it is personal data, before confirming"}
)

// kind is a kind of reading: a Home Assistant device_class, or what a
// Zigbee2MQTT property name stands for.
type kind struct {
	name string
	dim  string  // unit dimension the range is given in ("" for none)
	min  float64 // suggested range, in the dimension's base unit
	max  float64
	// bareUnit and the bare range apply when the source gives no unit and
	// the reading is naturally unitless (an index, a level, a count).
	bareUnit         string
	bareMin, bareMax float64
	prof             *profile
	on               string // binary: what true means
}

func (k *kind) hasBare() bool { return k.bareUnit != "" }

// numericKinds are Home Assistant sensor device classes (and a few names
// Zigbee2MQTT uses for readings Home Assistant has no class for).
var numericKinds = map[string]*kind{}

// binaryKinds are Home Assistant binary_sensor device classes and
// Zigbee2MQTT binary property names.
var binaryKinds = map[string]*kind{}

// textKinds classify enum and text readings by name.
var textKinds = map[string]*kind{}

func init() {
	numeric := []*kind{
		{name: "temperature", dim: "temperature", min: -40, max: 125, prof: profAmbient},
		{name: "humidity", dim: "percent", min: 0, max: 100, prof: profAmbient},
		{name: "moisture", dim: "percent", min: 0, max: 100, prof: profAmbient},
		{name: "battery", dim: "percent", min: 0, max: 100, prof: profDevice},
		{name: "illuminance", dim: "illuminance", min: 0, max: 200000, prof: profAmbient},
		{name: "carbon_dioxide", dim: "ppm", min: 0, max: 10000, prof: profAmbient},
		{name: "carbon_monoxide", dim: "ppm", min: 0, max: 10000, prof: profSafety},
		{name: "pressure", dim: "pressure", min: 300, max: 1100, prof: profAmbient},
		{name: "atmospheric_pressure", dim: "pressure", min: 300, max: 1100, prof: profAmbient},
		{name: "power", dim: "power", min: 0, max: 100000, prof: profEnergy},
		{name: "apparent_power", dim: "apparent_power", min: 0, max: 100000, prof: profEnergy},
		{name: "reactive_power", dim: "reactive_power", min: -100000, max: 100000, prof: profEnergy},
		{name: "power_factor", dim: "percent", min: -100, max: 100, bareUnit: "power factor", bareMin: -100, bareMax: 100, prof: profEnergy},
		{name: "energy", dim: "energy", min: 0, max: 1e9, prof: profEnergy},
		{name: "energy_storage", dim: "energy", min: 0, max: 1e9, prof: profEnergy},
		{name: "current", dim: "current", min: 0, max: 1000, prof: profEnergy},
		{name: "voltage", dim: "voltage", min: 0, max: 1000, prof: profDevice},
		{name: "frequency", dim: "frequency", min: 0, max: 1000, prof: profDevice},
		{name: "gas", dim: "volume", min: 0, max: 1e12, prof: profEnergy},
		{name: "water", dim: "volume", min: 0, max: 1e12, prof: profWater},
		{name: "volume", dim: "volume", min: 0, max: 1e12, prof: profUnknown},
		{name: "volume_storage", dim: "volume", min: 0, max: 1e12, prof: profUnknown},
		{name: "volume_flow_rate", dim: "volume_flow_rate", min: 0, max: 100000, prof: profWater},
		{name: "pm1", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "pm25", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "pm10", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "nitrogen_dioxide", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "nitrogen_monoxide", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "nitrous_oxide", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "ozone", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "sulphur_dioxide", dim: "mass_concentration", min: 0, max: 10000, prof: profAmbient},
		{name: "volatile_organic_compounds", dim: "mass_concentration", min: 0, max: 100000, prof: profAmbient},
		{name: "volatile_organic_compounds_parts", dim: "ppm", min: 0, max: 10000, prof: profAmbient},
		{name: "formaldehyde", dim: "mass_concentration", min: 0, max: 100000, prof: profAmbient},
		{name: "aqi", bareUnit: "index", bareMin: 0, bareMax: 500, prof: profAmbient},
		{name: "voc_index", bareUnit: "index", bareMin: 0, bareMax: 500, prof: profAmbient},
		{name: "ph", dim: "ph", min: 0, max: 14, bareUnit: "pH", bareMin: 0, bareMax: 14, prof: profAmbient},
		{name: "conductivity", dim: "conductivity", min: 0, max: 200000, prof: profAmbient},
		{name: "signal_strength", dim: "dbm", min: -150, max: 50, prof: profDevice},
		{name: "linkquality", dim: "lqi", min: 0, max: 255, bareUnit: "link quality indicator", bareMin: 0, bareMax: 255, prof: profDevice},
		{name: "device_temperature", dim: "temperature", min: -40, max: 125, prof: profDevice},
		{name: "count", bareUnit: "count", bareMin: 0, bareMax: 1e9, prof: profDevice},
		{name: "sound_pressure", dim: "decibel", min: 0, max: 200, prof: profPresence},
		{name: "speed", dim: "speed", min: 0, max: 150, prof: profAmbient},
		{name: "wind_speed", dim: "speed", min: 0, max: 150, prof: profAmbient},
		{name: "wind_direction", dim: "angle", min: 0, max: 360, prof: profAmbient},
		{name: "irradiance", dim: "irradiance", min: 0, max: 2000, prof: profAmbient},
		{name: "precipitation", dim: "distance", min: 0, max: 10, prof: profAmbient},
		{name: "precipitation_intensity", dim: "precipitation_intensity", min: 0, max: 1000, prof: profAmbient},
		{name: "distance", dim: "distance", min: 0, max: 100000, prof: profUnknown},
		{name: "duration", dim: "duration", min: 0, max: 1e9, prof: profUnknown},
		{name: "weight", dim: "weight", min: 0, max: 500, prof: profHealth},
		{name: "blood_glucose_concentration", dim: "blood_glucose", min: 0, max: 1000, prof: profHealth},
		{name: "heart_rate", dim: "heart_rate", min: 20, max: 300, bareUnit: "beats per minute", bareMin: 20, bareMax: 300, prof: profHealth},
		{name: "breath_rate", bareUnit: "breaths per minute", bareMin: 0, bareMax: 100, prof: profHealth},
		{name: "setpoint", dim: "temperature", min: -40, max: 125, prof: profPreference},
		{name: "brightness", bareUnit: "level", bareMin: 0, bareMax: 255, prof: profActuator},
		{name: "color_temp", dim: "color_temp", min: 50, max: 1000, prof: profActuator},
		{name: "color_x", bareUnit: "CIE 1931 x", bareMin: 0, bareMax: 1, prof: profActuator},
		{name: "color_y", bareUnit: "CIE 1931 y", bareMin: 0, bareMax: 1, prof: profActuator},
		{name: "hue", dim: "angle", min: 0, max: 360, bareUnit: "degree", bareMin: 0, bareMax: 360, prof: profActuator},
		{name: "saturation", dim: "percent", min: 0, max: 100, bareUnit: "percent", bareMin: 0, bareMax: 100, prof: profActuator},
		{name: "position", dim: "percent", min: 0, max: 100, prof: profActuator},
	}
	for _, k := range numeric {
		numericKinds[k.name] = k
	}
	binary := []*kind{
		{name: "motion", on: "motion is detected", prof: profPresence},
		{name: "occupancy", on: "the space is occupied", prof: profPresence},
		{name: "presence", on: "someone is present", prof: profPresence},
		{name: "moving", on: "it is moving", prof: profPresence},
		{name: "vibration", on: "vibration is detected", prof: profPresence},
		{name: "sound", on: "sound is detected", prof: profPresence},
		{name: "connectivity", on: "it is connected", prof: profPresence},
		{name: "plug", on: "something is plugged in", prof: profPresence},
		{name: "running", on: "it is running", prof: profPresence},
		{name: "light", on: "light is detected", prof: profPresence},
		{name: "sos", on: "the SOS alarm is raised", prof: profPresence},
		{name: "door", on: "it is open", prof: profPresence},
		{name: "window", on: "it is open", prof: profPresence},
		{name: "opening", on: "it is open", prof: profPresence},
		{name: "garage_door", on: "it is open", prof: profPresence},
		{name: "lock", on: "it is unlocked", prof: profPresence},
		{name: "contact", on: "the contact is closed", prof: profPresence}, // Zigbee2MQTT: true = closed
		{name: "state", on: "it is on", prof: profActuator},
		{name: "smoke", on: "smoke is detected", prof: profSafety},
		{name: "gas", on: "gas is detected", prof: profSafety},
		{name: "carbon_monoxide", on: "carbon monoxide is detected", prof: profSafety},
		{name: "heat", on: "it is too hot", prof: profSafety},
		{name: "cold", on: "it is too cold", prof: profSafety},
		{name: "moisture", on: "moisture (a leak) is detected", prof: profSafety},
		{name: "water_leak", on: "a water leak is detected", prof: profSafety},
		{name: "safety", on: "it is unsafe", prof: profSafety},
		{name: "problem", on: "there is a problem", prof: profSafety},
		{name: "tamper", on: "the device is being tampered with", prof: profSafety},
		{name: "battery", on: "the battery is low", prof: profDevice},
		{name: "battery_low", on: "the battery is low", prof: profDevice},
		{name: "battery_charging", on: "the battery is charging", prof: profDevice},
		{name: "update", on: "an update is available", prof: profDevice},
		{name: "power", on: "power is detected", prof: profDevice},
	}
	for _, k := range binary {
		binaryKinds[k.name] = k
	}
	text := []*kind{
		{name: "action", prof: profPresence},
		{name: "state", prof: profActuator},
		{name: "lock_state", prof: profPresence},
		{name: "door_state", prof: profPresence},
		{name: "running_state", prof: profActuator},
		{name: "system_mode", prof: profPreference},
		{name: "preset", prof: profPreference},
		{name: "fan_mode", prof: profPreference},
	}
	for _, k := range text {
		textKinds[k.name] = k
	}
}

// aliases maps names Zigbee2MQTT (or entity names) use to the kinds above.
var aliases = map[string]string{
	"co2": "carbon_dioxide", "eco2": "carbon_dioxide", "co": "carbon_monoxide",
	"voc": "volatile_organic_compounds", "voc_parts": "volatile_organic_compounds_parts",
	"formaldehyd": "formaldehyde", "hcho": "formaldehyde", "pm2_5": "pm25",
	"illuminance_lux": "illuminance", "lux": "illuminance",
	"soil_moisture": "moisture", "local_temperature": "temperature",
	"power_apparent": "apparent_power", "power_reactive": "reactive_power",
	"produced_energy": "energy", "energy_produced": "energy", "ac_frequency": "frequency",
	"noise": "sound_pressure", "rssi": "signal_strength",
	"heartbeat": "heart_rate", "heartrate": "heart_rate", "pulse": "heart_rate",
	"respiration": "breath_rate", "respiratory_rate": "breath_rate", "respiration_rate": "breath_rate",
	"breathing_rate":            "breath_rate",
	"occupied_heating_setpoint": "setpoint", "current_heating_setpoint": "setpoint",
	"occupied_cooling_setpoint": "setpoint", "unoccupied_heating_setpoint": "setpoint",
	"unoccupied_cooling_setpoint": "setpoint",
	"power_outage_count":          "count", "trigger_count": "count",
	"x": "color_x", "y": "color_y", "tilt": "position",
}

// inference lists name fragments that suggest a kind when no class is
// given, most specific first.
var inference = []struct{ fragment, kind string }{
	{"heart_rate", "heart_rate"}, {"heartrate", "heart_rate"}, {"breath", "breath_rate"}, {"respirat", "breath_rate"},
	{"blood_glucose", "blood_glucose_concentration"}, {"glucose", "blood_glucose_concentration"},
	{"_count", "count"}, {"setpoint", "setpoint"},
	{"color_temp", "color_temp"}, {"device_temperature", "device_temperature"}, {"temperature", "temperature"}, {"temp", "temperature"},
	{"humidity", "humidity"}, {"battery", "battery"}, {"linkquality", "linkquality"}, {"rssi", "signal_strength"},
	{"illuminance", "illuminance"}, {"lux", "illuminance"}, {"co2", "carbon_dioxide"}, {"carbon_dioxide", "carbon_dioxide"},
	{"pm25", "pm25"}, {"pm2_5", "pm25"}, {"pm10", "pm10"}, {"voc", "volatile_organic_compounds"},
	{"pressure", "pressure"}, {"energy", "energy"}, {"power", "power"}, {"voltage", "voltage"}, {"current", "current"},
	{"weight", "weight"}, {"brightness", "brightness"}, {"noise", "sound_pressure"},
	// binary
	{"occupancy", "occupancy"}, {"motion", "motion"}, {"presence", "presence"}, {"contact", "contact"},
	{"door", "door"}, {"window", "window"}, {"water_leak", "water_leak"}, {"leak", "moisture"}, {"smoke", "smoke"},
	{"gas", "gas"}, {"tamper", "tamper"}, {"vibration", "vibration"},
	// text
	{"action", "action"},
}

// kindOf resolves a name to a kind of the given type ("numeric", "binary"
// or "text"): an exact name or alias first, then, when infer is true, a name
// fragment. It reports whether the match was exact.
func kindOf(typ, name string, infer bool) (k *kind, exact bool) {
	table := map[string]map[string]*kind{"numeric": numericKinds, "binary": binaryKinds, "text": textKinds}[typ]
	if k := table[name]; k != nil {
		return k, true
	}
	if a, ok := aliases[name]; ok {
		if k := table[a]; k != nil {
			return k, true
		}
	}
	if !infer {
		return nil, false
	}
	for _, in := range inference {
		if strings.Contains(name, in.fragment) {
			if k := table[in.kind]; k != nil {
				return k, false
			}
		}
	}
	return nil, false
}

// wide is the range suggested when nothing better is known.
const wide = 1e9

// rangeFor suggests a range for a reading of kind k (nil: unknown) in the
// given unit. It returns the unit words to declare, the range, and a note
// saying where the range came from.
func rangeFor(k *kind, symbol string) (unitWords string, min, max float64, known bool) {
	u, found := unitFor(symbol)
	if strings.TrimSpace(symbol) == "" {
		if k != nil && k.hasBare() {
			return k.bareUnit, k.bareMin, k.bareMax, true
		}
		return "unitless", -wide, wide, false
	}
	if k == nil || !found || u.dim != k.dim || k.dim == "" {
		return u.words, -wide, wide, false
	}
	lo := roundSig((k.min - u.offset) / u.factor)
	hi := roundSig((k.max - u.offset) / u.factor)
	if lo > hi {
		lo, hi = hi, lo
	}
	return u.words, lo, hi, true
}

// roundSig rounds to 9 significant digits, so conversions such as
// 125 °C → 257 °F do not come out as 256.99999999999997.
func roundSig(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 9, 64), 64)
	if err != nil {
		return v
	}
	return r
}

// formatNum renders a number the way it appears in the document.
func formatNum(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}
