package manifest

import (
	"bytes"
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// SchemaJSON is the JSON Schema (2020-12) we publish for manifests, so
// makers can validate theirs in any editor before a hub sees them.
//
//go:embed manifest.schema.json
var SchemaJSON []byte

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		return nil, fmt.Errorf("parse manifest schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("manifest.schema.json", doc); err != nil {
		return nil, fmt.Errorf("add manifest schema: %w", err)
	}
	return c.Compile("manifest.schema.json")
})

var printer = message.NewPrinter(language.English)

// schemaCheck validates a document against the published schema and turns
// every failure into a Problem at a dotted path.
func schemaCheck(data []byte) error {
	sch, err := compiled()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &ValidationError{Problems: []Problem{{Message: "not valid JSON: " + syntaxDetail(data, err)}}}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return fmt.Errorf("validate manifest: %w", err)
	}
	var ps []Problem
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			p := Problem{Path: dotted(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)}
			if !seen[p.String()] {
				seen[p.String()] = true
				ps = append(ps, p)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
	return &ValidationError{Problems: ps}
}

// dotted renders a JSON pointer's tokens as a readable path, with array
// indexes in brackets: events.motion.dpv:hasPurpose[0].@id.
func dotted(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
		if tok != "" && strings.Trim(tok, "0123456789") == "" {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// syntaxDetail locates a JSON syntax error by line and column.
func syntaxDetail(data []byte, err error) string {
	var raw any
	dec := newDecoder(data)
	if derr := dec.Decode(&raw); derr != nil {
		return jsonProblem(data, derr)
	}
	return err.Error()
}
