package export

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/candor-iot/candor/internal/senml"
	"github.com/candor-iot/candor/internal/store"
)

// stream writes the two files of one stream, the CSV table and then the
// SenML Pack of the same readings, from one pass over the Source: while
// the CSV file goes into the archive, the SenML Pack is spooled to a
// temporary file (ZIP entries are written one after the other), encrypted
// with age to a key that lives only in memory for this stream, so no
// reading reaches the disk in the clear. The spool is then copied into
// the archive and removed. Both files hold exactly the same readings.
func (x *exporter) stream(d *devicePlan, s *streamPlan) error {
	spool, err := newSpool()
	if err != nil {
		return fmt.Errorf("export: %s: %w", s.senmlPath, err)
	}
	defer spool.discard()
	sw := newSenMLWriter(spool, d, s)

	var rows int64
	if _, err := x.entry(s.csvPath, func(w io.Writer) error {
		var err error
		rows, err = x.writeCSV(w, d, s, sw)
		return err
	}); err != nil {
		return err
	}
	x.files[len(x.files)-1].Readings = &rows

	if err := sw.close(); err != nil {
		return fmt.Errorf("export: %s: %w", s.senmlPath, err)
	}
	n, records := rows, sw.enc.Records()
	if _, err := x.entry(s.senmlPath, func(w io.Writer) error { return spool.copyTo(x, w) }); err != nil {
		return err
	}
	x.files[len(x.files)-1].Readings = &n
	x.files[len(x.files)-1].Records = &records
	return nil
}

// spool is a temporary file written through age to an in-memory key.
type spool struct {
	f   *os.File
	id  *age.X25519Identity
	bw  *bufio.Writer
	enc io.WriteCloser
}

func newSpool() (*spool, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "candor-export-*.age")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Unlinked at once where the system allows (not on Windows): the file
	// then vanishes even if the process dies mid-export.
	_ = os.Remove(f.Name())
	sp := &spool{f: f, id: id, bw: bufio.NewWriterSize(f, 64<<10)}
	if sp.enc, err = age.Encrypt(sp.bw, id.Recipient()); err != nil {
		sp.discard()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return sp, nil
}

func (sp *spool) Write(p []byte) (int, error) { return sp.enc.Write(p) }

// finish ends the encrypted stream and flushes it to the file.
func (sp *spool) finish() error {
	if err := sp.enc.Close(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := sp.bw.Flush(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// copyTo decrypts the spool into w.
func (sp *spool) copyTo(x *exporter, w io.Writer) error {
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	r, err := age.Decrypt(bufio.NewReaderSize(sp.f, 64<<10), sp.id)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return copyContext(x.ctx, w, r)
}

func (sp *spool) discard() {
	sp.f.Close()
	os.Remove(sp.f.Name()) // where the early removal did not work
}

// eachReading calls fn for every reading of the device's stream the hub
// accepted up to the export time, in Seq order.
func (x *exporter) eachReading(deviceID, stream string, fn func(r *store.Reading) error) error {
	var after int64
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		page, err := x.src.Readings(x.ctx, deviceID, stream, after, PageSize)
		if err != nil {
			return fmt.Errorf("read readings: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			r := &page[i]
			if err := checkReading(r, deviceID, stream, after); err != nil {
				return err
			}
			after = r.Seq
			if r.Time.After(x.now) {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
}

// writeCSV writes the CSV table of the stream to w and passes each reading
// to sw as well.
func (x *exporter) writeCSV(w io.Writer, d *devicePlan, s *streamPlan, sw *senmlWriter) (rows int64, err error) {
	cw := csv.NewWriter(w)
	header := append([]string(nil), fixedColumns...)
	for _, c := range s.columns {
		header = append(header, c.header)
	}
	header = append(header, otherColumn)
	if err := cw.Write(header); err != nil {
		return 0, err
	}
	row := make([]string, len(header))
	var other, scratch bytes.Buffer
	// The payload's members, scanned once for both files.
	var kvs []member
	collect := func(key, rawKey, val []byte) { kvs = append(kvs, member{key, rawKey, val}) }
	err = x.eachReading(d.ID, s.name, func(r *store.Reading) error {
		clear(row)
		row[0] = r.Time.UTC().Format(timeLayout)
		row[1] = strconv.FormatInt(r.Seq, 10)
		row[2] = strconv.Itoa(r.ManifestVersion)
		other.Reset()
		kvs = kvs[:0]
		ok := members(r.Payload, collect)
		for _, m := range kvs {
			if i, ok := s.colIndex[string(m.key)]; ok {
				row[3+i] = cell(m.val, &scratch)
				continue
			}
			if other.Len() == 0 {
				other.WriteByte('{')
			} else {
				other.WriteByte(',')
			}
			other.Write(m.rawKey)
			other.WriteByte(':')
			writeCompact(&other, m.val)
		}
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
		if err := cw.Write(row); err != nil {
			return err
		}
		if err := sw.add(r, kvs); err != nil {
			return err
		}
		x.tick()
		return nil
	})
	if err != nil {
		return rows, err
	}
	cw.Flush()
	return rows, cw.Error()
}

// senmlWriter encodes the readings of one stream as a SenML Pack.
type senmlWriter struct {
	sp     *spool
	d      *devicePlan
	s      *streamPlan
	enc    *senml.Encoder
	fields map[string]any
	err    error // from UseSecondaryUnits
}

func newSenMLWriter(sp *spool, d *devicePlan, s *streamPlan) *senmlWriter {
	sw := &senmlWriter{sp: sp, d: d, s: s, enc: senml.NewEncoder(sp), fields: map[string]any{}}
	if s.secondary {
		sw.err = sw.enc.UseSecondaryUnits()
	}
	return sw
}

// add encodes r, whose payload has the members kvs.
func (sw *senmlWriter) add(r *store.Reading, kvs []member) error {
	if sw.err != nil {
		return sw.err
	}
	if !sw.s.senmlOK {
		return nil
	}
	fields := sw.fields
	clear(fields)
	for _, m := range kvs {
		key, val := m.key, m.val
		if len(key) == 0 || !nameBytes(key) {
			continue // SenML cannot name it; the CSV file has it
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
	}
	err := sw.enc.EncodeReading(sw.d.ID, sw.s.name, r.Time, fields, sw.s.units[r.ManifestVersion])
	if errors.Is(err, senml.ErrInvalidName) || errors.Is(err, senml.ErrInvalidValue) ||
		errors.Is(err, senml.ErrUnknownUnit) || errors.Is(err, senml.ErrTooEarly) {
		return nil // not expressible in SenML; the CSV file has it
	}
	return err
}

// close ends the Pack and the spool.
func (sw *senmlWriter) close() error {
	if sw.err != nil {
		return sw.err
	}
	if err := sw.enc.Close(); err != nil {
		return err
	}
	return sw.sp.finish()
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

// member is one member of a JSON object, as members passes it.
type member struct{ key, rawKey, val []byte }

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
