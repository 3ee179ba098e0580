package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds how deeply a document may nest. Records nest three
// levels; the bound keeps hostile input from exhausting the stack.
const maxDepth = 16

// maxSafeInteger is the largest integer every JSON reader holds exactly
// (2^53 - 1); RFC 8785 numbers beyond it need I-JSON care we do not need.
const maxSafeInteger = 1<<53 - 1

// canonicalJSON returns data in the RFC 8785 JSON Canonicalization Scheme
// (JCS): no insignificant whitespace, object members sorted by the UTF-16
// code units of their names, strings with only the escapes JCS requires.
//
// It is stricter than JCS where records never need the freedom: it
// refuses invalid UTF-8, duplicate member names, nesting deeper than
// maxDepth, and numbers other than integers within ±(2^53-1), whose JCS
// form is their plain decimal form.
func canonicalJSON(data []byte) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out bytes.Buffer
	out.Grow(len(data))
	if err := canonValue(dec, &out, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return out.Bytes(), nil
}

func canonValue(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return fmt.Errorf("nested deeper than %d levels", maxDepth)
		}
		switch v {
		case '{':
			return canonObject(dec, out, depth)
		case '[':
			return canonArray(dec, out, depth)
		}
		return fmt.Errorf("unexpected %q", rune(v))
	case string:
		writeCanonString(out, v)
	case json.Number:
		n, err := canonNumber(string(v))
		if err != nil {
			return err
		}
		out.WriteString(n)
	case bool:
		out.WriteString(strconv.FormatBool(v))
	case nil:
		out.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %v", tok)
	}
	return nil
}

func canonObject(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	type member struct {
		name  string
		key   []uint16
		value []byte
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object member name is %v, not a string", tok)
		}
		if seen[name] {
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		var v bytes.Buffer
		if err := canonValue(dec, &v, depth+1); err != nil {
			return err
		}
		members = append(members, member{name, utf16.Encode([]rune(name)), v.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.key, b.key) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		writeCanonString(out, m.name)
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

func canonArray(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	out.WriteByte('[')
	for i := 0; dec.More(); i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		if err := canonValue(dec, out, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return err
	}
	out.WriteByte(']')
	return nil
}

// canonNumber accepts integers only (the grammar already refused leading
// zeros) and writes them in plain decimal, as JCS does; -0 becomes 0.
func canonNumber(s string) (string, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxSafeInteger || n < -maxSafeInteger {
		return "", fmt.Errorf("number %.40s is not an integer within ±(2^53-1)", s)
	}
	return strconv.FormatInt(n, 10), nil
}

// writeCanonString writes s as a JCS string: '"' and '\' escaped, control
// characters as \b \t \n \f \r or \u00xx (lower-case hex), all else as is.
func writeCanonString(out *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			out.WriteByte('\\')
			out.WriteByte(c)
		case c == '\b':
			out.WriteString(`\b`)
		case c == '\t':
			out.WriteString(`\t`)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\f':
			out.WriteString(`\f`)
		case c == '\r':
			out.WriteString(`\r`)
		case c < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte(hex[c>>4])
			out.WriteByte(hex[c&0xf])
		default:
			out.WriteByte(c)
		}
	}
	out.WriteByte('"')
}
