// Package senmldecode reads SenML JSON Packs (RFC 8428) and resolves them,
// so tests can check what package senml writes, and what an export holds,
// the way any SenML reader would see it. Only tests import it.
//
// It never panics on any input.
package senmldecode

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/candor-iot/candor/internal/senml"
)

// ErrSyntax is wrapped by every error Decode returns for a malformed Pack.
var ErrSyntax = errors.New("senml: malformed pack")

// knownLabels are the JSON labels of RFC 8428 §5 (Table 4).
var knownLabels = map[string]bool{
	"bn": true, "bt": true, "bu": true, "bv": true, "bs": true, "bver": true,
	"n": true, "u": true, "v": true, "vs": true, "vb": true, "vd": true,
	"s": true, "t": true, "ut": true,
}

// Decode reads one SenML Pack in JSON from r and returns its senml.Records
// resolved (RFC 8428 §4.6), in the order of the Pack:
//
//   - Name is the Base Name in force followed by the Record's name, and
//     must be a valid name (see senml.ValidName).
//   - Unit is the Record's unit, or else the Base Unit in force.
//   - Time is the Base Time in force plus the Record's time. Times below
//     senml.RelativeTimeLimit stay relative to "now";
//     senml.Record.Timestamp converts.
//   - Value is the Base Value in force plus the Record's v; Sum likewise.
//     StringValue, BoolValue and DataValue are copied.
//   - BaseVersion is the Pack's declared version (0 if none); the other
//     base fields are zero.
//
// A Record that holds nothing but base fields (such as {"bn":"x:"}) sets
// them for the Records after it and is not returned itself.
//
// Decode refuses (with an error wrapping ErrSyntax or senml.ErrVersion)
// anything that is not a JSON array of objects, a label of the wrong type, a label
// ending in '_' (RFC 8428 §4.4: must be understood, and this package knows
// none), a Record with several values or with neither a value nor a sum,
// an invalid name, a non-finite number, a version needing features this
// package does not implement, and data after the array. Unknown labels
// are ignored, as RFC 8428 §4.4 requires.
func Decode(r io.Reader) ([]senml.Record, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: a pack is a JSON array", ErrSyntax)
	}
	var (
		out []senml.Record
		st  decodeState
	)
	for i := 0; dec.More(); i++ {
		var m map[string]json.RawMessage
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrSyntax, i, err)
		}
		if m == nil {
			return nil, fmt.Errorf("%w: record %d is not a JSON object", ErrSyntax, i)
		}
		rec, ok, err := st.resolve(m)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if ok {
			out = append(out, rec)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the pack", ErrSyntax)
	}
	return out, nil
}

// decodeState holds the base values in force.
type decodeState struct {
	bn, bu       string
	bt, bv, bs   float64
	hasBT, hasBV bool
	hasBS        bool
	bver         int
}

func (st *decodeState) resolve(m map[string]json.RawMessage) (senml.Record, bool, error) {
	for k := range m {
		if !knownLabels[k] && strings.HasSuffix(k, "_") {
			return senml.Record{}, false, fmt.Errorf("%w: label %q must be understood and is not", ErrSyntax, k)
		}
	}
	var rec senml.Record
	var err error
	str := func(label string) (string, bool) {
		raw, ok := m[label]
		if !ok || err != nil {
			return "", false
		}
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			err = fmt.Errorf("%w: %s must be a string", ErrSyntax, label)
			return "", false
		}
		return s, true
	}
	num := func(label string) (float64, bool) {
		raw, ok := m[label]
		if !ok || err != nil {
			return 0, false
		}
		if !isNumber(raw) {
			err = fmt.Errorf("%w: %s must be a number", ErrSyntax, label)
			return 0, false
		}
		f, perr := strconv.ParseFloat(string(raw), 64)
		if perr != nil || !finite(f) {
			err = fmt.Errorf("%w: %s %s is out of range", ErrSyntax, label, raw)
			return 0, false
		}
		return f, true
	}

	// Base fields apply to this Record and the ones after it.
	if v, ok := str("bn"); ok {
		st.bn = v
	}
	if v, ok := num("bt"); ok {
		st.bt, st.hasBT = v, true
	}
	if v, ok := str("bu"); ok {
		st.bu = v
	}
	if v, ok := num("bv"); ok {
		st.bv, st.hasBV = v, true
	}
	if v, ok := num("bs"); ok {
		st.bs, st.hasBS = v, true
	}
	if v, ok := num("bver"); ok {
		if v < 1 || v != math.Trunc(v) || v > 1<<53 {
			return rec, false, fmt.Errorf("%w: bver %v is not a positive integer", ErrSyntax, v)
		}
		ver := int(v)
		// RFC 8428 §4.4: refuse versions above the one understood. RFC 9100
		// reads versions above 10 as feature bitmaps; the features known are
		// the base bits of version 10 and secondary units.
		if ver > senml.Version && (ver&^senml.VersionSecondaryUnits != 0 || ver&senml.Version != senml.Version) {
			return rec, false, fmt.Errorf("%w: %d needs SenML features this reader does not implement", senml.ErrVersion, ver)
		}
		st.bver = ver
	}
	if err != nil {
		return rec, false, err
	}

	measurement := false
	for _, l := range []string{"n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"} {
		if _, ok := m[l]; ok {
			measurement = true
			break
		}
	}
	if !measurement {
		return rec, false, nil
	}

	n, _ := str("n")
	rec.Name = st.bn + n
	rec.Unit = st.bu
	if u, ok := str("u"); ok {
		rec.Unit = u
	}
	// A missing base or regular number counts as zero (RFC 8428 §4.5.3,
	// §4.5.4); adding only what is present keeps a -0 as written.
	add := func(base float64, hasBase bool, v float64, hasV bool) float64 {
		switch {
		case hasBase && hasV:
			return base + v
		case hasBase:
			return base
		}
		return v
	}
	t, hasT := num("t")
	rec.Time = add(st.bt, st.hasBT, t, hasT)
	values := 0
	if v, ok := num("v"); ok {
		rec.Value = senml.F(add(st.bv, st.hasBV, v, true))
		values++
	}
	if v, ok := str("vs"); ok {
		rec.StringValue = &v
		values++
	}
	if raw, ok := m["vb"]; ok && err == nil {
		switch string(raw) {
		case "true":
			rec.BoolValue = senml.B(true)
		case "false":
			rec.BoolValue = senml.B(false)
		default:
			err = fmt.Errorf("%w: vb must be true or false", ErrSyntax)
		}
		values++
	}
	if v, ok := str("vd"); ok {
		data, derr := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
		if derr != nil {
			return rec, false, fmt.Errorf("%w: vd is not base64url: %v", ErrSyntax, derr)
		}
		if data == nil {
			data = []byte{}
		}
		rec.DataValue = data
		values++
	}
	if s, ok := num("s"); ok {
		rec.Sum = senml.F(add(st.bs, st.hasBS, s, true))
	} else if st.hasBS {
		rec.Sum = senml.F(st.bs)
	}
	rec.UpdateTime, _ = num("ut")
	if err != nil {
		return rec, false, err
	}
	if err := senml.ValidName(rec.Name); err != nil {
		return rec, false, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	switch {
	case values > 1:
		return rec, false, fmt.Errorf("%w: %q has %d values; at most one of v, vs, vb, vd", ErrSyntax, rec.Name, values)
	case values == 0 && rec.Sum == nil:
		return rec, false, fmt.Errorf("%w: %q has neither a value nor a sum", ErrSyntax, rec.Name)
	}
	if !finite(rec.Time) || rec.Value != nil && !finite(*rec.Value) || rec.Sum != nil && !finite(*rec.Sum) {
		return rec, false, fmt.Errorf("%w: %q resolves to a number out of range", ErrSyntax, rec.Name)
	}
	rec.BaseVersion = st.bver
	return rec, true, nil
}

// isNumber reports whether raw, a valid JSON value, is a number: in JSON's
// grammar (RFC 8259 §3) only numbers start with '-' or a digit.
func isNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
