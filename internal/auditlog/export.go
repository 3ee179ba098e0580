package auditlog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
)

// ExportOptions select what Export writes. With no filter set the export
// is complete (every entry of the checkpoint, in order) and a verifier
// recomputes the whole tree; with a filter it is a selection and every
// entry carries its inclusion proof.
type ExportOptions struct {
	// Household keeps only entries of this household.
	Household string
	// Person keeps only entries where this account acted
	// (actor person/<id>) or was the subject (subject.account) — the
	// entries a person's data export should include.
	Person string
	// Device keeps only entries where this device acted or was the subject.
	Device string
	// Match, if set, must also accept an entry.
	Match func(*Event) bool
	// Proofs adds inclusion proofs to a complete export too.
	Proofs bool
	// ConsistencyFrom, if non-zero, adds a consistency proof from that
	// tree size (for example the size of a checkpoint the person saved
	// last time) to the export's checkpoint.
	ConsistencyFrom uint64
}

func (o *ExportOptions) filtered() bool {
	return o.Household != "" || o.Person != "" || o.Device != "" || o.Match != nil
}

func (o *ExportOptions) keep(ev *Event) bool {
	if o.Household != "" && ev.Household != o.Household {
		return false
	}
	if o.Person != "" && !(ev.Actor.Kind == ActorPerson && ev.Actor.ID == o.Person) && ev.Subject.Account != o.Person {
		return false
	}
	if o.Device != "" && !(ev.Actor.Kind == ActorDevice && ev.Actor.ID == o.Device) && ev.Subject.Device != o.Device {
		return false
	}
	return o.Match == nil || o.Match(ev)
}

// ExportSummary says what Export wrote.
type ExportSummary struct {
	Checkpoint Checkpoint
	Complete   bool
	Entries    uint64
}

// Export writes the log, or the selected entries, as of the latest
// checkpoint, in the JSON-lines format of package logformat (header with
// the signed checkpoint, one line per entry, end line), which
// verify.Export checks offline. Every entry is checked against its stored
// hash as it is read, so a log altered on disk fails the export with a
// *TamperError instead of producing a verifiable-looking file.
func (l *Log) Export(ctx context.Context, w io.Writer, opts ExportOptions) (ExportSummary, error) {
	cp := l.Checkpoint()
	sum := ExportSummary{Checkpoint: cp, Complete: !opts.filtered()}
	hdr := logformat.ExportHeader{
		Kind:        logformat.KindHeader,
		Format:      logformat.ExportFormat,
		Checkpoint:  string(cp.Signed),
		Complete:    sum.Complete,
		VerifierKey: l.VerifierKey(),
	}
	if !sum.Complete {
		hdr.Filter = map[string]string{}
		for k, v := range map[string]string{"household": opts.Household, "person": opts.Person, "device": opts.Device} {
			if v != "" {
				hdr.Filter[k] = v
			}
		}
		if opts.Match != nil {
			hdr.Filter["match"] = "custom"
		}
	}
	if f := opts.ConsistencyFrom; f > 0 && f < cp.Size {
		p, err := l.ConsistencyProof(ctx, f, cp.Size)
		if err != nil {
			return sum, fmt.Errorf("export: %w", err)
		}
		hdr.ConsistencyFrom, hdr.ConsistencyProof = f, p
	}

	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(hdr); err != nil {
		return sum, fmt.Errorf("export: %w", err)
	}
	withProofs := !sum.Complete || opts.Proofs
	for e, err := range l.Entries(ctx, 0, cp.Size) {
		if err != nil {
			return sum, fmt.Errorf("export: %w", err)
		}
		if !sum.Complete && !opts.keep(&e.Event) {
			continue
		}
		line := logformat.ExportEntry{
			Kind:     logformat.KindEntry,
			Index:    e.Index,
			LeafHash: hasher.HashLeaf(e.Data),
			Event:    e.Data,
		}
		if withProofs {
			if line.Proof, err = l.InclusionProof(ctx, e.Index, cp.Size); err != nil {
				return sum, fmt.Errorf("export: %w", err)
			}
		}
		if err := enc.Encode(line); err != nil {
			return sum, fmt.Errorf("export: %w", err)
		}
		sum.Entries++
	}
	if err := enc.Encode(logformat.ExportEnd{Kind: logformat.KindEnd, Entries: sum.Entries}); err != nil {
		return sum, fmt.Errorf("export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("export: %w", err)
	}
	return sum, nil
}
