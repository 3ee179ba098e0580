package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/candor-iot/candor/internal/senml"
	"github.com/candor-iot/candor/internal/store"
)

// stream writes the two files of one stream: the CSV table, then the SenML
// Pack of the same readings (no reading with a higher Seq than the table's
// last, so both hold the same readings even while new ones arrive).
func (x *exporter) stream(d *devicePlan, s *streamPlan) error {
	var rows, lastSeq int64
	if _, err := x.entry(s.csvPath, func(w io.Writer) error {
		var err error
		rows, lastSeq, err = x.writeCSV(w, d, s)
		return err
	}); err != nil {
		return err
	}
	x.files[len(x.files)-1].Readings = &rows

	var n int64
	var records int
	if _, err := x.entry(s.senmlPath, func(w io.Writer) error {
		var err error
		n, records, err = x.writeSenML(w, d, s, lastSeq)
		return err
	}); err != nil {
		return err
	}
	x.files[len(x.files)-1].Readings = &n
	x.files[len(x.files)-1].Records = &records
	return nil
}

// eachReading calls fn for every reading of the device's stream the hub
// accepted up to the export time, in Seq order, stopping after maxSeq. It
// returns the Seq of the last reading passed to fn.
func (x *exporter) eachReading(deviceID, stream string, maxSeq int64, fn func(r *store.Reading) error) (int64, error) {
	var after, last int64
	for {
		if err := x.ctx.Err(); err != nil {
			return last, err
		}
		page, err := x.src.Readings(x.ctx, deviceID, stream, after, PageSize)
		if err != nil {
			return last, fmt.Errorf("read readings: %w", err)
		}
		if len(page) == 0 {
			return last, nil
		}
		for i := range page {
			r := &page[i]
			if err := checkReading(r, deviceID, stream, after); err != nil {
				return last, err
			}
			after = r.Seq
			if r.Seq > maxSeq {
				return last, nil
			}
			if r.Time.After(x.now) {
				continue
			}
			if err := fn(r); err != nil {
				return last, err
			}
			last = r.Seq
		}
	}
}

func (x *exporter) writeCSV(w io.Writer, d *devicePlan, s *streamPlan) (rows, lastSeq int64, err error) {
	cw := csv.NewWriter(w)
	header := append([]string(nil), fixedColumns...)
	for _, c := range s.columns {
		header = append(header, c.header)
	}
	header = append(header, otherColumn)
	if err := cw.Write(header); err != nil {
		return 0, 0, err
	}
	row := make([]string, len(header))
	var other, scratch bytes.Buffer
	lastSeq, err = x.eachReading(d.ID, s.name, math.MaxInt64, func(r *store.Reading) error {
		clear(row)
		row[0] = r.Time.UTC().Format(timeLayout)
		row[1] = strconv.FormatInt(r.Seq, 10)
		row[2] = strconv.Itoa(r.ManifestVersion)
		other.Reset()
		ok := members(r.Payload, func(key, rawKey, val []byte) {
			if i, ok := s.colIndex[string(key)]; ok {
				row[3+i] = cell(val, &scratch)
				return
			}
			if other.Len() == 0 {
				other.WriteByte('{')
			} else {
				other.WriteByte(',')
			}
			other.Write(rawKey)
			other.WriteByte(':')
			writeCompact(&other, val)
		})
		switch {
		case !ok:
			// Not a JSON object (the hub stores none such, but an export
			// must not lose what is there): keep the text as it is.
			row[len(row)-1] = guardFormula(validUTF8(string(r.Payload)))
		case other.Len() > 0:
			other.WriteByte('}')
			row[len(row)-1] = validUTF8(other.String())
		}
		rows++
		x.tick()
		return cw.Write(row)
	})
	if err != nil {
		return rows, lastSeq, err
	}
	cw.Flush()
	return rows, lastSeq, cw.Error()
}

func (x *exporter) writeSenML(w io.Writer, d *devicePlan, s *streamPlan, maxSeq int64) (n int64, records int, err error) {
	enc := senml.NewEncoder(w)
	if s.secondary {
		if err := enc.UseSecondaryUnits(); err != nil {
			return 0, 0, err
		}
	}
	fields := map[string]any{}
	_, err = x.eachReading(d.ID, s.name, maxSeq, func(r *store.Reading) error {
		n++
		x.tick()
		if !s.senmlOK {
			return nil
		}
		clear(fields)
		members(r.Payload, func(key, _, val []byte) {
			if len(key) == 0 || !nameBytes(key) {
				return // SenML cannot name it; the CSV file has it
			}
			switch val[0] {
			case '"':
				fields[string(key)] = unquote(val)
			case 't':
				fields[string(key)] = true
			case 'f':
				fields[string(key)] = false
			case 'n', '{', '[':
				// null and nested values have no SenML form
			default:
				if f, err := strconv.ParseFloat(string(val), 64); err == nil && !math.IsInf(f, 0) {
					fields[string(key)] = json.Number(val)
				}
			}
		})
		err := enc.EncodeReading(d.ID, s.name, r.Time, fields, s.units[r.ManifestVersion])
		if errors.Is(err, senml.ErrInvalidName) || errors.Is(err, senml.ErrInvalidValue) ||
			errors.Is(err, senml.ErrUnknownUnit) || errors.Is(err, senml.ErrTooEarly) {
			return nil // not expressible in SenML; the CSV file has it
		}
		return err
	})
	if err != nil {
		return n, enc.Records(), err
	}
	return n, enc.Records(), enc.Close()
}

// nameBytes reports whether every byte of b may appear in a SenML name.
func nameBytes(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == ':' || c == '.' || c == '/' || c == '_') {
			return false
		}
	}
	return true
}

// cell formats one JSON value for a CSV cell: text without quotes, numbers
// as written, true/false, nothing for null, nested values as compact JSON.
func cell(val []byte, scratch *bytes.Buffer) string {
	switch val[0] {
	case '"':
		return guardFormula(unquote(val))
	case 'n':
		return ""
	case '{', '[':
		scratch.Reset()
		writeCompact(scratch, val)
		return scratch.String()
	}
	return string(val)
}

// guardFormula puts ' before text that a spreadsheet would run as a
// formula (OWASP's advice against CSV injection): a compromised device
// must not be able to make its owner's spreadsheet run commands. Numbers
// are never text here, so "-5" as a number is untouched.
func guardFormula(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

func writeCompact(b *bytes.Buffer, val []byte) {
	if val[0] != '{' && val[0] != '[' {
		b.Write(val)
		return
	}
	if err := json.Compact(b, val); err != nil {
		b.Write(val) // cannot happen: members only passes valid JSON
	}
}

// members calls fn for each member of the JSON object in b, in order, with
// its key (unescaped), the key's JSON text and the value's JSON text. It
// returns false, without calling fn, when b is not a JSON object.
func members(b []byte, fn func(key, rawKey, val []byte)) bool {
	if !json.Valid(b) {
		return false
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(b, i)
		switch b[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(b, i+1)
		}
		ks := i
		i = skipString(b, i)
		rawKey := b[ks:i]
		i = skipSpace(b, i) + 1 // ':'
		i = skipSpace(b, i)
		vs := i
		i = skipValue(b, i)
		key := rawKey[1 : len(rawKey)-1]
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			key = []byte(unquote(rawKey))
		}
		fn(key, rawKey, b[vs:i])
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && strings.IndexByte(",}] \t\r\n", b[j]) < 0 {
		j++
	}
	return j
}

// unquote returns the text of a JSON string; each invalid UTF-8 byte
// becomes U+FFFD, as with encoding/json.
func unquote(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return validUTF8(string(inner))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return validUTF8(string(inner))
	}
	return s
}

// validUTF8 replaces each byte of invalid UTF-8 in s by U+FFFD, as
// encoding/json does (strings.ToValidUTF8 replaces whole runs).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
