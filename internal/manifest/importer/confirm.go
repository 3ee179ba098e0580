package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/candor-iot/candor/internal/manifest"
)

// ErrNotDraft is returned by Confirm for a document that is not a draft.
var ErrNotDraft = errors.New("the manifest is not a draft (candor:draft is not true)")

// Confirm records the owner's confirmation of a draft: it validates the
// document with manifest.Parse and returns it with "candor:draft" set to
// false. Only that value changes; every other byte of the document is kept
// as it was, so what the owner reviewed is exactly what comes into force.
func Confirm(doc []byte) ([]byte, error) {
	m, err := manifest.Parse("draft", doc)
	if err != nil {
		return nil, err
	}
	if !m.Draft {
		return nil, ErrNotDraft
	}
	out, err := setTopLevel(doc, "candor:draft", []byte("false"))
	if err != nil {
		return nil, fmt.Errorf("confirm: %w", err)
	}
	m, err = manifest.Parse("confirmed draft", out)
	if err != nil {
		return nil, fmt.Errorf("confirm: %w", err)
	}
	if m.Draft {
		return nil, errors.New("confirm: the document still reads as a draft")
	}
	return out, nil
}

// setTopLevel replaces the value of every top-level member named key in the
// JSON object doc with value, leaving all other bytes as they are.
func setTopLevel(doc []byte, key string, value []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	type span struct{ start, end int64 }
	var spans []span
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := t.(string)
		if !ok {
			return nil, errors.New("malformed object")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if k != key {
			continue
		}
		end := dec.InputOffset()
		v := bytes.TrimSpace(raw)
		start := end - int64(len(v))
		if start < 0 || !bytes.Equal(doc[start:end], v) {
			return nil, fmt.Errorf("cannot locate the value of %q", key)
		}
		spans = append(spans, span{start, end})
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("no top-level %q member", key)
	}
	out := append([]byte(nil), doc...)
	for i := len(spans) - 1; i >= 0; i-- {
		sp := spans[i]
		out = append(out[:sp.start:sp.start], append(append([]byte(nil), value...), out[sp.end:]...)...)
	}
	return out, nil
}
