// Package senml writes Sensor Measurement Lists (SenML) in their
// JSON form, as specified by RFC 8428 (media type application/senml+json),
// with the additional units of RFC 8798 and the version numbering of
// RFC 9100.
//
// Candor uses SenML for the readings in a person's data export. Clause 2B(e)
// of the IoT Good Practice paper asks that people can take their data with
// them in an open, documented format; SenML is the IETF's standard format
// for exactly this kind of data (sensor measurements with names, units and
// times), so any SenML reader can load an export without knowing Candor.
// No SenML module for Go was available to the project, so this package
// implements the parts Candor needs, and checks them against the RFC's own
// examples.
//
// # Writing
//
// An Encoder writes one SenML Pack (a JSON array of Records) to an
// io.Writer, one Record at a time, with constant memory. Encode writes a
// Record exactly as given; EncodeReading turns one Candor reading (a JSON
// object of named fields) into one Record per field:
//
//   - The Base Name (bn) is BaseName(deviceID), the device id followed by ':'
//     (see BaseName for why it is not a URN), set on the first Record and
//     again whenever the device changes.
//   - The Name (n) is "<stream>:<field>", so the full name of a value is
//     "<device-id>:<stream>:<field>".
//   - The Base Time (bt) is set once, on the first Record, to the whole
//     second of the first reading; every Record carries its time (t) as
//     seconds relative to it (RFC 8428 §4.5.3: resolved time = bt + t).
//   - Numbers go in v, booleans in vb, text in vs.
//   - Units (u) are SenML unit symbols: UnitFor maps the plain-language
//     units of Candor's manifests ("degree Celsius") to them ("Cel"). A unit
//     with no SenML symbol is left out; the export's manifest still names it.
//
// Every name is checked against RFC 8428 §4.5.1 (characters A-Z a-z 0-9
// - : . / _, starting with a letter or digit) and an invalid one is refused
// with an error; so are non-finite numbers, Records with no or several
// values, and units outside the SenML registries.
//
// Numbers are written exactly: float64 values with the shortest text that
// reads back to the same bits (strconv 'g', -1), integers and json.Number
// values digit for digit.
//
// # Reading
//
// The hub only writes SenML. Its tests read what it wrote with package
// testsupport/senmldecode, which resolves a Pack (RFC 8428 §4.6) the way
// any SenML reader would.
package senml

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MediaType is the media type of SenML JSON (RFC 8428 §6).
const MediaType = "application/senml+json"

// Version numbers (bver). RFC 8428 §4.4 defines 10 as the default; RFC 9100
// turns the number into a feature bitmap in which bit 4 (value 16) says the
// Pack may use the secondary units of RFC 8798 ("kWh", "kW", "ms", …).
const (
	Version               = 10
	VersionSecondaryUnits = Version | featureSecondaryUnits // 26
	featureSecondaryUnits = 1 << 4
)

// RelativeTimeLimit is 2^28 seconds (RFC 8428 §4.5.3): a resolved time
// below it is relative to "now" (negative means in the past); at or above
// it, it is seconds since 1970-01-01T00:00:00Z.
const RelativeTimeLimit = 1 << 28

// Errors returned by the Encoder, wrapped with details. Test with errors.Is.
var (
	ErrInvalidName  = errors.New("senml: invalid name")
	ErrInvalidValue = errors.New("senml: invalid value")
	ErrUnknownUnit  = errors.New("senml: unit not in the SenML units registries")
	ErrTooEarly     = errors.New("senml: time before 1978-07-04 cannot be written as an absolute SenML time")
	ErrClosed       = errors.New("senml: encoder closed")
	ErrVersion      = errors.New("senml: unsupported version")
)

// Record is one SenML Record (RFC 8428 §4). Fields at their zero value are
// absent, except the pointer fields, which are absent when nil: a Record
// holds at most one of Value, StringValue, BoolValue and DataValue.
//
// A resolved Record (RFC 8428 §4.6) has zero base fields (except
// BaseVersion, the Pack's version if it declared one) and its Name, Unit,
// Time, Value and Sum carry the resolved values.
type Record struct {
	BaseName    string   // bn: prefixed to the Name of this and later Records
	BaseTime    float64  // bt: added to the Time of this and later Records
	BaseUnit    string   // bu: the Unit of this and later Records that have none
	BaseValue   *float64 // bv: added to the Value of this and later Records
	BaseSum     *float64 // bs: added to the Sum of this and later Records
	BaseVersion int      // bver: 0 when absent (meaning 10)

	Name        string   // n
	Unit        string   // u: a SenML unit symbol such as "Cel"
	Time        float64  // t: seconds; see RelativeTimeLimit
	Value       *float64 // v
	StringValue *string  // vs
	BoolValue   *bool    // vb
	DataValue   []byte   // vd (base64url in JSON); nil when absent
	Sum         *float64 // s
	UpdateTime  float64  // ut: seconds until the next update at the latest
}

// Timestamp returns the time of a resolved Record: its Time as an absolute
// time when it is at least RelativeTimeLimit, otherwise now plus Time
// seconds (RFC 8428 §4.5.3). A Record without Time was taken roughly now.
func (r Record) Timestamp(now time.Time) time.Time {
	if r.Time >= RelativeTimeLimit {
		return floatTime(r.Time)
	}
	return now.Add(time.Duration(math.Round(r.Time * 1e9)))
}

// floatTime converts seconds since the epoch to a time. It reads the
// shortest decimal text of s, the number its writer most likely meant
// (1.276020076001e+09 is 18:01:16.001, not the binary neighbour
// 18:01:16.000999928), rounded to the nanosecond.
func floatTime(s float64) time.Time {
	const maxSec = 1 << 62
	if s >= maxSec || s <= -maxSec {
		return time.Unix(int64(math.Copysign(maxSec, s)), 0).UTC()
	}
	text := strconv.FormatFloat(math.Abs(s), 'f', -1, 64)
	intPart, frac, _ := strings.Cut(text, ".")
	sec, _ := strconv.ParseInt(intPart, 10, 64)
	var ns int64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			ns += int64(frac[i] - '0')
		}
	}
	if len(frac) > 9 && frac[9] >= '5' {
		ns++
	}
	d := time.Duration(sec)*time.Second + time.Duration(ns)
	if s < 0 {
		d = -d
	}
	return time.Unix(0, 0).Add(d).UTC()
}

// F returns a pointer to v, for Record.Value, BaseValue, Sum and BaseSum.
func F(v float64) *float64 { return &v }

// S returns a pointer to s, for Record.StringValue.
func S(s string) *string { return &s }

// B returns a pointer to b, for Record.BoolValue.
func B(b bool) *bool { return &b }

// BaseName returns the SenML Base Name of a Candor device: its id followed
// by ':'. Device ids are random ("dev_" and 12 base32 characters), so the
// names are unique without a registry. They are deliberately not written as
// "urn:dev:…" names: the DEV URN namespace (RFC 9039) only allows subtypes
// registered with IANA, and "candor" is not one. RFC 8428 recommends, but
// does not require, URIs as names.
func BaseName(deviceID string) string { return deviceID + ":" }

// ValidName reports whether name is a valid resolved SenML name (RFC 8428
// §4.5.1): one or more characters out of A-Z, a-z, 0-9, '-', ':', '.', '/'
// and '_', the first a letter or a digit.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if !alnum(name[0]) {
		return fmt.Errorf("%w: %q must start with a letter or digit", ErrInvalidName, name)
	}
	for i := 1; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("%w: %q contains %q; names may only use A-Z a-z 0-9 - : . / _", ErrInvalidName, name, rune(name[i]))
		}
	}
	return nil
}

// ValidNamePart reports whether s may appear inside a name: every byte is
// a SenML name character. It does not check the first character.
func ValidNamePart(s string) bool {
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func nameChar(c byte) bool {
	return alnum(c) || c == '-' || c == ':' || c == '.' || c == '/' || c == '_'
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
