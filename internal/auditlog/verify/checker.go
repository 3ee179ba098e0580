package verify

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// Checker checks a stream of leaves, in index order from 0, against a
// signed checkpoint and finds the first altered index.
//
// How it localizes: the root alone says only that something changed. So
// the caller also passes, per leaf, the hash the log recorded for it when
// it was appended (the writer's stored level-0 hashes, or an export's
// leaf_hash). The Checker builds two trees at once, one from the entries
// and one from the recorded hashes. If the recorded hashes still produce
// the signed root they are authentic (SHA-256 collision resistance), and
// the first entry whose own hash differs from its recorded hash is exactly
// the first altered one. If someone also rewrote the recorded hashes, only
// "somewhere in [i, size)" can be said, and the error says so.
//
// Leaves at or past the checkpoint size are counted but not checked: no
// signature covers them yet.
type Checker struct {
	cp        Checkpoint
	extraSize uint64
	extraRoot []byte

	entries *compact.Range
	n       uint64
	// claims is the tree of recorded hashes. While every recorded hash
	// equals its leaf hash the two trees are the same, so claims stays nil
	// and costs nothing; it is forked from entries at the first mismatch.
	claims         *compact.Range
	claimN         uint64 // leaves in claims, once forked
	claimsComplete bool   // every signed leaf so far had a recorded hash
	firstDiff      uint64
	diff           bool
	entryRoot      []byte
	claimRoot      []byte
}

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// NewChecker returns a Checker for leaves [0, cp.Size).
func NewChecker(cp Checkpoint) *Checker {
	c := &Checker{
		cp:             cp,
		entries:        rangeFactory.NewEmptyRange(0),
		claimsComplete: true,
	}
	if cp.Size == 0 {
		c.entryRoot, c.claimRoot = EmptyRoot(), EmptyRoot()
	}
	return c
}

// AlsoRootAt asks the Checker to compute the entries' root at size too (for
// example to compare with an older saved checkpoint); see RootAt.
func (c *Checker) AlsoRootAt(size uint64) {
	c.extraSize = size
	if size == 0 {
		c.extraRoot = EmptyRoot()
	}
}

// RootAt returns the root computed at the size given to AlsoRootAt, or nil
// if that many leaves were not seen.
func (c *Checker) RootAt() []byte { return c.extraRoot }

// Next is the index the next leaf must have.
func (c *Checker) Next() uint64 { return c.n }

// Add adds the next leaf: its hash as recomputed from the entry, and the
// hash the log recorded for it (nil if unknown).
func (c *Checker) Add(leafHash, recorded []byte) error {
	if c.n < c.cp.Size {
		if recorded == nil {
			c.claimsComplete = false
		} else if !c.diff && !equalHash(leafHash, recorded) {
			c.diff, c.firstDiff = true, c.n
			c.fork()
		}
		if err := c.entries.Append(leafHash, nil); err != nil {
			return fmt.Errorf("checker: %w", err)
		}
		if err := c.addClaim(recorded); err != nil {
			return err
		}
	}
	c.n++
	if c.n == c.cp.Size {
		c.entryRoot, _ = c.entries.GetRootHash(nil)
		if c.claims == nil && c.claimsComplete {
			c.claimRoot = c.entryRoot
		}
	}
	if c.n == c.extraSize && c.n <= c.cp.Size {
		c.extraRoot, _ = c.entries.GetRootHash(nil)
	}
	return nil
}

// fork starts the separate tree of recorded hashes: up to here it is
// identical to the tree of entries.
func (c *Checker) fork() {
	if c.claims != nil || !c.claimsComplete {
		return
	}
	hashes := append([][]byte(nil), c.entries.Hashes()...)
	r, err := rangeFactory.NewRange(0, c.entries.End(), hashes)
	if err != nil {
		c.claimsComplete = false
		return
	}
	c.claims, c.claimN = r, c.entries.End()
}

func (c *Checker) addClaim(recorded []byte) error {
	if c.claims == nil || !c.claimsComplete || recorded == nil || c.claimN >= c.cp.Size {
		return nil
	}
	// Copy: compact.Range keeps the slice, and callers reuse buffers.
	if err := c.claims.Append(append([]byte(nil), recorded...), nil); err != nil {
		return fmt.Errorf("checker: %w", err)
	}
	c.claimN++
	if c.claimN == c.cp.Size {
		c.claimRoot, _ = c.claims.GetRootHash(nil)
	}
	return nil
}

// AddRecorded adds the recorded hash of a signed leaf whose entry is
// missing (the entries ended early). With the recorded hashes of all the
// missing leaves, Finish can still tell exactly where entries went
// missing or were altered.
func (c *Checker) AddRecorded(recorded []byte) error {
	if recorded == nil {
		c.claimsComplete = false
		return nil
	}
	c.fork()
	return c.addClaim(recorded)
}

// Fail reports that the entry at Next() is unreadable or out of place (a
// damaged record, a gap or a reordering the caller saw in the framing). If
// that index is covered by the checkpoint it is the first altered one.
// Past the checkpoint it returns nil: unsigned data is the caller's to judge.
func (c *Checker) Fail(reason string) error {
	if c.n >= c.cp.Size {
		return nil
	}
	return &TamperError{Index: c.n, Exact: true, Size: c.cp.Size, Reason: reason}
}

// Finish is called after the last leaf. It returns nil if the leaves
// reproduce the checkpoint's root, and a *TamperError otherwise.
func (c *Checker) Finish() error {
	if c.n >= c.cp.Size && equalHash(c.entryRoot, c.cp.Root) {
		return nil
	}
	// Are the recorded hashes authentic, i.e. do they make the signed root?
	claimsOK := c.claimsComplete && equalHash(c.claimRoot, c.cp.Root)
	switch {
	case claimsOK && c.diff:
		return &TamperError{Index: c.firstDiff, Exact: true, Size: c.cp.Size, Reason: "leaf hash does not match the signed tree"}
	case claimsOK && c.n < c.cp.Size:
		return &TamperError{Index: c.n, Exact: true, Size: c.cp.Size,
			Reason: fmt.Sprintf("missing: the log ends after %d entries but the checkpoint signs %d", c.n, c.cp.Size)}
	case c.n < c.cp.Size:
		lo := c.n
		if c.diff {
			lo = c.firstDiff
		}
		return &TamperError{Index: lo, Exact: false, Size: c.cp.Size,
			Reason: fmt.Sprintf("the log ends after %d entries but the checkpoint signs %d", c.n, c.cp.Size)}
	}
	lo := uint64(0)
	if c.diff {
		lo = c.firstDiff
	}
	return &TamperError{Index: lo, Exact: false, Size: c.cp.Size, Reason: "the entries do not reproduce the signed root hash"}
}

// RecordedHashesMatch reports whether every recorded hash given for a
// signed leaf equalled the leaf's own hash. After a successful Finish, a
// false result means the log's derived hash files are damaged (not its
// entries) and should be rebuilt; FirstMismatch says from where.
func (c *Checker) RecordedHashesMatch() bool { return !c.diff }

// FirstMismatch is the first index whose recorded hash differed from its
// leaf hash (meaningful when RecordedHashesMatch is false).
func (c *Checker) FirstMismatch() uint64 { return c.firstDiff }
