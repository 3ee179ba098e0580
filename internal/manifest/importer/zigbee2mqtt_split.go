package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Zigbee2MQTTPart is one field of a Zigbee2MQTT state message, as the
// reading of its own stream: Payload is {"<Stream>": value}.
type Zigbee2MQTTPart struct {
	Stream  string   // "" when the key has no letters or digits to name a stream
	Key     string   // the key path as Zigbee2MQTT published it, e.g. color.x, for people
	Path    []string // the same path, one key each: [color x], [PM2.5]
	Payload []byte
}

// ErrZigbee2MQTTPayload is wrapped by every SplitZigbee2MQTT error.
var ErrZigbee2MQTTPayload = errors.New("not a Zigbee2MQTT state message")

// Zigbee2MQTTName is the stream (and field) name of a Zigbee2MQTT
// property at path (a composite's property first, color, x → color_x).
// FromZigbee2MQTT and SplitZigbee2MQTT both use it, so a message always
// splits into the streams its device's manifest declares. "control" is
// the hub's own namespace and becomes f_control.
func Zigbee2MQTTName(path ...string) string {
	n := sanitize(strings.Join(path, "_"), "f_")
	if n == "control" {
		n = "f_control"
	}
	return n
}

// SplitZigbee2MQTT splits the JSON object Zigbee2MQTT publishes on
// zigbee2mqtt/<friendly_name> into one part per property, so each
// property is a stream a person can switch on or off alone (occupancy
// apart from battery). A composite's object ({"color":{"x":…,"y":…}}) is
// flattened as the importer does (color_x, color_y); any other value
// (number, string, boolean, null, array) is a property. Parts come sorted
// by stream name. The payload is outside input: it must be one JSON
// object of at most maxZ2MFields properties nested at most maxZ2MDepth
// deep.
func SplitZigbee2MQTT(payload []byte) ([]Zigbee2MQTTPart, error) {
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: must be a JSON object", ErrZigbee2MQTTPayload)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrZigbee2MQTTPayload)
	}
	var parts []Zigbee2MQTTPart
	if err := splitZ2M(top, nil, &parts, 0); err != nil {
		return nil, err
	}
	slices.SortStableFunc(parts, func(a, b Zigbee2MQTTPart) int { return strings.Compare(a.Stream, b.Stream) })
	return parts, nil
}

func splitZ2M(obj map[string]json.RawMessage, prefix []string, parts *[]Zigbee2MQTTPart, depth int) error {
	if depth > maxZ2MDepth {
		return fmt.Errorf("%w: objects nested more than %d deep", ErrZigbee2MQTTPayload, maxZ2MDepth)
	}
	// Sorted so that the parts, and any error, do not depend on map order.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := bytes.TrimSpace(obj[k])
		path := append(slices.Clip(prefix), k)
		if len(v) > 0 && v[0] == '{' {
			var inner map[string]json.RawMessage
			if err := json.Unmarshal(v, &inner); err != nil {
				return fmt.Errorf("%w: %v", ErrZigbee2MQTTPayload, err)
			}
			if err := splitZ2M(inner, path, parts, depth+1); err != nil {
				return err
			}
			continue
		}
		if len(*parts) >= maxZ2MFields {
			return fmt.Errorf("%w: more than %d properties", ErrZigbee2MQTTPayload, maxZ2MFields)
		}
		name := Zigbee2MQTTName(path...)
		var b bytes.Buffer
		b.Grow(len(name) + len(v) + 5)
		b.WriteString(`{"`)
		b.WriteString(name) // [a-z0-9_] only: nothing to escape
		b.WriteString(`":`)
		b.Write(v)
		b.WriteByte('}')
		*parts = append(*parts, Zigbee2MQTTPart{Stream: name, Key: strings.Join(path, "."), Path: path, Payload: b.Bytes()})
	}
	return nil
}
