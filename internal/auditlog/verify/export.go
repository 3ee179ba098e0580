package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
)

// ExportOptions tune Export.
type ExportOptions struct {
	// Trusted is a checkpoint saved earlier (for example from a previous
	// export or the hub's API). When set, Export also proves the log only
	// grew since: a complete export by recomputing the old root from its
	// entries, a selection through its consistency proof.
	Trusted *Checkpoint
	// OnEntry, if set, is called with each entry's index and leaf data (the
	// event's canonical JSON) as it is read. For a selection each entry has
	// already passed its inclusion proof; for a complete export the verdict
	// on the whole comes only when Export returns nil.
	OnEntry func(index uint64, leaf []byte) error
}

// ExportReport is what Export verified.
type ExportReport struct {
	Checkpoint Checkpoint
	Complete   bool
	Filter     map[string]string
	Entries    uint64
	// ConsistentWithTrusted is true when opts.Trusted was given and the
	// log was shown to have only grown since it.
	ConsistentWithTrusted bool
}

// Export verifies an export (see logformat.ExportHeader) against the
// hub's verifier key. For a complete export it recomputes the whole tree
// and names the first altered index (edited, deleted or reordered line);
// for a selection it checks every entry's inclusion proof and names the
// first entry that fails. It also refuses an export cut short (no end
// line, or fewer entries than the end line says).
func Export(ctx context.Context, r io.Reader, verifierKey string, opts ExportOptions) (*ExportReport, error) {
	er := logformat.NewExportReader(r)
	first, err := er.Next()
	if err == io.EOF {
		return nil, errors.New("export is empty")
	}
	if err != nil {
		return nil, err
	}
	h, ok := first.(*logformat.ExportHeader)
	if !ok {
		return nil, fmt.Errorf("export line %d: the first line is not a header", er.Line())
	}
	if h.Format != logformat.ExportFormat {
		return nil, fmt.Errorf("export format %q is not %q", h.Format, logformat.ExportFormat)
	}
	cp, err := ParseCheckpoint([]byte(h.Checkpoint), verifierKey)
	if err != nil {
		return nil, fmt.Errorf("export header: %w", err)
	}
	rep := &ExportReport{Checkpoint: cp, Complete: h.Complete, Filter: maps.Clone(h.Filter)}

	ck := NewChecker(cp)
	if t := opts.Trusted; t != nil {
		switch {
		case t.Origin != cp.Origin:
			return nil, fmt.Errorf("%w: the trusted checkpoint is of log %q, the export of %q", ErrCheckpoint, t.Origin, cp.Origin)
		case t.Size > cp.Size:
			return nil, fmt.Errorf("%w: the log shrank from %d to %d entries (rolled back)", ErrTampered, t.Size, cp.Size)
		case h.Complete:
			ck.AlsoRootAt(t.Size)
		case h.ConsistencyFrom != t.Size && t.Size != cp.Size:
			return nil, fmt.Errorf("export has no consistency proof from tree size %d (it has one from %d); export again with that size", t.Size, h.ConsistencyFrom)
		default:
			var p [][]byte
			if t.Size != cp.Size {
				p = h.ConsistencyProof
			}
			if err := Consistency(*t, cp, p); err != nil {
				return nil, err
			}
			rep.ConsistentWithTrusted = true
		}
	}

	var (
		count   uint64
		last    uint64
		ended   bool
		endSays uint64
	)
	for {
		line, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if ended {
			return nil, fmt.Errorf("%w: export line %d: data after the end line", ErrTampered, er.Line())
		}
		switch l := line.(type) {
		case *logformat.ExportHeader:
			return nil, fmt.Errorf("export line %d: a second header", er.Line())
		case *logformat.ExportEnd:
			ended, endSays = true, l.Entries
			continue
		case *logformat.ExportEntry:
			if count%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			leaf, err := checkExportEntry(ck, cp, h.Complete, l, count, last)
			if err != nil {
				return nil, err
			}
			if opts.OnEntry != nil {
				if err := opts.OnEntry(l.Index, leaf); err != nil {
					return nil, err
				}
			}
			count++
			last = l.Index
		}
	}
	if !ended {
		return nil, fmt.Errorf("%w: the export has no end line: it was cut short after %d entries", ErrTampered, count)
	}
	if endSays != count {
		return nil, fmt.Errorf("%w: the end line says %d entries but the export has %d", ErrTampered, endSays, count)
	}
	if h.Complete {
		if err := ck.Finish(); err != nil {
			return nil, err
		}
		if t := opts.Trusted; t != nil {
			if !equalHash(ck.RootAt(), t.Root) {
				return nil, fmt.Errorf("%w: the first %d entries do not reproduce the trusted checkpoint's root: history was rewritten", ErrTampered, t.Size)
			}
			rep.ConsistentWithTrusted = true
		}
	}
	rep.Entries = count
	return rep, nil
}

// checkExportEntry checks one entry line and returns its leaf data.
func checkExportEntry(ck *Checker, cp Checkpoint, complete bool, e *logformat.ExportEntry, count, last uint64) ([]byte, error) {
	if complete {
		if e.Index != ck.Next() {
			if err := ck.Fail(misplaced(ck.Next(), e.Index)); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: entry %d: the export has more entries than the checkpoint's %d", ErrTampered, e.Index, cp.Size)
		}
		if e.Index >= cp.Size {
			return nil, fmt.Errorf("%w: entry %d is beyond the checkpoint's %d entries", ErrTampered, e.Index, cp.Size)
		}
	} else if count > 0 && e.Index <= last {
		return nil, &TamperError{Index: e.Index, Exact: true, Size: cp.Size,
			Reason: fmt.Sprintf("out of order: it follows entry %d", last)}
	}
	leaf, err := logformat.Canonicalize(e.Event)
	if err != nil {
		if complete {
			return nil, ck.Fail("the event is not valid JSON: " + err.Error())
		}
		return nil, &TamperError{Index: e.Index, Exact: true, Size: cp.Size, Reason: "the event is not valid JSON: " + err.Error()}
	}
	lh := LeafHash(leaf)
	if complete {
		var recorded []byte
		if len(e.LeafHash) == logformat.HashSize {
			recorded = e.LeafHash
		}
		return leaf, ck.Add(lh, recorded)
	}
	if e.LeafHash != nil && !equalHash(lh, e.LeafHash) {
		return nil, &TamperError{Index: e.Index, Exact: true, Size: cp.Size, Reason: "the event does not match its recorded leaf hash"}
	}
	if err := InclusionHash(cp, e.Index, lh, e.Proof); err != nil {
		return nil, err
	}
	return leaf, nil
}
