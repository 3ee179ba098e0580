package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// Entry is one log entry.
type Entry struct {
	Index uint64
	// Data is the leaf data: the event's canonical JSON. Its RFC 6962 leaf
	// hash is what inclusion proofs prove.
	Data  []byte
	Event Event
}

func (l *Log) rangeErr(what string, v, size uint64) error {
	return fmt.Errorf("%w: %s %d, the log has %d entries", ErrRange, what, v, size)
}

func (l *Log) offset(i uint64) (int64, error) {
	var b [8]byte
	if _, err := l.offsets.ReadAt(b[:], int64(8*i)); err != nil {
		return 0, fmt.Errorf("read offset of entry %d: %w", i, err)
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

// Entry returns entry i. It checks the record against the tree hash
// stored for it when it was appended, so an entry edited on disk after
// Open is reported (as a *TamperError) rather than returned.
func (l *Log) Entry(ctx context.Context, i uint64) (Entry, error) {
	for e, err := range l.Entries(ctx, i, i+1) {
		return e, err
	}
	return Entry{}, l.rangeErr("entry", i, l.Size())
}

// Entries yields entries [from, to) in order, each checked like Entry.
// to is clamped to the current size. Iteration stops at the first error,
// which is yielded.
func (l *Log) Entries(ctx context.Context, from, to uint64) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		h := l.pub.Load()
		to = min(to, h.size)
		if from >= to {
			if from > h.size {
				yield(Entry{}, l.rangeErr("entry", from, h.size))
			}
			return
		}
		start, err := l.offset(from)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		end := h.end
		if to < h.size {
			if end, err = l.offset(to); err != nil {
				yield(Entry{}, err)
				return
			}
		}
		if start < int64(len(logformat.FileHeader)) || end < start {
			yield(Entry{}, fmt.Errorf("offsets of entries %d..%d are damaged (%d..%d); reopen the log to rebuild them", from, to, start, end))
			return
		}
		lf, err := l.nodes.file(0, false)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		leaves := bufio.NewReaderSize(io.NewSectionReader(lf, int64(from)*logformat.HashSize, int64(to-from)*logformat.HashSize), 32<<10)
		rr := logformat.NewRecordReader(io.NewSectionReader(l.entries, start, end-start), start)
		var stored [logformat.HashSize]byte
		for i := from; i < to; i++ {
			if (i-from)%1024 == 0 {
				if err := ctx.Err(); err != nil {
					yield(Entry{}, err)
					return
				}
			}
			e, err := readEntry(rr, leaves, &stored, i, h.size)
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

func readEntry(rr *logformat.RecordReader, leaves io.Reader, stored *[logformat.HashSize]byte, i, size uint64) (Entry, error) {
	rec, err := rr.Next()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return Entry{}, &TamperError{Index: i, Exact: true, Size: size, Reason: "entry unreadable: " + err.Error()}
	}
	if rec.Index != i {
		return Entry{}, &TamperError{Index: i, Exact: true, Size: size, Reason: fmt.Sprintf("the record at its place holds entry %d", rec.Index)}
	}
	if _, err := io.ReadFull(leaves, stored[:]); err != nil {
		return Entry{}, fmt.Errorf("read stored hash of entry %d: %w", i, err)
	}
	if !bytes.Equal(hasher.HashLeaf(rec.Payload), stored[:]) {
		return Entry{}, &TamperError{Index: i, Exact: true, Size: size, Reason: "leaf hash does not match the hash stored when it was appended"}
	}
	ev, err := ParseEvent(rec.Payload)
	if err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", i, err)
	}
	return Entry{Index: i, Data: rec.Payload, Event: ev}, nil
}

// InclusionProof returns the RFC 9162 inclusion proof of entry index in
// the tree of size treeSize (0 < treeSize <= Size()), for
// verify.Inclusion. It is at most about log2(treeSize) hashes, each
// read from the stored tree.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	if size := l.Size(); treeSize > size {
		return nil, l.rangeErr("tree size", treeSize, size)
	}
	if index >= treeSize {
		return nil, fmt.Errorf("%w: index %d is not below tree size %d", ErrRange, index, treeSize)
	}
	nodes, err := proof.Inclusion(index, treeSize)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return l.proofHashes(ctx, nodes)
}

// ConsistencyProof returns the RFC 9162 consistency proof between tree
// sizes size1 <= size2 <= Size(), for verify.Consistency: it shows the
// tree of size1 (an old checkpoint someone kept) is a prefix of size2.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if size := l.Size(); size2 > size {
		return nil, l.rangeErr("tree size", size2, size)
	}
	if size1 > size2 {
		return nil, fmt.Errorf("%w: size %d is above size %d", ErrRange, size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return l.proofHashes(ctx, nodes)
}

func (l *Log) proofHashes(ctx context.Context, nodes proof.Nodes) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hashes, err := l.nodes.read(nodes.IDs)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	return p, nil
}

// RootHash returns the root hash of the tree of the first size entries
// (size <= Size()), computed from at most log2(size) stored nodes.
func (l *Log) RootHash(ctx context.Context, size uint64) ([]byte, error) {
	if cur := l.Size(); size > cur {
		return nil, l.rangeErr("tree size", size, cur)
	}
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hashes, err := l.nodes.read(compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, fmt.Errorf("root hash: %w", err)
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("root hash: %w", err)
	}
	return r.GetRootHash(nil)
}
