package senml

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// flushAt is how many bytes the Encoder collects before writing them.
const flushAt = 32 << 10

// Encoder writes one SenML Pack to an io.Writer, Record by Record. Its
// memory use does not grow with the number of Records. Write errors are
// sticky: once one happens every later call returns it. An Encoder is not
// safe for concurrent use.
//
// The output has one Record per line:
//
//	[
//	{"bn":"dev_k3xq7wz2m4ab:","bt":1.7726544e+09,"n":"temperature:celsius","u":"Cel","v":21.5},
//	{"n":"temperature:humidity_percent","u":"%RH","v":40}
//	]
type Encoder struct {
	w      io.Writer
	buf    []byte
	err    error
	closed bool
	st     packState
	// reused by EncodeReading
	keys  []string
	num   []byte
	units map[[3]string]string
}

// packState is what a reader knows after the Records written so far.
type packState struct {
	records int
	bn, bu  string
	bver    int // 0: not declared (10)
	bt      float64
	btTime  time.Time // bt as a time, for EncodeReading
	hasBT   bool
	hasBS   bool
}

// name is a Record's name in up to three pieces, joined without
// separators, so that EncodeReading need not build "<stream>:<field>".
type name [3]string

// NewEncoder returns an Encoder that writes a Pack to w. Nothing is written
// until the first Record (or Close, which writes an empty Pack).
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w, buf: make([]byte, 0, flushAt+4096)}
}

// UseSecondaryUnits declares, on the first Record, that the Pack may use
// the secondary units of RFC 8798 ("kWh", "ms", …), by setting its version
// to VersionSecondaryUnits (26, RFC 9100). Readers that only know SenML
// version 10 then refuse the Pack rather than misread its units. It must
// be called before the first Record.
func (e *Encoder) UseSecondaryUnits() error {
	if e.st.records > 0 {
		return fmt.Errorf("%w: UseSecondaryUnits after the first record", ErrVersion)
	}
	e.st.bver = VersionSecondaryUnits
	return nil
}

func (e *Encoder) usable() error {
	if e.closed {
		return ErrClosed
	}
	return e.err
}

// Encode writes r as the next Record of the Pack, exactly as given (base
// fields included). It refuses, without writing anything, a Record whose
// resolved name (the Base Name in force followed by r.Name) is invalid,
// that has no value (and no sum) or several, a non-finite number, a unit
// outside the SenML registries (or a secondary unit without
// UseSecondaryUnits), or a BaseVersion after the first Record. A Record
// with nothing but base fields is allowed: it sets them for later Records.
func (e *Encoder) Encode(r Record) error {
	if err := e.usable(); err != nil {
		return err
	}
	mark, saved := len(e.buf), e.st
	if r.BaseVersion != 0 && e.st.records == 0 && e.st.bver != 0 && r.BaseVersion != e.st.bver {
		return fmt.Errorf("%w: bver %d conflicts with UseSecondaryUnits", ErrVersion, r.BaseVersion)
	}
	if err := e.appendRecord(&r, name{r.Name}, nil); err != nil {
		e.buf, e.st = e.buf[:mark], saved
		return err
	}
	return e.maybeFlush()
}

// EncodeReading writes one reading of a device as one Record per field, in
// field-name order. fields holds the reading's values: float64, float32,
// any integer type or json.Number (written as "v"), bool ("vb"), string
// ("vs") or []byte ("vd"); anything else (nil, maps, slices) is refused.
// units maps field names to units, as SenML symbols or in the plain
// language of manifests (see UnitFor); fields without a known unit get no
// "u".
//
// The first Record of the Pack carries the Base Name and the Base Time
// (the whole second of t); a Record carries the Base Name again when the
// device changes. Every Record carries its time relative to the Base Time.
//
// Either every field is written or, on error, none is. A reading without
// fields writes nothing.
func (e *Encoder) EncodeReading(deviceID, stream string, t time.Time, fields map[string]any, units map[string]string) error {
	if err := e.usable(); err != nil {
		return err
	}
	if len(fields) == 0 {
		return nil
	}
	sec := t.Unix()
	if sec < RelativeTimeLimit {
		return fmt.Errorf("%w: %s", ErrTooEarly, t.UTC().Format(time.RFC3339))
	}
	e.keys = e.keys[:0]
	for k := range fields {
		e.keys = append(e.keys, k)
	}
	sort.Strings(e.keys)

	mark, saved := len(e.buf), e.st
	fail := func(err error) error {
		e.buf, e.st = e.buf[:mark], saved
		return err
	}
	var offset float64
	for i, k := range e.keys {
		var r Record
		if i == 0 {
			if len(e.st.bn) != len(deviceID)+1 || e.st.bn[:len(deviceID)] != deviceID || e.st.bn[len(deviceID)] != ':' {
				r.BaseName = BaseName(deviceID)
			}
			if !e.st.hasBT {
				r.BaseTime = float64(sec)
				offset = float64(t.Nanosecond()) / 1e9
			} else {
				offset = t.Sub(e.st.btTime).Seconds()
			}
		}
		r.Time = offset
		if u := units[k]; u != "" {
			r.Unit = e.unitFor(u, stream, k)
		}
		num, err := e.setValue(&r, fields[k])
		if err != nil {
			return fail(fmt.Errorf("%s:%s: %w", stream, k, err))
		}
		if err := e.appendRecord(&r, name{stream, ":", k}, num); err != nil {
			return fail(err)
		}
	}
	return e.maybeFlush()
}

// unitFor caches UnitFor, which EncodeReading calls for every value.
func (e *Encoder) unitFor(unit, stream, field string) string {
	key := [3]string{unit, stream, field}
	if sym, ok := e.units[key]; ok {
		return sym
	}
	if e.units == nil {
		e.units = make(map[[3]string]string)
	}
	if len(e.units) > 1024 { // names come from data: keep the cache bounded
		clear(e.units)
	}
	sym := UnitFor(unit, stream+":"+field)
	e.units[key] = sym
	return sym
}

// setValue puts v into r; for numbers it returns their JSON text instead.
func (e *Encoder) setValue(r *Record, v any) ([]byte, error) {
	num := e.num[:0]
	switch v := v.(type) {
	case float64:
		if !finite(v) {
			return nil, fmt.Errorf("%w: %v is not a finite number", ErrInvalidValue, v)
		}
		num = strconv.AppendFloat(num, v, 'g', -1, 64)
	case float32:
		if !finite(float64(v)) {
			return nil, fmt.Errorf("%w: %v is not a finite number", ErrInvalidValue, v)
		}
		num = strconv.AppendFloat(num, float64(v), 'g', -1, 32)
	case int:
		num = strconv.AppendInt(num, int64(v), 10)
	case int8:
		num = strconv.AppendInt(num, int64(v), 10)
	case int16:
		num = strconv.AppendInt(num, int64(v), 10)
	case int32:
		num = strconv.AppendInt(num, int64(v), 10)
	case int64:
		num = strconv.AppendInt(num, v, 10)
	case uint:
		num = strconv.AppendUint(num, uint64(v), 10)
	case uint8:
		num = strconv.AppendUint(num, uint64(v), 10)
	case uint16:
		num = strconv.AppendUint(num, uint64(v), 10)
	case uint32:
		num = strconv.AppendUint(num, uint64(v), 10)
	case uint64:
		num = strconv.AppendUint(num, v, 10)
	case json.Number:
		if !isJSONNumber(string(v)) {
			return nil, fmt.Errorf("%w: %q is not a JSON number", ErrInvalidValue, string(v))
		}
		if f, err := strconv.ParseFloat(string(v), 64); err != nil || !finite(f) {
			return nil, fmt.Errorf("%w: %s is out of range", ErrInvalidValue, string(v))
		}
		num = append(num, v...)
	case bool:
		r.BoolValue = &v
		return nil, nil
	case string:
		r.StringValue = &v
		return nil, nil
	case []byte:
		if v == nil {
			v = []byte{}
		}
		r.DataValue = v
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: %T cannot be a SenML value", ErrInvalidValue, v)
	}
	e.num = num
	return num, nil
}

// appendRecord checks r against the Pack so far and appends it, with the
// name n (r.Name is not used). num, when not nil, is the JSON text of r's
// numeric value (r.Value is then nil).
func (e *Encoder) appendRecord(r *Record, n name, num []byte) error {
	st := &e.st
	if r.BaseVersion != 0 {
		if st.records > 0 {
			return fmt.Errorf("%w: bver may only appear on the first record", ErrVersion)
		}
		if r.BaseVersion != Version && r.BaseVersion != VersionSecondaryUnits {
			return fmt.Errorf("%w: %d (this encoder writes %d or %d)", ErrVersion, r.BaseVersion, Version, VersionSecondaryUnits)
		}
	}
	bver := st.bver
	if r.BaseVersion != 0 {
		bver = r.BaseVersion
	}
	bn := st.bn
	if r.BaseName != "" {
		bn = r.BaseName
	}
	if !validName(bn, n) {
		return ValidName(bn + n[0] + n[1] + n[2]) // says why
	}
	if !finite(r.BaseTime) || !finite(r.Time) || !finite(r.UpdateTime) || !finitePtr(r.BaseValue) || !finitePtr(r.BaseSum) ||
		!finitePtr(r.Value) || !finitePtr(r.Sum) {
		return fmt.Errorf("%w: %q has a number that is not finite", ErrInvalidValue, bn+n[0]+n[1]+n[2])
	}
	values := 0
	for _, set := range []bool{r.Value != nil || num != nil, r.StringValue != nil, r.BoolValue != nil, r.DataValue != nil} {
		if set {
			values++
		}
	}
	hasSum := r.Sum != nil || r.BaseSum != nil || st.hasBS
	baseOnly := n == name{} && r.Unit == "" && r.Time == 0 && r.UpdateTime == 0 && values == 0 && r.Sum == nil &&
		(r.BaseName != "" || r.BaseTime != 0 || r.BaseUnit != "" || r.BaseValue != nil || r.BaseSum != nil || r.BaseVersion != 0)
	switch {
	case baseOnly:
		// A Record of base fields only sets them for the Records after it
		// (RFC 8428 §5.1.7 begins with one).
	case values > 1:
		return fmt.Errorf("%w: record %q has %d values; at most one of v, vs, vb, vd", ErrInvalidValue, bn+n[0]+n[1]+n[2], values)
	case values == 0 && !hasSum:
		return fmt.Errorf("%w: record %q has no value", ErrInvalidValue, bn+n[0]+n[1]+n[2])
	}
	for _, u := range []string{r.BaseUnit, r.Unit} {
		if u == "" || primaryUnits[u] {
			continue
		}
		if !secondaryUnits[u] {
			return fmt.Errorf("%w: %q", ErrUnknownUnit, u)
		}
		if bver&featureSecondaryUnits == 0 {
			return fmt.Errorf("%w: %q is a secondary unit (RFC 8798); the pack must declare version %d first", ErrUnknownUnit, u, VersionSecondaryUnits)
		}
	}

	b := e.buf
	if st.records == 0 {
		b = append(b, "[\n{"...)
	} else {
		b = append(b, ",\n{"...)
	}
	first := true
	label := func(l string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, l...)
		b = append(b, '"', ':')
	}
	if r.BaseName != "" {
		label("bn")
		b = appendString(b, r.BaseName)
	}
	if r.BaseTime != 0 {
		label("bt")
		b = strconv.AppendFloat(b, r.BaseTime, 'g', -1, 64)
	}
	if r.BaseUnit != "" {
		label("bu")
		b = appendString(b, r.BaseUnit)
	}
	if r.BaseValue != nil {
		label("bv")
		b = strconv.AppendFloat(b, *r.BaseValue, 'g', -1, 64)
	}
	if r.BaseSum != nil {
		label("bs")
		b = strconv.AppendFloat(b, *r.BaseSum, 'g', -1, 64)
	}
	// The version goes on the first record: given explicitly, or because
	// UseSecondaryUnits asked for it.
	if st.records == 0 && bver != 0 {
		label("bver")
		b = strconv.AppendInt(b, int64(bver), 10)
	}
	if n != (name{}) {
		label("n")
		b = append(b, '"')
		for _, part := range n {
			b = append(b, part...) // name characters need no escaping
		}
		b = append(b, '"')
	}
	if r.Unit != "" {
		label("u")
		b = appendString(b, r.Unit)
	}
	if r.Time != 0 {
		label("t")
		b = strconv.AppendFloat(b, r.Time, 'g', -1, 64)
	}
	switch {
	case num != nil:
		label("v")
		b = append(b, num...)
	case r.Value != nil:
		label("v")
		b = strconv.AppendFloat(b, *r.Value, 'g', -1, 64)
	case r.StringValue != nil:
		label("vs")
		b = appendString(b, *r.StringValue)
	case r.BoolValue != nil:
		label("vb")
		b = strconv.AppendBool(b, *r.BoolValue)
	case r.DataValue != nil:
		label("vd")
		b = append(b, '"')
		b = base64.RawURLEncoding.AppendEncode(b, r.DataValue)
		b = append(b, '"')
	}
	if r.Sum != nil {
		label("s")
		b = strconv.AppendFloat(b, *r.Sum, 'g', -1, 64)
	}
	if r.UpdateTime != 0 {
		label("ut")
		b = strconv.AppendFloat(b, r.UpdateTime, 'g', -1, 64)
	}
	b = append(b, '}')
	e.buf = b

	st.records++
	st.bn = bn
	st.bver = bver
	if r.BaseUnit != "" {
		st.bu = r.BaseUnit
	}
	if r.BaseTime != 0 {
		st.bt, st.btTime, st.hasBT = r.BaseTime, floatTime(r.BaseTime), true
	}
	if r.BaseSum != nil {
		st.hasBS = true
	}
	return nil
}

func (e *Encoder) maybeFlush() error {
	if len(e.buf) < flushAt {
		return nil
	}
	return e.flush()
}

func (e *Encoder) flush() error {
	if e.err != nil {
		return e.err
	}
	if len(e.buf) > 0 {
		if _, err := e.w.Write(e.buf); err != nil {
			e.err = fmt.Errorf("senml: write: %w", err)
			return e.err
		}
		e.buf = e.buf[:0]
	}
	return nil
}

// Records returns how many Records have been written.
func (e *Encoder) Records() int { return e.st.records }

// Close ends the Pack (an empty Pack if no Record was written) and writes
// out what is buffered. It does not close the underlying writer. Calling
// Close again returns the first Close's result.
func (e *Encoder) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	if e.err != nil {
		return e.err
	}
	if e.st.records == 0 {
		e.buf = append(e.buf, "[]\n"...)
	} else {
		e.buf = append(e.buf, "\n]\n"...)
	}
	return e.flush()
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; nothing else is changed (no HTML escaping).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func finitePtr(v *float64) bool { return v == nil || finite(*v) }

// validName reports whether bn followed by the pieces of n is a valid name
// (see ValidName), without joining them.
func validName(bn string, n name) bool {
	first := true
	for _, part := range [4]string{bn, n[0], n[1], n[2]} {
		for i := 0; i < len(part); i++ {
			if first && !alnum(part[i]) || !nameChar(part[i]) {
				return false
			}
			first = false
		}
	}
	return !first
}

// isJSONNumber reports whether s is a number in JSON's grammar (RFC 8259
// §6): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	digits := func() bool {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
