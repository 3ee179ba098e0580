package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"golang.org/x/mod/sumdb/note"
)

// DirReport is what Dir found in a log directory that verified.
type DirReport struct {
	// Checkpoint is the latest valid signed checkpoint in the directory.
	Checkpoint Checkpoint
	// State is the state slot the checkpoint came from.
	State logformat.State
	// Entries is the number of complete, readable records, and EndOffset
	// the byte offset just after the last of them.
	Entries   uint64
	EndOffset int64
	// Unsigned is how many of those entries come after the checkpoint.
	// The writer signs each batch before acknowledging it, so these were
	// written just before a crash and never acknowledged.
	Unsigned uint64
	// Damaged describes unreadable bytes after the last complete record,
	// if any. Past the checkpoint that is a torn write from a crash (the
	// writer truncates it on start-up); inside the checkpoint Dir returns
	// a TamperError instead.
	Damaged *Damage
	// DerivedDamaged says that the entries are intact but the stored
	// per-entry hashes (derived data the writer rebuilds) are not, from
	// index DerivedFrom on.
	DerivedDamaged bool
	DerivedFrom    uint64
}

// Damage is a run of unreadable bytes at the end of the entries file.
type Damage struct {
	Offset int64  // where the damage starts
	Bytes  int64  // how many bytes from there to the end of the file
	Index  uint64 // the index the first unreadable record should have had
	Reason string
}

func (d *Damage) String() string {
	return fmt.Sprintf("%d unreadable bytes at byte %d, where entry %d should start (%s)", d.Bytes, d.Offset, d.Index, d.Reason)
}

// LatestState returns the newest state slot in dir whose checksum holds and
// whose checkpoint is signed by v. A torn slot (a crash while it was being
// written) is skipped in favour of the other one.
func LatestState(dir string, v note.Verifier) (logformat.State, Checkpoint, error) {
	var (
		best     logformat.State
		bestCP   Checkpoint
		found    bool
		problems []error
	)
	for _, name := range logformat.StateFiles {
		b, err := readSmall(filepath.Join(dir, name), logformat.MaxStateSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return logformat.State{}, Checkpoint{}, fmt.Errorf("read %s: %w", name, err)
		}
		st, err := logformat.ParseState(b)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			continue
		}
		cp, err := parseCheckpoint(st.Signed, v)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if !found || st.Seq > best.Seq {
			best, bestCP, found = st, cp, true
		}
	}
	if !found {
		if len(problems) == 0 {
			return logformat.State{}, Checkpoint{}, fmt.Errorf("%w: no checkpoint in %s", ErrCheckpoint, dir)
		}
		return logformat.State{}, Checkpoint{}, fmt.Errorf("%w: no valid checkpoint in %s: %w", ErrCheckpoint, dir, errors.Join(problems...))
	}
	return best, bestCP, nil
}

func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// Dir verifies a log directory, or a copy of one, read-only. It checks the
// latest checkpoint's signature, reads every record, recomputes the tree
// and compares it with the checkpoint. It is safe to run while the hub is
// writing to the directory: anything the hub appends after the checkpoint
// is reported as unsigned, never judged.
//
// A nil error means every signed entry is intact. A *TamperError (wrapping
// ErrTampered) names the first altered index: for a record that was edited,
// deleted or swapped with its neighbour that is the record's own index (see
// Checker for how).
func Dir(ctx context.Context, dir, verifierKey string) (*DirReport, error) {
	return DirWithOptions(ctx, dir, verifierKey, DirOptions{})
}

// DirOptions tune DirWithOptions.
type DirOptions struct {
	// OnLeaf, if set, is called for every complete record in order, with
	// its index, byte offset and leaf hash (which the callee must not
	// modify). The writer uses it to check its derived files in the same
	// pass; an error stops the scan and is returned.
	OnLeaf func(index uint64, offset int64, leafHash []byte) error
}

// DirWithOptions is Dir with options.
func DirWithOptions(ctx context.Context, dir, verifierKey string, opts DirOptions) (*DirReport, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("%w: verifier key: %v", ErrCheckpoint, err)
	}
	st, cp, err := LatestState(dir, v)
	if err != nil {
		return nil, err
	}
	ef, err := os.Open(filepath.Join(dir, logformat.EntriesFile))
	if errors.Is(err, fs.ErrNotExist) && cp.Size > 0 {
		return nil, &TamperError{Index: 0, Exact: true, Size: cp.Size, Reason: "the entries file is missing"}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open entries: %w", err)
	}
	rep := &DirReport{Checkpoint: cp, State: st}
	if ef == nil {
		return rep, nil
	}
	defer ef.Close()
	fileSize := int64(-1)
	if fi, err := ef.Stat(); err == nil {
		fileSize = fi.Size()
	}

	// The recorded leaf hashes (level 0 of the stored tree), for exact
	// localization. Missing or short files only make it less exact.
	var recorded *bufio.Reader
	if lf, err := os.Open(filepath.Join(dir, logformat.LevelFile(0))); err == nil {
		defer lf.Close()
		recorded = bufio.NewReaderSize(lf, 64<<10)
	}
	recordedAvail := uint64(0)

	ck := NewChecker(cp)
	rr := logformat.NewRecordReader(ef, 0)
	rr.ReusePayloads()
	var hashBuf [logformat.HashSize]byte
	for {
		if ck.Next()%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var re *logformat.RecordError
			if !errors.As(err, &re) {
				return nil, err
			}
			if terr := ck.Fail(recordReason(re.Err)); terr != nil {
				return nil, terr
			}
			rep.Damaged = &Damage{Offset: re.Offset, Bytes: fileSize - re.Offset, Index: ck.Next(), Reason: recordReason(re.Err)}
			break
		}
		if rec.Index != ck.Next() {
			reason := misplaced(ck.Next(), rec.Index)
			if terr := ck.Fail(reason); terr != nil {
				return nil, terr
			}
			rep.Damaged = &Damage{Offset: rec.Offset, Bytes: fileSize - rec.Offset, Index: ck.Next(), Reason: reason}
			break
		}
		var rh []byte
		if recorded != nil && ck.Next() < cp.Size {
			if _, err := io.ReadFull(recorded, hashBuf[:]); err == nil {
				rh = hashBuf[:]
				recordedAvail++
			} else {
				recorded = nil
			}
		}
		lh := LeafHash(rec.Payload)
		if opts.OnLeaf != nil {
			if err := opts.OnLeaf(ck.Next(), rec.Offset, lh); err != nil {
				return nil, err
			}
		}
		if err := ck.Add(lh, rh); err != nil {
			return nil, err
		}
		rep.EndOffset = rr.Offset()
	}
	if rep.Damaged == nil {
		rep.EndOffset = rr.Offset()
	}
	// Entries ended before the checkpoint's size: the recorded hashes of
	// the missing ones still let the Checker say exactly where.
	for recorded != nil && recordedAvail < cp.Size && recordedAvail >= ck.Next() {
		if _, err := io.ReadFull(recorded, hashBuf[:]); err != nil {
			break
		}
		if err := ck.AddRecorded(hashBuf[:]); err != nil {
			return nil, err
		}
		recordedAvail++
	}
	if err := ck.Finish(); err != nil {
		return nil, err
	}
	rep.Entries = ck.Next()
	if rep.Entries > cp.Size {
		rep.Unsigned = rep.Entries - cp.Size
	}
	if !ck.RecordedHashesMatch() {
		rep.DerivedDamaged, rep.DerivedFrom = true, ck.FirstMismatch()
	} else if recordedAvail < cp.Size {
		rep.DerivedDamaged, rep.DerivedFrom = true, recordedAvail
	}
	return rep, nil
}

// recordReason turns a framing error into the words of a TamperError.
func recordReason(err error) string {
	switch {
	case errors.Is(err, logformat.ErrChecksum):
		return "record checksum does not match (the record was edited or damaged)"
	case errors.Is(err, logformat.ErrShortRecord):
		return "record is cut short"
	case errors.Is(err, logformat.ErrBadLength):
		return "record length field is damaged"
	case errors.Is(err, logformat.ErrFileHeader):
		return "the entries file header is damaged"
	}
	return err.Error()
}

// misplaced describes a record found where another index was expected.
func misplaced(want, got uint64) string {
	if got > want {
		return fmt.Sprintf("missing: the record in its place holds entry %d (deleted or reordered)", got)
	}
	return fmt.Sprintf("out of order: the record in its place holds entry %d (reordered or duplicated)", got)
}
