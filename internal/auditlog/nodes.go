package auditlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/transparency-dev/merkle/compact"
)

// maxLevels covers any tree of up to 2^63 leaves.
const maxLevels = 64

// nodeStore keeps the hashes of every perfect subtree, one file per level
// with fixed 32-byte slots, so that any node is one pread away and a proof
// in a tree of a million entries costs about twenty reads. Readers run
// concurrently with the single writer: they only read slots below the
// published tree size, which the writer filled before publishing it.
type nodeStore struct {
	dir   string
	mu    sync.Mutex // serialises opening files
	files [maxLevels]atomic.Pointer[os.File]
	dirty [maxLevels]bool // writer only: written since the last sync
}

func (ns *nodeStore) file(level uint, create bool) (*os.File, error) {
	if level >= maxLevels {
		return nil, fmt.Errorf("tree level %d out of range", level)
	}
	if f := ns.files[level].Load(); f != nil {
		return f, nil
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if f := ns.files[level].Load(); f != nil {
		return f, nil
	}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(ns.dir, logformat.LevelFile(level)), flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open node level %d: %w", level, err)
	}
	ns.files[level].Store(f)
	return f, nil
}

// read returns the stored hashes of ids, in order.
func (ns *nodeStore) read(ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	buf := make([]byte, len(ids)*logformat.HashSize)
	for i, id := range ids {
		f, err := ns.file(id.Level, false)
		if err != nil {
			return nil, err
		}
		h := buf[i*logformat.HashSize : (i+1)*logformat.HashSize : (i+1)*logformat.HashSize]
		if _, err := f.ReadAt(h, int64(id.Index)*logformat.HashSize); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("node (%d, %d) is missing from the stored tree", id.Level, id.Index)
			}
			return nil, fmt.Errorf("read node (%d, %d): %w", id.Level, id.Index, err)
		}
		out[i] = h
	}
	return out, nil
}

// write stores consecutive hashes of one level starting at index start.
func (ns *nodeStore) write(level uint, start uint64, hashes []byte) error {
	f, err := ns.file(level, true)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(hashes, int64(start)*logformat.HashSize); err != nil {
		return fmt.Errorf("write node level %d: %w", level, err)
	}
	ns.dirty[level] = true
	return nil
}

// sync flushes every level written since the last sync.
func (ns *nodeStore) sync() error {
	for l := range ns.dirty {
		if !ns.dirty[l] {
			continue
		}
		if err := ns.files[l].Load().Sync(); err != nil {
			return fmt.Errorf("sync node level %d: %w", l, err)
		}
		ns.dirty[l] = false
	}
	return nil
}

func (ns *nodeStore) close() error {
	var errs []error
	for l := range ns.files {
		if f := ns.files[l].Swap(nil); f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// nodeBuffer gathers the nodes a batch completes, level by level, so each
// level is written with one pwrite. compact.Range reports the nodes of a
// level in increasing, consecutive index order, which is what makes one
// contiguous buffer per level enough.
type nodeBuffer struct {
	levels [maxLevels]struct {
		start uint64
		buf   []byte
	}
	err error
}

func (nb *nodeBuffer) visit(id compact.NodeID, hash []byte) {
	if id.Level >= maxLevels {
		nb.err = fmt.Errorf("tree level %d out of range", id.Level)
		return
	}
	lv := &nb.levels[id.Level]
	n := uint64(len(lv.buf) / logformat.HashSize)
	if n == 0 {
		lv.start = id.Index
	} else if id.Index != lv.start+n {
		// Not expected from compact.Range; refuse rather than misplace.
		nb.err = fmt.Errorf("node (%d, %d) is not next after (%d, %d)", id.Level, id.Index, id.Level, lv.start+n-1)
		return
	}
	lv.buf = append(lv.buf, hash...)
}

// flush writes everything gathered and empties the buffer.
func (nb *nodeBuffer) flush(ns *nodeStore) error {
	if nb.err != nil {
		return nb.err
	}
	for l := range nb.levels {
		lv := &nb.levels[l]
		if len(lv.buf) == 0 {
			continue
		}
		if err := ns.write(uint(l), lv.start, lv.buf); err != nil {
			return err
		}
		lv.buf = lv.buf[:0]
	}
	return nil
}
