package logformat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ExportFormat names the export format and its version. A reader refuses
// any other value, so an incompatible change must bump it.
const ExportFormat = "candor-auditlog-export/1"

// Line kinds of an export.
const (
	KindHeader = "header"
	KindEntry  = "entry"
	KindEnd    = "end"
)

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Kind   string `json:"kind"`   // "header"
	Format string `json:"format"` // ExportFormat
	// Checkpoint is the signed checkpoint note the export is checked
	// against: every entry has an index below its tree size.
	Checkpoint string `json:"checkpoint"`
	// Complete says the export holds every entry [0, size) in order, so
	// the verifier can recompute the root. Otherwise it is a selection
	// (Filter says which) and every entry carries an inclusion proof.
	Complete bool              `json:"complete"`
	Filter   map[string]string `json:"filter,omitempty"`
	// ConsistencyFrom and ConsistencyProof, when present, prove that the
	// tree of size ConsistencyFrom (an earlier checkpoint someone saved)
	// is a prefix of this checkpoint's tree.
	ConsistencyFrom  uint64   `json:"consistency_from,omitempty"`
	ConsistencyProof [][]byte `json:"consistency_proof,omitempty"`
	// VerifierKey is informational: a verifier must use a key it obtained
	// from a trusted source, never this one.
	VerifierKey string `json:"verifier_key,omitempty"`
}

// ExportEntry is one entry line.
type ExportEntry struct {
	Kind  string `json:"kind"` // "entry"
	Index uint64 `json:"index"`
	// LeafHash is the RFC 6962 leaf hash the log recorded for this entry.
	// It lets a verifier name the exact entry that was edited.
	LeafHash []byte `json:"leaf_hash"`
	// Event is the entry's event; its canonical form is the leaf data.
	Event json.RawMessage `json:"event"`
	// Proof is the inclusion proof of the entry in the checkpoint's tree
	// (always present in selections; optional in complete exports).
	Proof [][]byte `json:"proof,omitempty"`
}

// ExportEnd is the last line; it makes a cut-short export detectable.
type ExportEnd struct {
	Kind    string `json:"kind"` // "end"
	Entries uint64 `json:"entries"`
}

// MaxExportLine bounds one export line.
const MaxExportLine = 4 << 20

// ExportReader reads an export line by line.
type ExportReader struct {
	r    *bufio.Reader
	line int
}

// NewExportReader reads the export in r.
func NewExportReader(r io.Reader) *ExportReader {
	return &ExportReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Line is the 1-based number of the line last returned by Next.
func (er *ExportReader) Line() int { return er.line }

// Next returns the next line as *ExportHeader, *ExportEntry or *ExportEnd.
// It returns io.EOF at the end of the input. Blank lines are skipped.
func (er *ExportReader) Next() (any, error) {
	for {
		raw, err := er.readLine()
		if err != nil {
			return nil, err
		}
		er.line++
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(raw, &kind); err != nil {
			return nil, fmt.Errorf("export line %d: %w", er.line, err)
		}
		var v any
		switch kind.Kind {
		case KindHeader:
			v = new(ExportHeader)
		case KindEntry:
			v = new(ExportEntry)
		case KindEnd:
			v = new(ExportEnd)
		default:
			return nil, fmt.Errorf("export line %d: unknown kind %q", er.line, kind.Kind)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("export line %d (%s): %w", er.line, kind.Kind, err)
		}
		return v, nil
	}
}

func (er *ExportReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := er.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxExportLine {
			return nil, fmt.Errorf("export line %d: longer than %d bytes", er.line+1, MaxExportLine)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
			return line, nil
		default:
			return nil, fmt.Errorf("export line %d: %w", er.line+1, err)
		}
	}
}
