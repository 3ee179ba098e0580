package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

const maxInput = 1 << 20 // bytes per config payload or device definition

// decodeJSON parses data as exactly one JSON value, reporting syntax errors
// with their line and column.
func decodeJSON(where string, data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, inputErr(where, "empty")
	}
	if len(data) > maxInput {
		return nil, inputErr(where, "larger than %d bytes", maxInput)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, inputErr(where, "not valid JSON: %s", syntaxProblem(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		line, col := lineCol(data, dec.InputOffset())
		return nil, inputErr(where, "not valid JSON: line %d, column %d: more data after the end of the value", line, col)
	}
	return v, nil
}

func syntaxProblem(data []byte, err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := lineCol(data, syn.Offset)
		return fmt.Sprintf("line %d, column %d: %v", line, col, syn)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		line, col := lineCol(data, int64(len(data)))
		return fmt.Sprintf("line %d, column %d: unexpected end of input", line, col)
	}
	return err.Error()
}

func lineCol(data []byte, off int64) (int, int) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// jsonKind names a decoded JSON value's type for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// object is a decoded JSON object with typed, located accessors. label
// turns a key into the name used in messages (for Home Assistant, the key as
// the payload spelled it, abbreviated or not).
type object struct {
	where string
	m     map[string]any
	label func(key string) string
}

func newObject(where string, v any) (object, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return object{}, inputErr(where, "must be a JSON object, not %s", jsonKind(v))
	}
	return object{where: where, m: m, label: func(k string) string { return k }}, nil
}

func (o object) has(key string) bool {
	v, ok := o.m[key]
	return ok && v != nil
}

// str returns a string member; missing or null is "".
func (o object) str(key string) (string, error) {
	switch v := o.m[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", inputErr(o.where, "%s must be a string, not %s", o.label(key), jsonKind(v))
	}
}

// scalarText returns a string, number or boolean member as text (Home
// Assistant accepts payload_on: 1 as well as "1").
func (o object) scalarText(key string) (string, bool, error) {
	switch v := o.m[key].(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case bool:
		return strconv.FormatBool(v), true, nil
	case float64:
		return formatNum(v), true, nil
	default:
		return "", false, inputErr(o.where, "%s must be text, not %s", o.label(key), jsonKind(v))
	}
}

// num returns a numeric member; numeric strings ("15") are accepted, as
// Home Assistant accepts them.
func (o object) num(key string) (float64, bool, error) {
	switch v := o.m[key].(type) {
	case nil:
		return 0, false, nil
	case float64:
		return v, true, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false, inputErr(o.where, "%s must be a number, not %q", o.label(key), clip(v, 40))
		}
		return f, true, nil
	default:
		return 0, false, inputErr(o.where, "%s must be a number, not %s", o.label(key), jsonKind(v))
	}
}

// strs returns a member that is a string or a list of strings.
func (o object) strs(key string) ([]string, error) {
	switch v := o.m[key].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				if f, isNum := item.(float64); isNum {
					s = formatNum(f)
				} else {
					return nil, inputErr(o.where, "%s[%d] must be a string, not %s", o.label(key), i, jsonKind(item))
				}
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, inputErr(o.where, "%s must be a string or a list of strings, not %s", o.label(key), jsonKind(v))
	}
}

// obj returns a member that is an object, or ok false when it is absent.
func (o object) obj(key, where string) (object, bool, error) {
	v, present := o.m[key]
	if !present || v == nil {
		return object{}, false, nil
	}
	sub, err := newObject(where, v)
	if err != nil {
		return object{}, false, inputErr(o.where, "%s must be an object, not %s", o.label(key), jsonKind(v))
	}
	return sub, true, nil
}
