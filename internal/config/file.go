package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxFileBytes bounds the config file: a settings object is a few hundred
// bytes, and a path pointed at a log or a device file should fail fast.
const maxFileBytes = 1 << 20

// fileValue is one key's JSON value and the line it starts on.
type fileValue struct {
	raw  json.RawMessage
	line int
}

func readFile(path string) (map[string]fileValue, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config file %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("config file %s is larger than %d bytes", path, maxFileBytes)
	}
	return parseFile(path, data)
}

// parseFile reads a JSON object of settings keyed by snake_case names.
// Unknown and repeated keys are errors, not ignored, because a misspelt
// key silently leaving a default in place is how a hub ends up listening
// where its operator did not mean it to. Errors name the file and line.
func parseFile(name string, data []byte) (map[string]fileValue, error) {
	// Windows editors may start the file with a byte order mark, which
	// JSON does not allow but which carries no meaning either.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(data))
	at := func(off int64) string { return fmt.Sprintf("%s:%d", name, lineAt(data, off)) }
	syntax := func(err error) error {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("%s: invalid JSON: %w", at(se.Offset), err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("%s: invalid JSON: unexpected end of file", at(int64(len(data))))
		}
		return fmt.Errorf("%s: invalid JSON: %w", at(dec.InputOffset()), err)
	}

	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: file is empty; write a JSON object such as {\"mqtt_addr\": \":1883\"}", name)
		}
		return nil, syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s: want a JSON object of settings, found %s", at(dec.InputOffset()), describe(tok))
	}
	out := map[string]fileValue{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		key, _ := tok.(string) // the decoder only yields string keys here
		line := lineAt(data, dec.InputOffset())
		where := fmt.Sprintf("%s:%d", name, line)
		s := lookupKey(key)
		switch {
		case s == nil:
			return nil, fmt.Errorf("%s: unknown key %q%s", where, key, suggest(key))
		case s.noFile:
			return nil, fmt.Errorf("%s: key %q cannot be set in a config file; use %s or %s", where, key, s.flag(), s.env())
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: key %q is given twice", where, key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntax(err)
		}
		out[key] = fileValue{raw: raw, line: line}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntax(err)
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntax(err)
		}
		return nil, fmt.Errorf("%s: unexpected %s after the settings object", at(dec.InputOffset()), describe(tok))
	}
	return out, nil
}

// lineAt is the 1-based line holding byte offset off.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %q", v)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

func lookupKey(key string) *setting {
	for i := range settings {
		if settings[i].key() == key {
			return &settings[i]
		}
	}
	return nil
}

// suggest offers the key meant when it differs only in case or in dashes,
// the usual slip when copying a flag name into the file.
func suggest(key string) string {
	norm := strings.ToLower(strings.TrimLeft(strings.ReplaceAll(key, "-", "_"), "_"))
	if s := lookupKey(norm); s != nil && !s.noFile {
		return fmt.Sprintf("; did you mean %q?", norm)
	}
	return "; see --help for the settings"
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a number"
}

// setJSON sets s in c from its value in the config file. Types are strict
// (a port number is a string "host:port", a duration a string "5ms") so
// that a file means one thing only.
func (s *setting) setJSON(c *Config, raw json.RawMessage) error {
	kind := jsonKind(raw)
	switch p := s.field(c).(type) {
	case *string:
		if kind != "a string" {
			return fmt.Errorf("want a string, not %s", kind)
		}
		return unmarshal(raw, p)
	case *bool:
		if kind != "a boolean" {
			return fmt.Errorf("want true or false, not %s", kind)
		}
		return unmarshal(raw, p)
	case *int:
		var n json.Number
		if kind != "a number" || unmarshal(raw, &n) != nil {
			return fmt.Errorf("want a whole number, not %s", kind)
		}
		v, err := strconv.Atoi(n.String())
		if err != nil {
			return fmt.Errorf("%s is not a whole number in range: %w", n, numErr(err))
		}
		*p = v
		return nil
	case *time.Duration:
		var text string
		if kind != "a string" || unmarshal(raw, &text) != nil {
			return fmt.Errorf("want a duration string such as \"5ms\", not %s", kind)
		}
		return s.setText(c, text)
	}
	return fmt.Errorf("setting %s has no file form", s.name)
}

func unmarshal(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding value: %w", err)
	}
	return nil
}

// setText sets s in c from flag or environment text.
func (s *setting) setText(c *Config, text string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = text
	case *bool:
		v, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%q is not a boolean; use true or false: %w", text, numErr(err))
		}
		*p = v
	case *int:
		v, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("%q is not a whole number: %w", text, numErr(err))
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 5ms or 2s", text)
		}
		*p = v
	default:
		return fmt.Errorf("setting %s has no text form", s.name)
	}
	return nil
}

// numErr drops strconv's restatement of the input, which the caller's
// message already quotes, keeping ErrSyntax or ErrRange for errors.Is.
func numErr(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}
