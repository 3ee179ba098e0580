package advisories

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/candor-iot/candor/internal/problem"
	"github.com/gocsaf/csaf/v3/csaf"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Kinds of refusal callers can act on.
var (
	// ErrInvalid means a document is not a valid OSV or CSAF 2.0 advisory.
	ErrInvalid = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-advisory", Text: "advisories: invalid document"}
	// ErrTooLarge means a document is over MaxDocumentBytes.
	ErrTooLarge = &problem.Kind{Status: http.StatusRequestEntityTooLarge, Type: "advisory-too-large", Text: "advisories: document too large",
		Detail: "an advisory document may be at most 5 MiB"}
)

// Problem is one thing wrong with a document, at a JSON path such as
// $.affected[0].ranges[0].type.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// ValidationError lists what is wrong with one refused document. Nothing
// of a refused document is kept.
type ValidationError struct {
	Source   string // file name or other label the caller gave
	Format   Format // empty when the format could not be told
	Problems []Problem
}

// maxProblems bounds the list, so one broken file cannot produce an
// answer larger than itself.
const maxProblems = 20

func (e *ValidationError) Error() string {
	var b strings.Builder
	what := "advisory"
	if e.Format != "" {
		what = strings.ToUpper(string(e.Format)) + " advisory"
	}
	fmt.Fprintf(&b, "%s %s is invalid", what, cmpOr(e.Source, "(unnamed)"))
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// ProblemKind makes a ValidationError answer as ErrInvalid with its list.
func (e *ValidationError) ProblemKind() (*problem.Kind, string) { return ErrInvalid, e.Error() }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

//go:embed osv.schema.json
var osvSchemaJSON []byte

var osvSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(osvSchemaJSON))
	if err != nil {
		return nil, fmt.Errorf("parse OSV schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("osv.schema.json", doc); err != nil {
		return nil, fmt.Errorf("add OSV schema: %w", err)
	}
	return c.Compile("osv.schema.json")
})

var printer = message.NewPrinter(language.English)

// Parse validates one advisory document and reads it. source labels the
// document in errors (a file name). It tells OSV from CSAF by the
// document's shape: a CSAF document has a "document" object, an OSV one
// an "id" and "modified".
func Parse(source string, data []byte) (*Advisory, error) {
	if len(data) > MaxDocumentBytes {
		return nil, ErrTooLarge.Errorf("%s is %d bytes; an advisory document may be at most %d (5 MiB)", cmpOr(source, "the document"), len(data), MaxDocumentBytes)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, &ValidationError{Source: source, Problems: []Problem{{Path: "$", Message: "not valid JSON: " + err.Error()}}}
	}
	obj, ok := inst.(map[string]any)
	if !ok {
		return nil, &ValidationError{Source: source, Problems: []Problem{{Path: "$", Message: "an advisory must be a JSON object"}}}
	}
	switch {
	case obj["document"] != nil:
		if ps, err := validateCSAF(inst); err != nil {
			return nil, err
		} else if len(ps) > 0 {
			return nil, &ValidationError{Source: source, Format: FormatCSAF, Problems: ps}
		}
		a, ps := readCSAF(data)
		if len(ps) > 0 {
			return nil, &ValidationError{Source: source, Format: FormatCSAF, Problems: ps}
		}
		return a, nil
	case obj["id"] != nil || obj["modified"] != nil || obj["affected"] != nil:
		if ps, err := validateOSV(inst); err != nil {
			return nil, err
		} else if len(ps) > 0 {
			return nil, &ValidationError{Source: source, Format: FormatOSV, Problems: ps}
		}
		a, ps := readOSV(data)
		if len(ps) > 0 {
			return nil, &ValidationError{Source: source, Format: FormatOSV, Problems: ps}
		}
		return a, nil
	}
	return nil, &ValidationError{Source: source, Problems: []Problem{{Path: "$",
		Message: `neither CSAF 2.0 (no "document" object) nor OSV (no "id" and "modified")`}}}
}

func validateOSV(inst any) ([]Problem, error) {
	sch, err := osvSchema()
	if err != nil {
		return nil, err
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, fmt.Errorf("validate OSV advisory: %w", err)
	}
	var ps []Problem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			ps = append(ps, Problem{Path: jsonPath(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return tidy(ps), nil
}

// validateCSAF checks a document against the official CSAF 2.0 JSON
// Schema (and the CVSS schemas it references), as embedded in
// github.com/gocsaf/csaf/v3. Its answers are "pointer: message" lines.
func validateCSAF(inst any) ([]Problem, error) {
	lines, err := csaf.ValidateCSAF(inst)
	if err != nil {
		return nil, fmt.Errorf("validate CSAF advisory: %w", err)
	}
	var ps []Problem
	for _, l := range lines {
		loc, msg, found := strings.Cut(l, ": ")
		if !found || (loc != "" && !strings.HasPrefix(loc, "/")) {
			loc, msg = "", l
		}
		ps = append(ps, Problem{Path: jsonPath(strings.Split(strings.TrimPrefix(loc, "/"), "/")), Message: msg})
	}
	return tidy(ps), nil
}

// tidy drops duplicates and problems reported at a path that has a more
// precise problem below it ("doesn't validate" at the parent of the field
// that is wrong), sorts by path and bounds the list.
func tidy(ps []Problem) []Problem {
	seen := map[string]bool{}
	var out []Problem
	for _, p := range ps {
		deeper := false
		for _, q := range ps {
			if q.Path != p.Path && (strings.HasPrefix(q.Path, p.Path+".") || strings.HasPrefix(q.Path, p.Path+"[")) {
				deeper = true
				break
			}
		}
		if deeper || seen[p.String()] {
			continue
		}
		seen[p.String()] = true
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	if len(out) > maxProblems {
		n := len(out) - maxProblems
		out = append(out[:maxProblems], Problem{Path: "$", Message: fmt.Sprintf("and %d more problems", n)})
	}
	return out
}

// jsonPath renders JSON pointer tokens as a JSONPath: $.a.b[0].c, with
// keys that are not plain names in brackets.
func jsonPath(tokens []string) string {
	var b strings.Builder
	b.WriteString("$")
	for _, tok := range tokens {
		switch {
		case tok == "":
		case strings.Trim(tok, "0123456789") == "":
			b.WriteString("[" + tok + "]")
		case strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == "":
			b.WriteString("." + tok)
		default:
			q, _ := json.Marshal(tok)
			b.WriteString("[" + string(q) + "]")
		}
	}
	return b.String()
}
