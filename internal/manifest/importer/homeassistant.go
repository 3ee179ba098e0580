package importer

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/manifest"
)

// Discovery is one Home Assistant MQTT discovery message: the payload and,
// when known, the topic it was published on. The topic is optional; it
// names the entity's component and object id, which the payload itself
// does not carry.
type Discovery struct {
	Topic   string
	Payload []byte
}

// FromHomeAssistant drafts a manifest from the MQTT discovery payloads of
// one device's entities (as published to
// homeassistant/<component>/[<node_id>/]<object_id>/config), one payload
// per entity, or a device discovery payload (homeassistant/device/<id>/config,
// with "cmps"). Abbreviated keys (stat_t, unit_of_meas, dev_cla, val_tpl,
// dev with ids/mf/mdl/sw, …) and the "~" base topic are understood.
//
// A payload does not say which component it configures (the topic does), so
// the component is read from "platform"/"p" when present and otherwise
// inferred: climate topics make a climate entity, image or camera topics
// an image or camera, a command_topic a switch (a light if it has light
// options), a unit or state_class a sensor, payload_on/payload_off or a
// binary device class a binary_sensor, anything else a sensor. Use
// FromHomeAssistantDiscovery to pass the topics and avoid the guess.
//
// Each entity becomes one stream with one field: sensors a number (with
// unit, when they have a unit, state_class or numeric device class), an
// enum (device_class enum / options) or text; binary sensors a boolean;
// switches and lights a boolean "on" (only on/off is mapped); climate
// entities one stream with a field per state topic (current and target
// temperature and humidity, mode, action, fan and preset mode); cameras
// and images the picture (base64) or its URL. Other components (cover,
// lock, fan, number, select, button, …) are skipped and listed in the
// document's description; availability, attributes topics and command
// topics are not imported.
func FromHomeAssistant(deviceType string, configs ...[]byte) ([]byte, error) {
	msgs := make([]Discovery, len(configs))
	for i, c := range configs {
		msgs[i] = Discovery{Payload: c}
	}
	return FromHomeAssistantDiscovery(deviceType, msgs...)
}

const maxEntities = 256

// FromHomeAssistantDiscovery is FromHomeAssistant with the discovery topics
// known.
func FromHomeAssistantDiscovery(deviceType string, msgs ...Discovery) ([]byte, error) {
	if len(msgs) == 0 {
		return nil, inputErr("", "no Home Assistant discovery config given")
	}
	if len(msgs) > maxEntities {
		return nil, inputErr("", "%d configs given; at most %d entities can be imported at once", len(msgs), maxEntities)
	}
	var entities []*haEntity
	dev := &haDevice{}
	seenIDs := map[string]string{}
	for i, msg := range msgs {
		where := fmt.Sprintf("config %d", i+1)
		es, err := readDiscovery(where, msg, dev)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.uniqueID != "" {
				if prev, dup := seenIDs[e.uniqueID]; dup {
					return nil, inputErr(e.where, "unique_id %q repeats %s: each entity once, please", clip(e.uniqueID, 80), prev)
				}
				seenIDs[e.uniqueID] = e.where
			}
		}
		entities = append(entities, es...)
		if len(entities) > maxEntities {
			return nil, inputErr(where, "more than %d entities; at most %d can be imported at once", maxEntities, maxEntities)
		}
	}

	dt, err := deviceTypeFrom(deviceType, dev.model, "home-assistant-device")
	if err != nil {
		return nil, err
	}
	d := newDocument(dt)
	taken := names{"control": true}
	var skipped []string
	for _, e := range entities {
		s, name, note, err := e.stream(dev, taken)
		if err != nil {
			return nil, err
		}
		if s == nil {
			skipped = append(skipped, e.where+" ("+note+")")
			continue
		}
		d.Properties[name] = s
	}
	if len(d.Properties) == 0 {
		return nil, inputErr("", "nothing to import: %s", strings.Join(skipped, "; "))
	}
	addAmbientCombinations(d)

	d.Title = dev.title()
	d.Maker = docParty{Name: PlaceholderMaker, Contact: PlaceholderContact}
	if dev.manufacturer != "" {
		d.Maker.Name = clip(dev.manufacturer, 120)
	}
	mech := "unknown — Home Assistant MQTT discovery does not say whether or how this device gets security updates"
	if dev.sw != "" {
		mech += fmt.Sprintf(" (it ran software %s when imported)", quote(dev.sw))
	}
	d.Support = supportPlaceholder(mech + "; ask the maker and edit before confirming")
	var b strings.Builder
	fmt.Fprintf(&b, "Draft imported from Home Assistant MQTT discovery on %s, not yet confirmed by its owner. ", now().UTC().Format(time.DateOnly))
	b.WriteString(dev.describe() + " The device's name, identifiers and serial number are not copied: they identify one device, and this manifest describes its type. ")
	b.WriteString(placeholderNote)
	b.WriteString(" Each stream is a JSON object the device (or a bridge reading the Home Assistant topics named in the stream) publishes on candor/{{DEVICE_ID}}/<stream>; the topics named are those of the device imported, and another device of this type uses its own.")
	if len(skipped) > 0 {
		b.WriteString(" Not imported: " + strings.Join(skipped, "; ") + ".")
	}
	d.Description = b.String()
	return finish(d)
}

// Abbreviations Home Assistant accepts in discovery payloads (from its MQTT
// documentation), mapped to the full key.
var haAbbrev = map[string]string{
	"act_t": "action_topic", "act_tpl": "action_template", "atype": "automation_type",
	"aux_cmd_t": "aux_command_topic", "aux_stat_tpl": "aux_state_template", "aux_stat_t": "aux_state_topic",
	"av_tones": "available_tones", "avty": "availability", "avty_mode": "availability_mode",
	"avty_t": "availability_topic", "avty_tpl": "availability_template",
	"away_mode_cmd_t": "away_mode_command_topic", "away_mode_stat_tpl": "away_mode_state_template",
	"away_mode_stat_t": "away_mode_state_topic", "b_tpl": "blue_template",
	"bri_cmd_t": "brightness_command_topic", "bri_cmd_tpl": "brightness_command_template",
	"bri_scl": "brightness_scale", "bri_stat_t": "brightness_state_topic", "bri_tpl": "brightness_template",
	"bri_val_tpl": "brightness_value_template", "clr_temp_cmd_tpl": "color_temp_command_template",
	"bat_lev_t": "battery_level_topic", "bat_lev_tpl": "battery_level_template",
	"chrg_t": "charging_topic", "chrg_tpl": "charging_template", "clrm": "color_mode",
	"clrm_stat_t": "color_mode_state_topic", "clrm_val_tpl": "color_mode_value_template",
	"clr_temp_cmd_t": "color_temp_command_topic", "clr_temp_stat_t": "color_temp_state_topic",
	"clr_temp_tpl": "color_temp_template", "clr_temp_val_tpl": "color_temp_value_template",
	"cln_t": "cleaning_topic", "cln_tpl": "cleaning_template", "cmd_off_tpl": "command_off_template",
	"cmd_on_tpl": "command_on_template", "cmd_t": "command_topic", "cmd_tpl": "command_template",
	"cmps": "components", "cod_arm_req": "code_arm_required", "cod_dis_req": "code_disarm_required",
	"cod_trig_req": "code_trigger_required", "cont_type": "content_type",
	"curr_temp_t": "current_temperature_topic", "curr_temp_tpl": "current_temperature_template",
	"curr_hum_t": "current_humidity_topic", "curr_hum_tpl": "current_humidity_template",
	"def_ent_id": "default_entity_id", "dev": "device", "dev_cla": "device_class",
	"dock_t": "docked_topic", "dock_tpl": "docked_template", "e": "encoding", "en": "enabled_by_default",
	"ent_cat": "entity_category", "ent_pic": "entity_picture", "err_t": "error_topic", "err_tpl": "error_template",
	"fanspd_t": "fan_speed_topic", "fanspd_tpl": "fan_speed_template", "fanspd_lst": "fan_speed_list",
	"flsh_tlng": "flash_time_long", "flsh_tsht": "flash_time_short", "fx_cmd_t": "effect_command_topic",
	"fx_cmd_tpl": "effect_command_template", "fx_list": "effect_list", "fx_stat_t": "effect_state_topic",
	"fx_tpl": "effect_template", "fx_val_tpl": "effect_value_template", "exp_aft": "expire_after",
	"fan_mode_cmd_tpl": "fan_mode_command_template", "fan_mode_cmd_t": "fan_mode_command_topic",
	"fan_mode_stat_tpl": "fan_mode_state_template", "fan_mode_stat_t": "fan_mode_state_topic",
	"frc_upd": "force_update", "g_tpl": "green_template", "hold_cmd_tpl": "hold_command_template",
	"hold_cmd_t": "hold_command_topic", "hold_stat_tpl": "hold_state_template", "hold_stat_t": "hold_state_topic",
	"hs_cmd_t": "hs_command_topic", "hs_stat_t": "hs_state_topic", "hs_val_tpl": "hs_value_template",
	"ic": "icon", "img_e": "image_encoding", "img_t": "image_topic", "init": "initial",
	"hum_cmd_t": "target_humidity_command_topic", "hum_cmd_tpl": "target_humidity_command_template",
	"hum_stat_t": "target_humidity_state_topic", "hum_stat_tpl": "target_humidity_state_template",
	"json_attr": "json_attributes", "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
	"l_ver_t": "latest_version_topic", "l_ver_tpl": "latest_version_template",
	"max_mirs": "max_mireds", "min_mirs": "min_mireds", "max_hum": "max_humidity", "min_hum": "min_humidity",
	"mode_cmd_tpl": "mode_command_template", "mode_cmd_t": "mode_command_topic",
	"mode_stat_tpl": "mode_state_template", "mode_stat_t": "mode_state_topic",
	"o": "origin", "obj_id": "object_id", "off_dly": "off_delay", "on_cmd_type": "on_command_type",
	"ops": "options", "opt": "optimistic", "osc_cmd_t": "oscillation_command_topic",
	"osc_cmd_tpl": "oscillation_command_template", "osc_stat_t": "oscillation_state_topic",
	"osc_val_tpl": "oscillation_value_template", "p": "platform", "pct_cmd_t": "percentage_command_topic",
	"pct_cmd_tpl": "percentage_command_template", "pct_stat_t": "percentage_state_topic",
	"pct_val_tpl": "percentage_value_template", "pl": "payload", "pl_arm_away": "payload_arm_away",
	"pl_arm_home": "payload_arm_home", "pl_arm_custom_b": "payload_arm_custom_bypass",
	"pl_arm_nite": "payload_arm_night", "pl_avail": "payload_available", "pl_cln_sp": "payload_clean_spot",
	"pl_cls": "payload_close", "pl_disarm": "payload_disarm", "pl_home": "payload_home",
	"pl_inst": "payload_install", "pl_lock": "payload_lock", "pl_loc": "payload_locate",
	"pl_not_avail": "payload_not_available", "pl_not_home": "payload_not_home", "pl_off": "payload_off",
	"pl_on": "payload_on", "pl_open": "payload_open", "pl_osc_off": "payload_oscillation_off",
	"pl_osc_on": "payload_oscillation_on", "pl_paus": "payload_pause", "pl_prs": "payload_press",
	"pl_rst": "payload_reset", "pl_stop": "payload_stop", "pl_strt": "payload_start",
	"pl_stpa": "payload_start_pause", "pl_ret": "payload_return_to_base", "pl_toff": "payload_turn_off",
	"pl_ton": "payload_turn_on", "pl_trig": "payload_trigger", "pl_unlk": "payload_unlock",
	"pos_clsd": "position_closed", "pos_open": "position_open", "pow_cmd_t": "power_command_topic",
	"pow_stat_t": "power_state_topic", "pow_stat_tpl": "power_state_template",
	"pr_mode_cmd_t": "preset_mode_command_topic", "pr_mode_cmd_tpl": "preset_mode_command_template",
	"pr_mode_stat_t": "preset_mode_state_topic", "pr_mode_val_tpl": "preset_mode_value_template",
	"pr_modes": "preset_modes", "r_tpl": "red_template", "rel_s": "release_summary", "rel_u": "release_url",
	"ret": "retain", "rgb_cmd_tpl": "rgb_command_template", "rgb_cmd_t": "rgb_command_topic",
	"rgb_stat_t": "rgb_state_topic", "rgb_val_tpl": "rgb_value_template", "send_cmd_t": "send_command_topic",
	"send_if_off": "send_if_off", "set_fan_spd_t": "set_fan_speed_topic", "set_pos_tpl": "set_position_template",
	"set_pos_t": "set_position_topic", "pos_t": "position_topic", "pos_tpl": "position_template",
	"spd_rng_min": "speed_range_min", "spd_rng_max": "speed_range_max", "src_type": "source_type",
	"stat_cla": "state_class", "stat_clsd": "state_closed", "stat_closing": "state_closing",
	"stat_off": "state_off", "stat_on": "state_on", "stat_open": "state_open", "stat_opening": "state_opening",
	"stat_stopped": "state_stopped", "stat_locked": "state_locked", "stat_unlocked": "state_unlocked",
	"stat_t": "state_topic", "stat_tpl": "state_template", "stat_val_tpl": "state_value_template",
	"stype": "subtype", "sug_dsp_prc": "suggested_display_precision", "sup_duration": "support_duration",
	"sup_vol": "support_volume_set", "sup_feat": "supported_features", "sup_off": "supported_turn_off",
	"swing_mode_cmd_tpl": "swing_mode_command_template", "swing_mode_cmd_t": "swing_mode_command_topic",
	"swing_mode_stat_tpl": "swing_mode_state_template", "swing_mode_stat_t": "swing_mode_state_topic",
	"temp_cmd_tpl": "temperature_command_template", "temp_cmd_t": "temperature_command_topic",
	"temp_hi_cmd_tpl": "temperature_high_command_template", "temp_hi_cmd_t": "temperature_high_command_topic",
	"temp_hi_stat_tpl": "temperature_high_state_template", "temp_hi_stat_t": "temperature_high_state_topic",
	"temp_lo_cmd_tpl": "temperature_low_command_template", "temp_lo_cmd_t": "temperature_low_command_topic",
	"temp_lo_stat_tpl": "temperature_low_state_template", "temp_lo_stat_t": "temperature_low_state_topic",
	"temp_stat_tpl": "temperature_state_template", "temp_stat_t": "temperature_state_topic",
	"temp_unit": "temperature_unit", "tilt_clsd_val": "tilt_closed_value", "tilt_cmd_t": "tilt_command_topic",
	"tilt_cmd_tpl": "tilt_command_template", "tilt_inv_stat": "tilt_invert_state", "tilt_max": "tilt_max",
	"tilt_min": "tilt_min", "tilt_opnd_val": "tilt_opened_value", "tilt_opt": "tilt_optimistic",
	"tilt_status_t": "tilt_status_topic", "tilt_status_tpl": "tilt_status_template", "tit": "title",
	"t": "topic", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "url_t": "url_topic",
	"url_tpl": "url_template", "val_tpl": "value_template", "whit_val_cmd_t": "white_value_command_topic",
	"whit_val_scl": "white_value_scale", "whit_val_stat_t": "white_value_state_topic",
	"whit_val_tpl": "white_value_template", "xy_cmd_t": "xy_command_topic", "xy_stat_t": "xy_state_topic",
	"xy_val_tpl": "xy_value_template",
}

var haDeviceAbbrev = map[string]string{
	"cns": "connections", "cu": "configuration_url", "ids": "identifiers", "mf": "manufacturer",
	"mdl": "model", "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version", "sa": "suggested_area",
	"sn": "serial_number", "via_device": "via_device",
}

var haOriginAbbrev = map[string]string{"sw": "sw_version", "url": "support_url"}

// expand rewrites abbreviated keys to full ones (a full key wins over its
// abbreviation) and remembers how each key was spelled, for messages.
func expand(where string, v any, table map[string]string) (object, error) {
	o, err := newObject(where, v)
	if err != nil {
		return o, err
	}
	full := make(map[string]any, len(o.m))
	spelled := map[string]string{}
	for k, val := range o.m {
		if long, ok := table[k]; ok && long != k {
			if _, both := o.m[long]; both {
				continue
			}
			full[long] = val
			spelled[long] = k + " (" + long + ")"
			continue
		}
		full[k] = val
	}
	o.m = full
	o.label = func(k string) string {
		if s, ok := spelled[k]; ok {
			return s
		}
		return k
	}
	return o, nil
}

// haDevice is what the device blocks say about the device.
type haDevice struct {
	name, manufacturer, model, modelID, sw, hw string
	ids                                        []string
	idsFrom                                    string
	origin                                     string
}

func (d *haDevice) merge(where string, o object) error {
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &d.name}, {"manufacturer", &d.manufacturer}, {"model", &d.model}, {"model_id", &d.modelID},
		{"sw_version", &d.sw}, {"hw_version", &d.hw}} {
		v, ok, err := o.scalarText(f.key)
		if err != nil {
			return err
		}
		if ok && *f.dst == "" {
			*f.dst = strings.TrimSpace(v)
		}
	}
	ids, err := o.strs("identifiers")
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	if len(d.ids) == 0 {
		d.ids, d.idsFrom = ids, where
		return nil
	}
	for _, a := range ids {
		for _, b := range d.ids {
			if a == b {
				return nil
			}
		}
	}
	return inputErr(where, "belongs to another device (identifiers %s) than %s (identifiers %s): import one device at a time",
		clip(strings.Join(ids, ", "), 120), d.idsFrom, clip(strings.Join(d.ids, ", "), 120))
}

func (d *haDevice) title() string {
	switch {
	case d.model != "" && d.manufacturer != "":
		return d.model + " by " + d.manufacturer
	case d.model != "":
		return d.model
	}
	return "Device imported from Home Assistant"
}

func (d *haDevice) describe() string {
	var parts []string
	if d.model != "" {
		m := "model " + quote(d.model)
		if d.modelID != "" {
			m += " (" + quote(d.modelID) + ")"
		}
		parts = append(parts, m)
	}
	if d.manufacturer != "" {
		parts = append(parts, "made by "+quote(d.manufacturer))
	}
	if d.sw != "" {
		parts = append(parts, "software "+quote(d.sw))
	}
	if d.hw != "" {
		parts = append(parts, "hardware "+quote(d.hw))
	}
	if d.origin != "" {
		parts = append(parts, "discovery published by "+d.origin)
	}
	if len(parts) == 0 {
		return "The discovery payloads say nothing about the device itself."
	}
	return "Home Assistant says: " + strings.Join(parts, ", ") + "."
}

// haEntity is one discovered entity, keys expanded and the base topic
// applied.
type haEntity struct {
	where     string
	o         object
	component string
	inferred  bool
	objectID  string // from the discovery topic
	uniqueID  string
}

var haComponents = map[string]bool{
	"alarm_control_panel": true, "binary_sensor": true, "button": true, "camera": true, "climate": true,
	"cover": true, "device_automation": true, "device_tracker": true, "event": true, "fan": true,
	"humidifier": true, "image": true, "lawn_mower": true, "light": true, "lock": true, "notify": true,
	"number": true, "scene": true, "select": true, "sensor": true, "siren": true, "switch": true,
	"tag": true, "text": true, "update": true, "vacuum": true, "valve": true, "water_heater": true,
	"device": true,
}

// readDiscovery decodes one message into its entities (several for a
// device discovery payload) and merges its device block into dev.
func readDiscovery(where string, msg Discovery, dev *haDevice) ([]*haEntity, error) {
	component, objectID := "", ""
	if msg.Topic != "" {
		parts := strings.Split(strings.Trim(msg.Topic, "/"), "/")
		if (len(parts) != 4 && len(parts) != 5) || parts[len(parts)-1] != "config" || !haComponents[parts[1]] {
			return nil, inputErr(where, "topic %s is not <discovery_prefix>/<component>/[<node_id>/]<object_id>/config", quote(msg.Topic))
		}
		component, objectID = parts[1], parts[len(parts)-2]
	}
	v, err := decodeJSON(where, msg.Payload)
	if err != nil {
		if len(strings.TrimSpace(string(msg.Payload))) == 0 {
			return nil, inputErr(where, "empty payload (in Home Assistant an empty config deletes the entity)")
		}
		return nil, err
	}
	o, err := expand(where, v, haAbbrev)
	if err != nil {
		return nil, err
	}
	if err := mergeDeviceAndOrigin(where, o, dev); err != nil {
		return nil, err
	}
	if !o.has("components") {
		if component == "device" {
			return nil, inputErr(where, "a device discovery payload needs components (cmps)")
		}
		e, err := newEntity(where, o, component, objectID)
		if err != nil {
			return nil, err
		}
		return []*haEntity{e}, nil
	}
	cmps, ok := o.m["components"].(map[string]any)
	if !ok {
		return nil, inputErr(where, "%s must be an object, not %s", o.label("components"), jsonKind(o.m["components"]))
	}
	if len(cmps) == 0 {
		return nil, inputErr(where, "%s is empty", o.label("components"))
	}
	keys := make([]string, 0, len(cmps))
	for k := range cmps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*haEntity
	for _, k := range keys {
		cwhere := fmt.Sprintf("%s, component %s", where, quote(k))
		c, err := expand(cwhere, cmps[k], haAbbrev)
		if err != nil {
			return nil, err
		}
		// Topics, templates and transport options set at device level are
		// shared by every component.
		for sk, sv := range o.m {
			if !sharedOption(sk) {
				continue
			}
			if _, own := c.m[sk]; !own {
				c.m[sk] = sv
			}
		}
		p, err := c.str("platform")
		if err != nil {
			return nil, err
		}
		if p == "" {
			return nil, inputErr(cwhere, "platform (p) missing: a device discovery component must name its platform")
		}
		e, err := newEntity(cwhere, c, p, k)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// sharedOption reports whether a device discovery payload's top-level key
// applies to its components.
func sharedOption(key string) bool {
	switch key {
	case "~", "availability", "availability_mode", "availability_topic", "availability_template",
		"payload_available", "payload_not_available", "qos", "encoding", "retain":
		return true
	}
	return strings.HasSuffix(key, "topic") || strings.HasSuffix(key, "_template")
}

func mergeDeviceAndOrigin(where string, o object, dev *haDevice) error {
	d, ok, err := o.obj("device", where+", device")
	if err != nil {
		return err
	}
	if ok {
		d, err = expand(d.where, d.m, haDeviceAbbrev)
		if err != nil {
			return err
		}
		if err := dev.merge(where, d); err != nil {
			return err
		}
	}
	org, ok, err := o.obj("origin", where+", origin")
	if err != nil {
		return err
	}
	if ok && dev.origin == "" {
		org, err = expand(org.where, org.m, haOriginAbbrev)
		if err != nil {
			return err
		}
		name, _, err := org.scalarText("name")
		if err != nil {
			return err
		}
		sw, _, err := org.scalarText("sw_version")
		if err != nil {
			return err
		}
		if name != "" {
			dev.origin = quote(strings.TrimSpace(name + " " + sw))
		}
	}
	return nil
}

func newEntity(where string, o object, component, objectID string) (*haEntity, error) {
	e := &haEntity{where: where, o: o, component: component, objectID: objectID}
	if base, ok := o.m["~"].(string); ok && base != "" {
		for k, v := range o.m {
			s, isStr := v.(string)
			if !isStr || s == "" || !strings.HasSuffix(k, "topic") {
				continue
			}
			if strings.HasPrefix(s, "~") {
				s = base + s[1:]
			}
			if strings.HasSuffix(s, "~") {
				s = s[:len(s)-1] + base
			}
			o.m[k] = s
		}
	}
	var err error
	if e.uniqueID, err = o.str("unique_id"); err != nil {
		return nil, err
	}
	if e.component == "" {
		p, err := o.str("platform")
		if err != nil {
			return nil, err
		}
		if p != "" && p != "mqtt" {
			e.component = p
		} else {
			e.component, e.inferred = inferComponent(o), true
		}
	}
	return e, nil
}

// inferComponent guesses the component of a payload published without its
// topic.
func inferComponent(o object) string {
	hasAny := func(keys ...string) bool {
		for _, k := range keys {
			if o.has(k) {
				return true
			}
		}
		return false
	}
	dc, _ := o.str("device_class")
	switch {
	case hasAny("current_temperature_topic", "temperature_state_topic", "mode_state_topic", "mode_command_topic",
		"temperature_command_topic", "action_topic", "current_humidity_topic", "temperature_low_state_topic"):
		return "climate"
	case hasAny("image_topic", "url_topic"):
		return "image"
	case o.has("topic") && !o.has("state_topic") && !o.has("command_topic"):
		return "camera"
	case hasAny("payload_lock", "payload_unlock", "state_locked", "state_unlocked"):
		return "lock"
	case hasAny("position_topic", "set_position_topic", "payload_open", "payload_close", "payload_stop", "tilt_command_topic"):
		return "cover"
	case o.has("command_topic") && hasAny("brightness", "brightness_command_topic", "schema", "rgb_command_topic",
		"color_temp_command_topic", "effect_command_topic", "supported_color_modes"):
		return "light"
	case o.has("command_topic") && o.has("options"):
		return "select"
	case o.has("command_topic") && hasAny("min", "max", "step", "mode"):
		return "number"
	case o.has("command_topic") && o.has("payload_press"):
		return "button"
	case o.has("command_topic"):
		return "switch"
	case hasAny("unit_of_measurement", "state_class", "options", "suggested_display_precision", "last_reset_value_template"):
		return "sensor"
	case hasAny("payload_on", "payload_off", "off_delay"):
		return "binary_sensor"
	case binaryKinds[dc] != nil && numericKinds[dc] == nil:
		return "binary_sensor"
	}
	return "sensor"
}

// stream builds the entity's stream, or returns a nil stream and a note
// saying why it was skipped.
func (e *haEntity) stream(dev *haDevice, taken names) (*docStream, string, string, error) {
	o := e.o
	get := func(key string) (string, error) { return o.str(key) }
	name, err := get("name")
	if err != nil {
		return nil, "", "", err
	}
	name = strings.TrimSpace(name)
	dc, err := get("device_class")
	if err != nil {
		return nil, "", "", err
	}
	dc = strings.TrimSpace(dc)
	objectID, err := get("object_id")
	if err != nil {
		return nil, "", "", err
	}
	defaultID, err := get("default_entity_id")
	if err != nil {
		return nil, "", "", err
	}
	if i := strings.IndexByte(defaultID, '.'); i >= 0 {
		defaultID = defaultID[i+1:]
	}
	entCat, err := get("entity_category")
	if err != nil {
		return nil, "", "", err
	}
	// An entity named after its device ("3DPrinter" on device "3DPrinter")
	// is the device's main entity: its stream is named for what it is.
	short := name
	if n := len(dev.name); n > 0 && len(name) >= n && strings.EqualFold(name[:n], dev.name) &&
		(len(name) == n || strings.ContainsRune(" _-:", rune(name[n]))) {
		short = strings.Trim(name[n:], " _-:")
	}
	full := name
	if short == "" {
		full = ""
	}

	candidates := []string{objectID, defaultID, short, dc, full, e.objectID, e.component, e.uniqueID}
	if short == "" && name != "" {
		candidates = []string{objectID, defaultID, dc, e.component}
	}
	var streamName string
	for _, c := range candidates {
		if n := sanitize(c, "s_"); n != "" {
			streamName = n
			break
		}
	}
	streamName = taken.take(streamName)

	title := short
	if title == "" {
		title = titleCase(dc)
	}
	if title == "" {
		title = titleCase(e.component)
	}
	s := newStream(streamName, title)

	var desc strings.Builder
	fmt.Fprintf(&desc, "Home Assistant %s entity", e.component)
	if short != "" {
		desc.WriteString(" " + quote(short))
	}
	if e.inferred {
		desc.WriteString("; the component was inferred from the payload's keys")
	}
	desc.WriteString(".")
	topicNote := func(label, topicKey, tplKey string) (string, error) {
		t, err := get(topicKey)
		if err != nil {
			return "", err
		}
		tpl, err := get(tplKey)
		if err != nil {
			return "", err
		}
		n := label + " from " + topicKey + " " + quote(t)
		if tpl != "" {
			n += " with " + tplKey + " " + quote(tpl)
		}
		return n, nil
	}
	nameUsed := ""
	for _, c := range []string{short, objectID, defaultID, e.objectID, e.component} {
		if c != "" {
			nameUsed = c
			break
		}
	}
	sourceItem := func(k *kind, exact bool) string {
		switch {
		case dc != "" && exact:
			return "device_class " + dc
		case k != nil:
			return "entity name " + quote(nameUsed) + " (no device_class given)"
		case dc != "":
			return "device_class " + dc + " (not one Candor knows)"
		}
		return e.component + " " + quote(title) + " (no device_class given)"
	}
	fallback := func(k *kind) *profile {
		switch {
		case k != nil:
			return k.prof
		case entCat == "diagnostic" || entCat == "config":
			return profDevice
		}
		return profUnknown
	}
	inferName := sanitize(strings.Join([]string{objectID, defaultID, name, e.uniqueID, e.objectID}, " "), "x_")

	switch e.component {
	case "sensor":
		if st, err := get("state_topic"); err != nil {
			return nil, "", "", err
		} else if strings.TrimSpace(st) == "" {
			return nil, "", "", inputErr(e.where, "%s missing: a sensor must have a state topic", o.label("state_topic"))
		}
		unit, err := get("unit_of_measurement")
		if err != nil {
			return nil, "", "", err
		}
		unit = strings.TrimSpace(unit)
		stateClass, err := get("state_class")
		if err != nil {
			return nil, "", "", err
		}
		options, err := o.strs("options")
		if err != nil {
			return nil, "", "", err
		}
		k, exact := kindOf("numeric", dc, false)
		if k == nil && dc == "" {
			k, exact = kindOf("numeric", inferName, true)
		}
		fieldName := sanitize(dc, "f_")
		if fieldName == "" {
			fieldName = "value"
		}
		note, err := topicNote("It reads the value", "state_topic", "value_template")
		if err != nil {
			return nil, "", "", err
		}
		desc.WriteString(" " + note + ".")
		src := sourceItem(k, exact)
		switch {
		case dc == "enum" || len(options) > 0:
			if len(options) == 0 {
				s.Properties[fieldName] = textField("the value as text (device_class enum without options)", textMaxLength)
			} else {
				s.Properties[fieldName] = enumField("one of the options Home Assistant lists", dedupe(options))
			}
		case dc == "timestamp" || dc == "date":
			s.Properties[fieldName] = textField("an ISO 8601 "+dc, 64)
		case unit != "" || stateClass != "" || (k != nil && exact):
			words, lo, hi, known := rangeFor(k, unit)
			fd := "the reading"
			if k != nil {
				fd = strings.ToLower(titleCase(k.name))
			}
			if words == "unitless" {
				fd += " (Home Assistant states no unit — add one before confirming)"
			} else {
				fd += " in " + words
			}
			if known {
				fd += fmt.Sprintf("; range %s to %s suggested from %s — check before confirming (Home Assistant states no range)", formatNum(lo), formatNum(hi), src)
			} else {
				fd += fmt.Sprintf("; no typical range is known for this reading, so the range is the widest allowed (%s to %s): narrow it before confirming", formatNum(lo), formatNum(hi))
			}
			if stateClass != "" {
				fd += "; Home Assistant state_class " + quote(stateClass)
				if stateClass == "total_increasing" {
					fd += " (a total that only grows until the meter resets)"
				}
			}
			s.Properties[fieldName] = numberField(fd, words, lo, hi)
			s.Continuous = true
		default:
			s.Properties[fieldName] = textField("the state as text (Home Assistant gives no unit, so it is not known to be a number)", textMaxLength)
		}
		s.Required = []string{fieldName}
		s.applyProfiles([]*profile{fallback(k)}, []string{src}, "Home Assistant", "Home Assistant")

	case "binary_sensor":
		if st, err := get("state_topic"); err != nil {
			return nil, "", "", err
		} else if strings.TrimSpace(st) == "" {
			return nil, "", "", inputErr(e.where, "%s missing: a binary_sensor must have a state topic", o.label("state_topic"))
		}
		k, exact := kindOf("binary", dc, false)
		if k == nil && dc == "" {
			k, exact = kindOf("binary", inferName, true)
		}
		fieldName := sanitize(dc, "f_")
		if fieldName == "" {
			fieldName = "value"
		}
		on, _, err := o.scalarText("payload_on")
		if err != nil {
			return nil, "", "", err
		}
		off, _, err := o.scalarText("payload_off")
		if err != nil {
			return nil, "", "", err
		}
		if on == "" {
			on = "ON"
		}
		if off == "" {
			off = "OFF"
		}
		note, err := topicNote("It reads the state", "state_topic", "value_template")
		if err != nil {
			return nil, "", "", err
		}
		desc.WriteString(" " + note + fmt.Sprintf("; payload_on %s becomes true, payload_off %s false.", quote(on), quote(off)))
		meaning := "true when Home Assistant shows it as on"
		if k != nil && k.on != "" {
			meaning = "true when " + k.on
		}
		s.Properties[fieldName] = boolField(meaning + " (Home Assistant payload_on " + quote(on) + ")")
		s.Required = []string{fieldName}
		s.applyProfiles([]*profile{fallback(k)}, []string{sourceItem(k, exact)}, "Home Assistant", "Home Assistant")

	case "switch", "light":
		if !o.has("state_topic") {
			return nil, "", e.component + " without a state_topic reports nothing", nil
		}
		on, _, err := o.scalarText("state_on")
		if err != nil {
			return nil, "", "", err
		}
		if on == "" {
			if on, _, err = o.scalarText("payload_on"); err != nil {
				return nil, "", "", err
			}
		}
		if on == "" {
			on = "ON"
		}
		tplKey := "value_template"
		if e.component == "light" {
			tplKey = "state_value_template"
		}
		note, err := topicNote("It reads the on/off state", "state_topic", tplKey)
		if err != nil {
			return nil, "", "", err
		}
		desc.WriteString(" " + note + ".")
		if e.component == "light" {
			desc.WriteString(" Only on/off is imported: brightness, colour and effects are not.")
		}
		s.Properties["on"] = boolField("true when it is on (Home Assistant state " + quote(on) + ")")
		s.Required = []string{"on"}
		s.applyProfiles([]*profile{profActuator}, []string{"component " + e.component}, "Home Assistant", "Home Assistant")

	case "climate":
		if err := e.climate(s, &desc); err != nil {
			return nil, "", "", err
		}
		if len(s.Properties) == 0 {
			return nil, "", "climate without a state topic reports nothing", nil
		}
		profs := []*profile{profAmbient}
		items := []string{"component climate (current readings)"}
		if s.Properties["target_temperature"] != nil || s.Properties["mode"] != nil || s.Properties["preset_mode"] != nil ||
			s.Properties["target_humidity"] != nil || s.Properties["fan_mode"] != nil {
			profs = []*profile{profPreference, profAmbient}
			items = []string{"component climate (settings)", "component climate (current readings)"}
		}
		s.Continuous = true
		s.applyProfiles(profs, items, "Home Assistant", "Home Assistant")

	case "camera", "image":
		topicKey := "topic"
		fieldName, fd, maxLen := "image", "the picture, base64-encoded (Home Assistant receives raw image bytes; the bridge must encode them)", 60000
		if e.component == "image" {
			topicKey = "image_topic"
			if !o.has("image_topic") {
				topicKey, fieldName, fd, maxLen = "url_topic", "url", "the address of the picture", 2048
			}
		}
		if !o.has(topicKey) {
			return nil, "", "", inputErr(e.where, "%s missing: a %s must have a topic", o.label(topicKey), e.component)
		}
		t, err := get(topicKey)
		if err != nil {
			return nil, "", "", err
		}
		desc.WriteString(" It reads pictures from " + topicKey + " " + quote(t) + ".")
		s.Properties[fieldName] = textField(fd, maxLen)
		s.Required = []string{fieldName}
		if fieldName == "image" {
			s.MaxPayloadBytes = 65536
			s.MaxPerMinute = 6
		}
		s.applyProfiles([]*profile{profImage}, []string{"component " + e.component}, "Home Assistant", "Home Assistant")

	default:
		how := ""
		if e.inferred {
			how = ", inferred from its keys"
		}
		return nil, "", fmt.Sprintf("%s entity%s: only sensor, binary_sensor, switch, light, climate, camera and image are imported", e.component, how), nil
	}

	fmt.Fprintf(&desc, " On the hub it is the JSON object with %s on %s.", joinWords(sortedKeys(s.Properties)), hubTopic(streamName))
	s.Description = upperFirst(s.suggested) + " — check before confirming: the data categories, purposes, retention and what it reveals are suggestions. " + desc.String()
	s.MaxPayloadBytes = max(s.MaxPayloadBytes, estimatePayload(s.Properties))
	s.Use = "Suggested — check before confirming: Home Assistant shows it and can use it in the automations you set up."
	if s.prof == profUnknown {
		s.Description = "Nothing about its privacy could be suggested: decide every privacy statement. " + s.Description
	}
	return s, streamName, "", nil
}

func hubTopic(stream string) string { return manifest.TopicTemplate + stream }

// climate adds a field per climate state topic.
func (e *haEntity) climate(s *docStream, desc *strings.Builder) error {
	o := e.o
	tempUnit, err := o.str("temperature_unit")
	if err != nil {
		return err
	}
	if tempUnit == "" {
		tempUnit = "°C"
		desc.WriteString(" No temperature_unit is given: degree Celsius is assumed (Home Assistant would use its own unit system) — check before confirming.")
	}
	tk := numericKinds["temperature"]
	words, tlo, thi, _ := rangeFor(tk, tempUnit)
	minT, okMin, err := o.num("min_temp")
	if err != nil {
		return err
	}
	maxT, okMax, err := o.num("max_temp")
	if err != nil {
		return err
	}
	_, dlo, dhi, _ := rangeFor(&kind{dim: "temperature", min: 7, max: 35}, tempUnit)
	if okMin {
		dlo = minT
	}
	if okMax {
		dhi = maxT
	}
	enumOf := func(key string, def []string) ([]string, error) {
		v, err := o.strs(key)
		if err != nil {
			return nil, err
		}
		if len(v) == 0 {
			v = def
		}
		return dedupe(v), nil
	}
	type part struct {
		field, topic, tpl string
		build             func() (*docField, error)
	}
	parts := []part{
		{"current_temperature", "current_temperature_topic", "current_temperature_template", func() (*docField, error) {
			return numberField(fmt.Sprintf("the measured temperature in %s; range %s to %s suggested from Home Assistant climate — check before confirming", words, formatNum(tlo), formatNum(thi)), words, tlo, thi), nil
		}},
		{"target_temperature", "temperature_state_topic", "temperature_state_template", func() (*docField, error) {
			return numberField(fmt.Sprintf("the temperature it is set to, in %s; range from min_temp/max_temp (Home Assistant's defaults where absent)", words), words, dlo, dhi), nil
		}},
		{"target_temperature_low", "temperature_low_state_topic", "temperature_low_state_template", func() (*docField, error) {
			return numberField("the lower set temperature, in "+words, words, dlo, dhi), nil
		}},
		{"target_temperature_high", "temperature_high_state_topic", "temperature_high_state_template", func() (*docField, error) {
			return numberField("the upper set temperature, in "+words, words, dlo, dhi), nil
		}},
		{"current_humidity", "current_humidity_topic", "current_humidity_template", func() (*docField, error) {
			return numberField("the measured relative humidity in percent", "percent", 0, 100), nil
		}},
		{"target_humidity", "target_humidity_state_topic", "target_humidity_state_template", func() (*docField, error) {
			lo, okLo, err := o.num("min_humidity")
			if err != nil {
				return nil, err
			}
			hi, okHi, err := o.num("max_humidity")
			if err != nil {
				return nil, err
			}
			if !okLo {
				lo = 30
			}
			if !okHi {
				hi = 99
			}
			return numberField("the relative humidity it is set to, in percent", "percent", lo, hi), nil
		}},
		{"mode", "mode_state_topic", "mode_state_template", func() (*docField, error) {
			v, err := enumOf("modes", []string{"auto", "off", "cool", "heat", "dry", "fan_only"})
			return enumField("the HVAC mode it is set to", v), err
		}},
		{"action", "action_topic", "action_template", func() (*docField, error) {
			return enumField("what it is doing now", []string{"off", "heating", "cooling", "drying", "idle", "fan", "preheating", "defrosting"}), nil
		}},
		{"fan_mode", "fan_mode_state_topic", "fan_mode_state_template", func() (*docField, error) {
			v, err := enumOf("fan_modes", []string{"auto", "low", "medium", "high"})
			return enumField("the fan mode it is set to", v), err
		}},
		{"preset_mode", "preset_mode_state_topic", "preset_mode_value_template", func() (*docField, error) {
			v, err := enumOf("preset_modes", nil)
			if err != nil || len(v) == 0 {
				return textField("the preset it is set to", 64), err
			}
			return enumField("the preset it is set to", v), nil
		}},
	}
	var read []string
	for _, p := range parts {
		if !o.has(p.topic) {
			continue
		}
		t, err := o.str(p.topic)
		if err != nil {
			return err
		}
		tpl, err := o.str(p.tpl)
		if err != nil {
			return err
		}
		f, err := p.build()
		if err != nil {
			return err
		}
		s.Properties[p.field] = f
		r := p.field + " from " + p.topic + " " + quote(t)
		if tpl != "" {
			r += " with " + p.tpl + " " + quote(tpl)
		}
		read = append(read, r)
	}
	if len(read) > 0 {
		desc.WriteString(" It reads " + strings.Join(read, "; ") + ". Swing modes and auxiliary heat are not imported.")
	}
	return nil
}

// addAmbientCombinations records that ambient readings (temperature,
// humidity, CO2, light, …) reveal presence together.
func addAmbientCombinations(d *document) {
	var ambient []string
	for name, s := range d.Properties {
		if s.prof != nil && (s.prof.ambient || s.prof == profPresence) {
			ambient = append(ambient, name)
		}
	}
	sort.Strings(ambient)
	for _, name := range ambient {
		s := d.Properties[name]
		if !s.prof.ambient {
			continue
		}
		var others []string
		for _, o := range ambient {
			if o != name {
				others = append(others, o)
			}
		}
		if len(others) == 0 {
			continue
		}
		s.RevealsWith = []docCombination{{
			Streams: others,
			Reveals: "Suggested — check before confirming: together, when a room is in use, and so when people are at home (candor:Presence).",
		}}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
