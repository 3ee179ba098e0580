package logformat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Canonical JSON, as used for leaf data: objects with keys sorted by their
// UTF-8 bytes and no duplicates, no insignificant whitespace, strings with
// the minimal escaping below, integers in shortest decimal form, and no
// fractions or exponents. For the ASCII keys Candor uses this coincides with
// RFC 8785 (JCS). The point is that one event has exactly one byte
// sequence, so an export can be pretty-printed or re-serialised by any JSON
// tool and the verifier still recomputes the same leaf hash.

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 32

// Canonicalize returns the canonical form of the JSON value in raw. It
// refuses duplicate object keys, invalid UTF-8, non-integer numbers and
// integers beyond ±2^53 (which not every JSON reader keeps exactly).
func Canonicalize(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("canonical JSON: input is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	out, err := canonValue(dec, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonical JSON: trailing data after the value")
	}
	return out, nil
}

func canonValue(dec *json.Decoder, dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return canonObject(dec, dst, depth)
		case '[':
			dst = append(dst, '[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					dst = append(dst, ',')
				}
				if dst, err = canonValue(dec, dst, depth+1); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return append(dst, ']'), nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return AppendString(dst, t), nil
	case json.Number:
		return appendInteger(dst, string(t))
	case bool:
		if t {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case nil:
		return append(dst, "null"...), nil
	}
	return nil, fmt.Errorf("unexpected token %T", tok)
}

func canonObject(dec *json.Decoder, dst []byte, depth int) ([]byte, error) {
	type member struct {
		key string
		val []byte
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		val, err := canonValue(dec, nil, depth+1)
		if err != nil {
			return nil, err
		}
		members = append(members, member{key, val})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range members {
		if i > 0 {
			if members[i-1].key == m.key {
				return nil, fmt.Errorf("duplicate object key %q", m.key)
			}
			dst = append(dst, ',')
		}
		dst = AppendString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}'), nil
}

func appendInteger(dst []byte, s string) ([]byte, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return nil, fmt.Errorf("number %s is not an integer", s)
	}
	if len(digits) > 1 && digits[0] == '0' {
		return nil, fmt.Errorf("number %s has leading zeros", s)
	}
	if len(digits) > 16 || (len(digits) == 16 && digits > "9007199254740992") {
		return nil, fmt.Errorf("integer %s is beyond ±2^53", s)
	}
	if s == "-0" {
		s = "0"
	}
	return append(dst, s...), nil
}

// AppendString appends s as a canonical JSON string: '"' and '\' are
// escaped, control characters use the short escapes \b \f \n \r \t or
// \u00xx, and everything else (including non-ASCII) is written as is.
// Invalid UTF-8 is replaced by U+FFFD, as encoding/json does; the writer
// refuses such input before it gets here.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\ufffd"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}
