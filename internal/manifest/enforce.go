package manifest

import (
	"math"

	"github.com/valyala/fastjson"
)

// Violation reasons. A violation names the stream and field, never the
// value, so it can be shown and counted without revealing personal data.
const (
	ViolUndeclaredStream = "undeclared_stream"
	ViolUndeclaredField  = "undeclared_field"
	ViolMissingField     = "missing_field"
	ViolWrongType        = "wrong_type"
	ViolOutOfRange       = "out_of_range"
	ViolNotAllowed       = "value_not_allowed"
	ViolTooLarge         = "too_large"
	ViolMalformed        = "not_json_object"
)

// Violation is one way a reading broke its manifest.
type Violation struct {
	Stream string
	Field  string // empty when the whole reading is at fault
	Reason string
}

func (v *Violation) Error() string {
	switch v.Reason {
	case ViolUndeclaredStream:
		return "stream " + v.Stream + " is not declared in the device's manifest"
	case ViolUndeclaredField:
		return "field " + v.Field + " is not declared for stream " + v.Stream
	case ViolMissingField:
		return "required field " + v.Field + " is missing from stream " + v.Stream
	case ViolWrongType:
		return "field " + v.Field + " of stream " + v.Stream + " has the wrong type"
	case ViolOutOfRange:
		return "field " + v.Field + " of stream " + v.Stream + " is outside its declared range"
	case ViolNotAllowed:
		return "field " + v.Field + " of stream " + v.Stream + " has a value its manifest does not allow"
	case ViolTooLarge:
		return "reading on stream " + v.Stream + " is larger than its manifest allows"
	default:
		return "reading on stream " + v.Stream + " is not a JSON object"
	}
}

// Checker enforces one manifest on readings. It is compiled once per
// manifest version so the per-reading cost is a parse and a walk, not a
// generic JSON Schema evaluation.
type Checker struct {
	streams map[string]*streamCheck
	pool    fastjson.ParserPool
}

type streamCheck struct {
	s        *Stream
	fields   map[string]*Field
	required []string
}

// Compile builds the checker of a validated manifest.
func Compile(m *Manifest) *Checker {
	c := &Checker{streams: make(map[string]*streamCheck, len(m.Streams))}
	for _, s := range m.Streams {
		sc := &streamCheck{s: s, fields: make(map[string]*Field, len(s.Fields)), required: s.Required}
		for _, f := range s.Fields {
			sc.fields[f.Name] = f
		}
		c.streams[s.Name] = sc
	}
	return c
}

// Check enforces the manifest on one reading, which the caller has
// already checked to be syntactically valid JSON (the ingest path does, and
// the fast parser here is lenient about details such as leading zeros).
// With strip false any
// undeclared field refuses the reading; with strip true undeclared fields
// are removed and the cleaned payload returned (it is then what gets
// stored), while every other violation still refuses it. The returned
// payload is payload itself when nothing was removed.
func (c *Checker) Check(stream string, payload []byte, strip bool) ([]byte, *Violation) {
	sc := c.streams[stream]
	if sc == nil {
		return nil, &Violation{Stream: stream, Reason: ViolUndeclaredStream}
	}
	if sc.s.MaxPayloadBytes > 0 && len(payload) > sc.s.MaxPayloadBytes {
		return nil, &Violation{Stream: stream, Reason: ViolTooLarge}
	}
	p := c.pool.Get()
	defer c.pool.Put(p)
	v, err := p.ParseBytes(payload)
	if err != nil {
		return nil, &Violation{Stream: stream, Reason: ViolMalformed}
	}
	obj, err := v.Object()
	if err != nil {
		return nil, &Violation{Stream: stream, Reason: ViolMalformed}
	}
	var viol *Violation
	var extra []string
	obj.Visit(func(key []byte, val *fastjson.Value) {
		if viol != nil {
			return
		}
		f := sc.fields[string(key)]
		if f == nil {
			if strip {
				extra = append(extra, string(key))
				return
			}
			// The name is the device's own key, not a value; keep it short
			// so a device cannot smuggle data through field names.
			viol = &Violation{Stream: stream, Field: truncate(string(key), 64), Reason: ViolUndeclaredField}
			return
		}
		if r := checkValue(f, val); r != "" {
			viol = &Violation{Stream: stream, Field: f.Name, Reason: r}
		}
	})
	if viol != nil {
		return nil, viol
	}
	for _, r := range sc.required {
		if obj.Get(r) == nil {
			return nil, &Violation{Stream: stream, Field: r, Reason: ViolMissingField}
		}
	}
	if len(extra) == 0 {
		return payload, nil
	}
	for _, k := range extra {
		obj.Del(k)
	}
	return v.MarshalTo(nil), nil
}

func checkValue(f *Field, v *fastjson.Value) string {
	switch f.Type {
	case "number", "integer":
		if v.Type() != fastjson.TypeNumber {
			return ViolWrongType
		}
		n := v.GetFloat64()
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return ViolWrongType
		}
		if f.Type == "integer" && n != math.Trunc(n) {
			return ViolWrongType
		}
		if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
			return ViolOutOfRange
		}
	case "boolean":
		if t := v.Type(); t != fastjson.TypeTrue && t != fastjson.TypeFalse {
			return ViolWrongType
		}
	case "string":
		if v.Type() != fastjson.TypeString {
			return ViolWrongType
		}
		s := v.GetStringBytes()
		if len(f.Enum) > 0 {
			for _, e := range f.Enum {
				if e == string(s) {
					return ""
				}
			}
			return ViolNotAllowed
		}
		if f.MaxLength > 0 && len(s) > f.MaxLength {
			return ViolOutOfRange
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
