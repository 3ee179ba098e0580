package importer

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Zigbee2MQTT access bits (docs: "Exposes", Access).
const (
	z2mAccessState = 1 // in the published state
	z2mAccessSet   = 2
)

const (
	maxZ2MFields = 500
	maxZ2MDepth  = 8
)

// FromZigbee2MQTT drafts a manifest from one device entry of Zigbee2MQTT's
// zigbee2mqtt/bridge/devices: the object with "ieee_address",
// "friendly_name" and "definition" ({"model", "vendor", "description",
// "exposes", …}). A bare definition object, a bridge/devices list holding
// exactly one device, and a bridge/event device_interview message are
// accepted too.
//
// Zigbee2MQTT publishes all of a device's properties as one JSON object on
// zigbee2mqtt/<friendly_name>, so the draft has ONE stream, "state", with a
// field per property that appears in that object: a bridge forwards the
// object as it is to candor/{{DEVICE_ID}}/state. Splitting it into several
// streams would need the bridge to rewrite every message and would lose
// which values were reported together; the cost is that consent covers the
// whole object.
//
// Exposes map as follows: numeric → number (value_min/value_max when given,
// else a suggested range from the property name; unit translated to
// words), binary → boolean when value_on/value_off are true/false, else a
// string enum of the two values (as they appear in the payload, e.g. "ON"
// and "OFF"), enum → string enum (a number range if every value is a
// number), text → string of at most 256 characters. Features of specific
// types (light, switch, fan, cover, lock, climate) are top-level keys and
// keep their property names; features of a composite are nested under its
// property in the payload and are flattened with it as a prefix
// (color.x → color_x), which the bridge must do. Skipped: features without
// the state access bit (write-only, e.g. effect or identify), lists (the
// manifest has no arrays), duplicate properties, and enums or binaries that
// mix numbers and text. Fields are not required, since Zigbee2MQTT only
// includes a property once the device has reported it.
func FromZigbee2MQTT(deviceType string, definition []byte) ([]byte, error) {
	v, err := decodeJSON("input", definition)
	if err != nil {
		return nil, err
	}
	entry, defPath, err := z2mEntry(v)
	if err != nil {
		return nil, err
	}
	def := entry
	if defPath != "" {
		if def, err = newObject(defPath, entry.m["definition"]); err != nil {
			return nil, err
		}
	}
	at := func(p string) string {
		if defPath == "" {
			return p
		}
		return defPath + "." + p
	}
	str := func(o object, key string) (string, error) {
		s, err := o.str(key)
		return strings.TrimSpace(s), err
	}
	model, err := str(def, "model")
	if err != nil {
		return nil, err
	}
	vendor, err := str(def, "vendor")
	if err != nil {
		return nil, err
	}
	description, err := str(def, "description")
	if err != nil {
		return nil, err
	}
	exposes, ok := def.m["exposes"].([]any)
	switch {
	case def.m["exposes"] == nil:
		return nil, inputErr(at("exposes"), "missing: the definition must list what the device exposes")
	case !ok:
		return nil, inputErr(at("exposes"), "must be an array, not %s", jsonKind(def.m["exposes"]))
	case len(exposes) == 0:
		return nil, inputErr(at("exposes"), "empty: the device exposes nothing")
	}

	w := &z2mWalker{taken: names{}}
	for i, x := range exposes {
		if err := w.expose(fmt.Sprintf("%s[%d]", at("exposes"), i), x, nil, "", 0); err != nil {
			return nil, err
		}
	}
	if len(w.fields) == 0 {
		return nil, inputErr(at("exposes"), "nothing the device publishes: every feature is write-only or skipped (%s)", strings.Join(w.skipped, "; "))
	}

	dt, err := deviceTypeFrom(deviceType, model, vendor+" "+model, "zigbee-device")
	if err != nil {
		return nil, err
	}
	d := newDocument(dt)
	title := description
	switch {
	case title != "" && model != "":
		title += " (" + strings.TrimSpace(vendor+" "+model) + ")"
	case title == "" && model != "":
		title = strings.TrimSpace(vendor + " " + model)
	case title == "":
		title = "Zigbee device imported from Zigbee2MQTT"
	}
	d.Title = title

	for _, f := range w.fields {
		s := newStream(f.name, upperFirst(strings.ReplaceAll(f.item, ".", " ")))
		s.Properties[f.name] = f.field
		s.applyProfiles([]*profile{f.prof}, []string{f.item}, "Zigbee2MQTT property", "Zigbee2MQTT properties")
		s.Continuous = true
		// A property that can be set is a command an app may be allowed
		// to send: the bridge passes it to zigbee2mqtt/<friendly_name>/set.
		s.ReadOnly = !f.settable
		s.MaxPayloadBytes = estimatePayload(s.Properties)
		s.Use = "Suggested — check before confirming: Zigbee2MQTT passes it to your home automation, which shows it and runs the automations you set up."
		s.Description = upperFirst(s.suggested) + " — check before confirming: the data categories, purposes, retention and what it reveals are suggestions. " +
			"Zigbee2MQTT publishes all of the device's properties as one JSON object on zigbee2mqtt/<friendly_name>; the hub's Zigbee2MQTT bridge splits it into one reading per property, so each can be switched on or off alone. " +
			"Keys Zigbee2MQTT adds when some of its options are on (last_seen, elapsed, update) are not declared, so they are refused and counted: turn those options off."
		d.Properties[f.name] = s
	}
	var skippedNote string
	if len(w.skipped) > 0 {
		skippedNote = " Not imported: " + strings.Join(w.skipped, "; ") + "."
	}

	d.Maker = docParty{Name: PlaceholderMaker, Contact: PlaceholderContact}
	if vendor != "" {
		d.Maker.Name = clip(vendor, 120)
	}
	mech := "unknown — Zigbee2MQTT does not say whether the maker still publishes security fixes"
	switch ota := def.m["supports_ota"].(type) {
	case bool:
		if ota {
			mech = "unknown — Zigbee2MQTT reports that the device accepts over-the-air firmware updates (supports_ota), but not whether the maker still publishes security fixes"
		} else {
			mech = "unknown — Zigbee2MQTT reports no over-the-air update support (supports_ota is false), so the firmware may never be updated"
		}
	}
	d.Support = supportPlaceholder(mech + "; ask the maker and edit before confirming")

	var b strings.Builder
	fmt.Fprintf(&b, "Draft imported from a Zigbee2MQTT device definition on %s, not yet confirmed by its owner.", now().UTC().Format(time.DateOnly))
	var facts []string
	if model != "" {
		facts = append(facts, "model "+quote(model))
	}
	if vendor != "" {
		facts = append(facts, "vendor "+quote(vendor))
	}
	if description != "" {
		facts = append(facts, "described as "+quote(description))
	}
	for _, k := range []struct{ key, label string }{
		{"manufacturer", "Zigbee manufacturer"}, {"model_id", "Zigbee model"}, {"power_source", "power source"},
		{"software_build_id", "software build"}, {"date_code", "date code"},
	} {
		if v, ok, err := entry.scalarText(k.key); err == nil && ok && strings.TrimSpace(v) != "" {
			facts = append(facts, k.label+" "+quote(strings.TrimSpace(v)))
		}
	}
	if len(facts) > 0 {
		b.WriteString(" Zigbee2MQTT says: " + strings.Join(facts, ", ") + ".")
	}
	b.WriteString(" The device's IEEE address and friendly name are not copied: they identify one device, and this manifest describes its type. ")
	b.WriteString(placeholderNote)
	b.WriteString(skippedNote)
	d.Description = b.String()
	return finish(d)
}

// z2mEntry finds the device entry in the accepted input shapes and returns
// it with the path of its definition ("definition", or "" when the input is
// a bare definition).
func z2mEntry(v any) (object, string, error) {
	if list, ok := v.([]any); ok {
		if len(list) != 1 {
			return object{}, "", inputErr("input", "a bridge/devices list of %d devices: pass one device's entry", len(list))
		}
		v = list[0]
	}
	o, err := newObject("input", v)
	if err != nil {
		return object{}, "", err
	}
	if data, ok := o.m["data"].(map[string]any); ok && o.m["definition"] == nil {
		// A bridge/event message ({"type": "device_interview", "data": {…}}).
		o = object{where: "data", m: data, label: o.label}
	}
	if o.m["definition"] == nil {
		if _, bare := o.m["exposes"]; bare {
			return o, "", nil
		}
		if t, _ := o.m["type"].(string); t == "Coordinator" {
			return object{}, "", inputErr("input", "the Coordinator entry of bridge/devices has no definition: pass a device's entry")
		}
		if _, present := o.m["definition"]; present {
			return object{}, "", inputErr("definition", "null: Zigbee2MQTT does not support this device (it publishes no definition for it)")
		}
		return object{}, "", inputErr("definition", "missing: pass an entry of zigbee2mqtt/bridge/devices")
	}
	return o, "definition", nil
}

type z2mField struct {
	name     string
	field    *docField
	prof     *profile
	item     string
	settable bool
}

type z2mWalker struct {
	fields  []z2mField
	taken   names
	skipped []string
}

// expose walks one exposes entry. prefix holds the properties of the
// composites it is nested in; category is inherited from the enclosing
// composite.
func (w *z2mWalker) expose(path string, v any, prefix []string, category string, depth int) error {
	if depth > maxZ2MDepth {
		return inputErr(path, "features nested more than %d deep", maxZ2MDepth)
	}
	o, err := newObject(path, v)
	if err != nil {
		return err
	}
	typ, err := o.str("type")
	if err != nil {
		return err
	}
	if typ == "" {
		return inputErr(path, "type missing")
	}
	name, err := o.str("name")
	if err != nil {
		return err
	}
	property, err := o.str("property")
	if err != nil {
		return err
	}
	if cat, err := o.str("category"); err != nil {
		return err
	} else if cat != "" {
		category = cat
	}
	access, hasAccess, err := o.num("access")
	if err != nil {
		return err
	}
	if hasAccess && (access < 0 || access > 7 || access != math.Trunc(access)) {
		return inputErr(path, "access %s is not a 3-bit mask (0-7)", formatNum(access))
	}
	published := !hasAccess || int(access)&z2mAccessState != 0

	features := func() ([]any, error) {
		f, ok := o.m["features"].([]any)
		if !ok {
			if o.m["features"] == nil {
				return nil, inputErr(path, "%s without features", typ)
			}
			return nil, inputErr(path, "features must be an array, not %s", jsonKind(o.m["features"]))
		}
		return f, nil
	}

	switch typ {
	case "light", "switch", "fan", "cover", "lock", "climate":
		fs, err := features()
		if err != nil {
			return err
		}
		for i, f := range fs {
			if err := w.expose(fmt.Sprintf("%s.features[%d]", path, i), f, prefix, category, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "composite":
		fs, err := features()
		if err != nil {
			return err
		}
		key := property
		if key == "" {
			key = name
		}
		if key == "" {
			return inputErr(path, "composite without property or name")
		}
		if !published {
			w.skipped = append(w.skipped, quote(strings.Join(append(append([]string{}, prefix...), key), "."))+" (not in the published state)")
			return nil
		}
		for i, f := range fs {
			if err := w.expose(fmt.Sprintf("%s.features[%d]", path, i), f, append(append([]string{}, prefix...), key), category, depth+1); err != nil {
				return err
			}
		}
		return nil
	case "numeric", "binary", "enum", "text", "list":
	default:
		return inputErr(path, "unknown type %s", quote(typ))
	}

	key := property
	if key == "" {
		key = name
	}
	if key == "" {
		return inputErr(path, "property and name missing")
	}
	if name == "" {
		name = key
	}
	if !hasAccess {
		return inputErr(path, "access missing")
	}
	payloadKey := strings.Join(append(append([]string{}, prefix...), key), ".")
	if !published {
		w.skipped = append(w.skipped, quote(payloadKey)+" (write-only)")
		return nil
	}
	if typ == "list" {
		w.skipped = append(w.skipped, quote(payloadKey)+" (a list; the manifest has no arrays)")
		return nil
	}
	fieldName := Zigbee2MQTTName(append(append([]string{}, prefix...), key)...)
	if fieldName == "" {
		return inputErr(path, "property %s has no letters or digits to name a field", quote(key))
	}
	if w.taken[fieldName] {
		w.skipped = append(w.skipped, quote(payloadKey)+" (repeats a property already declared)")
		return nil
	}
	if len(w.fields) >= maxZ2MFields {
		return inputErr(path, "more than %d properties", maxZ2MFields)
	}

	zdesc, err := o.str("description")
	if err != nil {
		return err
	}
	settable := int(access)&z2mAccessSet != 0
	var classNote string
	classify := func(table string) (*kind, *profile, string) {
		item := strings.Join(append(append([]string{}, prefix...), name), ".")
		if len(prefix) > 0 {
			// Composite members are named in context: color.x is a colour
			// coordinate, not an unknown "x".
			if k, _ := kindOf(table, sanitize(prefix[len(prefix)-1]+"_"+name, "f_"), false); k != nil {
				return k, k.prof, item
			}
		}
		if k, _ := kindOf(table, sanitize(name, "f_"), false); k != nil {
			return k, k.prof, item
		}
		if category == "diagnostic" || category == "config" {
			classNote = "privacy suggested from its category " + quote(category)
			return nil, profDevice, item
		}
		if k, _ := kindOf(table, sanitize(name, "f_"), true); k != nil {
			classNote = "privacy suggested from a word in its name"
			return k, k.prof, item
		}
		if settable {
			classNote = "an unknown setting: privacy suggested as device configuration"
			return nil, profDevice, item
		}
		classNote = "Candor does not know this property: nothing about its privacy could be suggested"
		return nil, profUnknown, item
	}

	var notes []string
	if zdesc != "" {
		notes = append(notes, clip(strings.TrimSuffix(strings.TrimSpace(zdesc), "."), 300))
	}
	var f *docField
	var k *kind
	var prof *profile
	var item string
	switch typ {
	case "numeric":
		k, prof, item = classify("numeric")
		unit, err := o.str("unit")
		if err != nil {
			return err
		}
		vmin, okMin, err := o.num("value_min")
		if err != nil {
			return err
		}
		vmax, okMax, err := o.num("value_max")
		if err != nil {
			return err
		}
		words, lo, hi, known := rangeFor(k, unit)
		if words == "unitless" {
			notes = append(notes, "Zigbee2MQTT states no unit — add one before confirming")
		} else {
			notes = append(notes, "in "+words)
		}
		switch {
		case okMin && okMax:
			lo, hi = vmin, vmax
			notes = append(notes, "range from Zigbee2MQTT (value_min, value_max)")
		case known:
			if okMin {
				lo = vmin
			}
			if okMax {
				hi = vmax
			}
			if lo > hi {
				if okMin {
					hi = wide
				} else {
					lo = -wide
				}
			}
			notes = append(notes, fmt.Sprintf("range %s to %s suggested from the property name — check before confirming", formatNum(lo), formatNum(hi)))
		default:
			if okMin {
				lo = vmin
			}
			if okMax {
				hi = vmax
			}
			notes = append(notes, fmt.Sprintf("no typical range is known, so the range is as wide as allowed (%s to %s): narrow it before confirming", formatNum(lo), formatNum(hi)))
		}
		// Presets are values with a special meaning, published like any
		// other (color_temp_startup "previous" is 65535, beyond value_max).
		textPreset := false
		if presets, ok := o.m["presets"].([]any); ok {
			for _, p := range presets {
				pm, ok := p.(map[string]any)
				if !ok {
					continue
				}
				switch pv := pm["value"].(type) {
				case string:
					textPreset = true
				case float64:
					if pv < lo || pv > hi {
						pname, _ := pm["name"].(string)
						notes = append(notes, fmt.Sprintf("widened to include the preset %s (%s)", quote(pname), formatNum(pv)))
						lo, hi = math.Min(lo, pv), math.Max(hi, pv)
					}
				}
			}
		}
		if textPreset {
			notes = append(notes, "Zigbee2MQTT may report a preset name instead of a number, which this field refuses")
		}
		f = numberField("", words, lo, hi)
	case "binary":
		k, prof, item = classify("binary")
		on, off := o.m["value_on"], o.m["value_off"]
		if on == nil || off == nil {
			return inputErr(path, "binary without value_on and value_off")
		}
		switch on := on.(type) {
		case bool:
			if _, ok := off.(bool); !ok {
				w.skipped = append(w.skipped, quote(payloadKey)+" (value_on and value_off mix kinds)")
				return nil
			}
			if zdesc == "" && k != nil && k.on != "" {
				notes = append(notes, "true when "+k.on)
			}
			notes = append(notes, fmt.Sprintf("value_on %t", on))
			f = boolField("")
		case string:
			offS, ok := off.(string)
			if !ok {
				w.skipped = append(w.skipped, quote(payloadKey)+" (value_on and value_off mix kinds)")
				return nil
			}
			notes = append(notes, fmt.Sprintf("Zigbee2MQTT publishes %s for on and %s for off", quote(on), quote(offS)))
			f = enumField("", dedupe([]string{on, offS}))
		case float64:
			offN, ok := off.(float64)
			if !ok {
				w.skipped = append(w.skipped, quote(payloadKey)+" (value_on and value_off mix kinds)")
				return nil
			}
			notes = append(notes, fmt.Sprintf("Zigbee2MQTT publishes %s for on and %s for off", formatNum(on), formatNum(offN)))
			f = numberField("", "state code", math.Min(on, offN), math.Max(on, offN))
		default:
			return inputErr(path, "value_on must be a boolean, string or number, not %s", jsonKind(on))
		}
	case "enum":
		_, prof, item = classify("text")
		vals, ok := o.m["values"].([]any)
		if !ok || len(vals) == 0 {
			return inputErr(path, "enum without values")
		}
		var texts []string
		lo, hi := math.Inf(1), math.Inf(-1)
		nums := 0
		for j, v := range vals {
			switch v := v.(type) {
			case string:
				texts = append(texts, v)
			case float64:
				nums++
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			default:
				return inputErr(path, "values[%d] must be a string or number, not %s", j, jsonKind(v))
			}
		}
		switch {
		case nums == 0:
			f = enumField("", dedupe(texts))
		case len(texts) == 0:
			notes = append(notes, "the values are numbers, so any number between the lowest and highest is allowed")
			f = numberField("", "code", lo, hi)
		default:
			w.skipped = append(w.skipped, quote(payloadKey)+" (an enum mixing numbers and text)")
			return nil
		}
	case "text":
		_, prof, item = classify("text")
		f = textField("", textMaxLength)
	}
	if len(prefix) > 0 {
		notes = append(notes, fmt.Sprintf("Zigbee2MQTT nests it as %s; the bridge flattens it to %s", quote(payloadKey), fieldName))
	} else if fieldName != key {
		notes = append(notes, fmt.Sprintf("Zigbee2MQTT publishes it as %s; the bridge renames it to %s", quote(key), fieldName))
	}
	if settable {
		notes = append(notes, "it can also be set")
	}
	if classNote != "" {
		notes = append(notes, classNote+" — check before confirming")
	}
	f.Description = strings.Join(notes, "; ")
	if f.Description == "" {
		f.Description = name
	}
	w.taken[fieldName] = true
	w.fields = append(w.fields, z2mField{name: fieldName, field: f, prof: prof, item: item, settable: settable})
	return nil
}

// estimatePayload estimates the largest JSON object the declared fields
// make, with a quarter for headroom, rounded up to 64 bytes: at least 256
// and at most the manifest's limit of 65536.
func estimatePayload(fields map[string]*docField) int {
	n := 2
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fields[k]
		n += len(k) + 4
		switch f.Type {
		case "boolean":
			n += 5
		case "string":
			longest := f.MaxLength
			for _, e := range f.Enum {
				longest = max(longest, len(e))
			}
			n += longest + 2
		default:
			n += 24
		}
	}
	n += n / 4
	n = (n + 63) / 64 * 64
	return min(max(n, suggestedPayloadBytes), 65536)
}
