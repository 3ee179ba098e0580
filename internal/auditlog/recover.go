package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/candor-iot/candor/internal/auditlog/verify"
	"github.com/transparency-dev/merkle/compact"
)

// recover brings the directory to a verified, consistent state and sets
// up the writer. The order matters: nothing is modified until the
// entries have been shown to match the signed checkpoint, so a tampered
// log is left exactly as found for whoever investigates.
func (l *Log) recover(ctx context.Context) error {
	start := time.Now()
	fresh, err := l.isFresh()
	if err != nil {
		return err
	}
	if fresh {
		if err := l.initialise(); err != nil {
			return fmt.Errorf("create log: %w", err)
		}
		l.lastSync = time.Now()
		l.recovery = Recovery{Created: true, Check: l.opts.Check, Duration: time.Since(start)}
		return nil
	}

	st, cp, err := verify.LatestState(l.dir, l.key.verifier)
	if err != nil {
		return err
	}
	from, fromOff := st.Synced, st.SyncedOffset
	if from > cp.Size || fromOff < int64(len(logformat.FileHeader)) {
		from, fromOff = 0, 0
	}

	if l.opts.Check == CheckFull {
		// The offline verifier's verdict, on the same bytes, and in the
		// same pass a check that the derived files below the synced point
		// (offsets, every level of node hashes) match the entries, so a
		// damaged cache is rebuilt rather than serving bad proofs.
		dc := newDerivedCheck(l, from)
		defer dc.close()
		rep, err := verify.DirWithOptions(ctx, l.dir, l.key.VerifierKey(), verify.DirOptions{OnLeaf: dc.leaf})
		if err != nil {
			return err
		}
		if dc.bad != "" || (rep.DerivedDamaged && rep.DerivedFrom < from) {
			if dc.bad != "" {
				l.opts.Logger.Warn("audit log derived files damaged; rebuilding them from the entries", "dir", l.dir, "problem", dc.bad)
			}
			from, fromOff = 0, 0
		}
	} else {
		res, err := l.scan(ctx, from, fromOff, cp, false)
		if err != nil {
			return err
		}
		if res.bad != "" {
			// Something is off; let the full verifier find out what, and
			// name the index if it is tampering.
			if _, err := verify.Dir(ctx, l.dir, l.key.VerifierKey()); err != nil {
				return err
			}
			from, fromOff = 0, 0 // only derived data was wrong
		}
	}

	res, err := l.scan(ctx, from, fromOff, cp, true)
	if err != nil {
		return err
	}
	if res.bad != "" && from > 0 {
		// The stored subtree hashes at the synced point were damaged;
		// rebuild everything from the entries alone.
		from, fromOff = 0, 0
		if res, err = l.scan(ctx, 0, 0, cp, true); err != nil {
			return err
		}
	}
	if res.bad != "" {
		// The verifier passed a moment ago; the files changed under us.
		return &TamperError{Index: res.badIndex, Exact: false, Size: cp.Size, Reason: "the log changed while it was being verified: " + res.bad}
	}

	if res.damage != nil || res.end < int64(len(logformat.FileHeader)) {
		if err := l.truncateTail(res.end); err != nil {
			return err
		}
		if res.end < int64(len(logformat.FileHeader)) {
			res.end = int64(len(logformat.FileHeader))
		}
	}

	l.rng, l.size, l.end, l.next, l.seq = res.rng, res.n, res.end, res.n, st.Seq
	if err := l.syncDerived(); err != nil {
		return err
	}
	root, err := l.rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("root hash: %w", err)
	}
	if l.size == 0 {
		root = verify.EmptyRoot()
	}
	// Sign what is there now (adopting complete entries written after the
	// checkpoint) and record that the derived files are in sync.
	if err := l.writeCheckpoint(root); err != nil {
		return err
	}
	l.recovery = Recovery{
		Check:          l.opts.Check,
		CheckpointSize: cp.Size,
		Entries:        l.size,
		Adopted:        l.size - cp.Size,
		Truncated:      res.damage,
		RebuiltFrom:    res.from,
		Duration:       time.Since(start),
	}
	return nil
}

// truncateTail cuts the entries file at end, the end of the last complete
// record after the checkpoint, and makes that durable.
func (l *Log) truncateTail(end int64) error {
	if end < int64(len(logformat.FileHeader)) {
		// Not even the header survived (only possible with no signed
		// entries): start the file again.
		if err := l.entries.Truncate(0); err != nil {
			return fmt.Errorf("repair entries: %w", err)
		}
		if _, err := l.entries.WriteAt(logformat.FileHeader, 0); err != nil {
			return fmt.Errorf("repair entries: %w", err)
		}
	} else if err := l.entries.Truncate(end); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	if err := l.entries.Sync(); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	return nil
}

// scanResult is what a scan of the entries file found.
type scanResult struct {
	from   uint64         // where the scan really started
	rng    *compact.Range // the tree of the n complete entries
	n      uint64
	end    int64          // offset just after entry n-1
	damage *verify.Damage // unreadable bytes after the checkpoint, to cut
	// bad is set when the signed part does not check out; badIndex is
	// where the scan noticed (not necessarily the altered index).
	bad      string
	badIndex uint64
}

// scan reads the entries from index from (starting at byte fromOff; 0
// means the start of the file) to the end, extending the stored tree at
// from, and checks that the tree reproduces cp's root. With write it
// also rewrites the derived files for those entries.
func (l *Log) scan(ctx context.Context, from uint64, fromOff int64, cp verify.Checkpoint, write bool) (scanResult, error) {
	var res scanResult
	rng := rangeFactory.NewEmptyRange(0)
	if from > 0 {
		hashes, err := l.nodes.read(compact.RangeNodes(0, from, nil))
		if err == nil {
			rng, err = rangeFactory.NewRange(0, from, hashes)
		}
		if err != nil {
			// The derived files do not reach the synced point: they are
			// not to be trusted, so start from nothing.
			from, fromOff, rng = 0, 0, rangeFactory.NewEmptyRange(0)
		}
	}
	if from == 0 {
		fromOff = 0
	}
	res.from = from
	fi, err := l.entries.Stat()
	if err != nil {
		return res, err
	}
	rootOK := func() bool {
		if cp.Size == 0 {
			return bytes.Equal(cp.Root, verify.EmptyRoot())
		}
		root, err := rng.GetRootHash(nil)
		return err == nil && bytes.Equal(root, cp.Root)
	}

	var (
		nb        nodeBuffer
		offs      []byte
		offsStart = from
	)
	flush := func() error {
		if !write {
			return nil
		}
		if err := nb.flush(l.nodes); err != nil {
			return err
		}
		if len(offs) > 0 {
			if _, err := l.offsets.WriteAt(offs, int64(8*offsStart)); err != nil {
				return fmt.Errorf("write offsets: %w", err)
			}
			offsStart += uint64(len(offs) / 8)
			offs = offs[:0]
		}
		return nil
	}
	visit := compact.VisitFn(nil)
	if write {
		visit = nb.visit
	}

	i := from
	if i == cp.Size && !rootOK() {
		res.bad, res.badIndex = "the stored tree at the synced point does not reproduce the signed root", i
		return res, nil
	}
	rr := logformat.NewRecordReader(io.NewSectionReader(l.entries, fromOff, fi.Size()-fromOff), fromOff)
	rr.ReusePayloads()
	for {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		reason := ""
		if err != nil {
			var re *logformat.RecordError
			if !errors.As(err, &re) {
				return res, err
			}
			reason = re.Err.Error()
		} else if rec.Index != i {
			reason = fmt.Sprintf("record holds entry %d", rec.Index)
		}
		if reason != "" {
			if i < cp.Size {
				res.bad, res.badIndex = reason, i
				return res, nil
			}
			res.damage = &verify.Damage{Offset: rr.Offset(), Bytes: fi.Size() - rr.Offset(), Index: i, Reason: reason}
			break
		}
		if err := rng.Append(hasher.HashLeaf(rec.Payload), visit); err != nil {
			return res, fmt.Errorf("extend tree: %w", err)
		}
		if write {
			offs = binary.BigEndian.AppendUint64(offs, uint64(rec.Offset))
		}
		i++
		if i == cp.Size && !rootOK() {
			res.bad, res.badIndex = "the entries do not reproduce the signed root", from
			return res, nil
		}
		if len(offs) >= 8<<16 {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if i < cp.Size {
		res.bad, res.badIndex = fmt.Sprintf("the log ends after %d of %d signed entries", i, cp.Size), i
		return res, nil
	}
	if err := flush(); err != nil {
		return res, err
	}
	res.rng, res.n, res.end = rng, i, rr.Offset()
	return res, nil
}

// derivedCheck compares the derived files for entries [0, upTo) with what
// the entries imply, while the verifier streams them.
type derivedCheck struct {
	l       *Log
	upTo    uint64
	offsets *bufio.Reader
	levels  [maxLevels]*bufio.Reader
	files   []*os.File
	rng     *compact.Range
	buf     [logformat.HashSize]byte
	bad     string
}

func newDerivedCheck(l *Log, upTo uint64) *derivedCheck {
	return &derivedCheck{
		l:       l,
		upTo:    upTo,
		offsets: bufio.NewReaderSize(io.NewSectionReader(l.offsets, 0, 1<<62), 64<<10),
		rng:     rangeFactory.NewEmptyRange(0),
	}
}

func (d *derivedCheck) leaf(i uint64, off int64, h []byte) error {
	if d.bad != "" || i >= d.upTo {
		return nil
	}
	if _, err := io.ReadFull(d.offsets, d.buf[:8]); err != nil || int64(binary.BigEndian.Uint64(d.buf[:8])) != off {
		d.bad = fmt.Sprintf("offset of entry %d", i)
		return nil
	}
	return d.rng.Append(h, d.visit)
}

// visit compares one stored node. compact.Range yields each level's nodes
// in index order from 0, so each level file is read sequentially.
func (d *derivedCheck) visit(id compact.NodeID, hash []byte) {
	if d.bad != "" {
		return
	}
	r := d.levels[id.Level]
	if r == nil {
		f, err := os.Open(filepath.Join(d.l.dir, logformat.LevelFile(id.Level)))
		if err != nil {
			d.bad = fmt.Sprintf("node level %d: %v", id.Level, err)
			return
		}
		d.files = append(d.files, f)
		r = bufio.NewReaderSize(f, 32<<10)
		d.levels[id.Level] = r
	}
	if _, err := io.ReadFull(r, d.buf[:]); err != nil || !bytes.Equal(d.buf[:], hash) {
		d.bad = fmt.Sprintf("node (%d, %d)", id.Level, id.Index)
	}
}

func (d *derivedCheck) close() {
	for _, f := range d.files {
		f.Close()
	}
}
