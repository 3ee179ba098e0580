// Package verify checks Candor's transparency log without trusting the hub
// that wrote it. It needs only the hub's public verifier key (a note key
// string such as "candor.audit/3f9a1c2e+1a2b3c4d+AXo...") and works offline:
//
//   - Open a signed checkpoint and check its signature (ParseCheckpoint).
//   - Check that a log only grew between an old checkpoint someone saved and
//     a newer one (Consistency), and that an entry is in the log
//     (Inclusion); both per RFC 6962 / RFC 9162 using transparency-dev/merkle.
//   - Check a whole export (Export) or a log directory or copy of one (Dir)
//     by recomputing the tree, and name the first index that was altered.
//
// # The first bad index
//
// When a log or export no longer matches its signed checkpoint, the
// *TamperError names the lowest index whose entry differs from what the
// checkpoint signs: for an edited entry, that entry; for a deleted one, its
// index (its successor now stands there); for two swapped neighbours k and
// k+1, k; for an inserted entry, the index it took. This is exact (Exact
// is true) whether or not the forger fixed up record checksums and
// indices, as long as the per-entry hashes recorded at append time (the
// log's level-0 node file, an export's leaf_hash) were left alone; if they
// were rewritten too, the error still fires but gives only a lower bound.
//
// It deliberately does not import the writer (package auditlog): what it
// trusts is the RFC 6962 hashing, the note signature and the formats in
// package logformat, nothing the hub computed. The writer, in turn, uses
// this package's Checker at start-up, so the hub and an auditor reach the
// same verdict on the same bytes.
package verify

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/candor-iot/candor/internal/auditlog/logformat"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// ErrTampered is wrapped by every error that means the log, an entry or an
// export no longer matches what the hub signed: altered, deleted, reordered
// or rolled back entries, failed inclusion or consistency proofs. On a disk
// there is no telling deliberate tampering from corruption; either way the
// signed history no longer holds.
var ErrTampered = errors.New("audit log altered")

// ErrCheckpoint is wrapped by errors about a checkpoint that cannot be
// trusted at all: malformed, or not signed by the given key.
var ErrCheckpoint = errors.New("invalid checkpoint")

// TamperError names where a log stops matching its signed checkpoint.
type TamperError struct {
	// Index is the first altered index when Exact, otherwise the lowest
	// index that may have been altered.
	Index uint64
	// Exact says every entry before Index is intact and Index itself is
	// not. It is false only when the recorded per-entry hashes were
	// altered along with the entries, so only the checkpoint root remains.
	Exact bool
	// Size is the tree size of the checkpoint the log was checked against.
	Size   uint64
	Reason string
}

func (e *TamperError) Error() string {
	if e.Exact {
		return fmt.Sprintf("entry %d: %s: the log was altered at index %d (entries before it are intact)", e.Index, e.Reason, e.Index)
	}
	return fmt.Sprintf("%s: the log was altered at or after index %d and before %d (the recorded entry hashes were altered too, so the exact index is unknown)", e.Reason, e.Index, e.Size)
}

// Unwrap makes errors.Is(err, ErrTampered) true.
func (e *TamperError) Unwrap() error { return ErrTampered }

// hasher is the RFC 6962 SHA-256 tree hasher.
var hasher = rfc6962.DefaultHasher

// LeafHash returns the RFC 6962 leaf hash of entry data:
// SHA-256(0x00 || data).
func LeafHash(data []byte) []byte { return hasher.HashLeaf(data) }

// EmptyRoot is the root hash of the empty tree: SHA-256 of no bytes.
func EmptyRoot() []byte { return hasher.EmptyRoot() }

// Checkpoint is a checkpoint whose signature was verified.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Signed is the signed note, as received.
	Signed []byte
}

// ParseCheckpoint parses a signed checkpoint note and checks that it is
// signed by verifierKey and that its origin line is the key's name. Other
// signatures (for example by witnesses) are allowed and ignored.
func ParseCheckpoint(signed []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: verifier key: %v", ErrCheckpoint, err)
	}
	return parseCheckpoint(signed, v)
}

func parseCheckpoint(signed []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return Checkpoint{}, fmt.Errorf("%w: not signed by %s", ErrCheckpoint, v.Name())
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	body, err := logformat.ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if body.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key name %q", ErrCheckpoint, body.Origin, v.Name())
	}
	return Checkpoint{Origin: body.Origin, Size: body.Size, Root: body.Root, Signed: append([]byte(nil), signed...)}, nil
}

// Consistency checks that the tree of newer extends the tree of older
// (RFC 9162 section 2.1.4), i.e. the log only grew between them. proof is
// a consistency proof from older.Size to newer.Size.
func Consistency(older, newer Checkpoint, proofHashes [][]byte) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("%w: checkpoints are of different logs (%q, %q)", ErrCheckpoint, older.Origin, newer.Origin)
	}
	if newer.Size < older.Size {
		return fmt.Errorf("%w: the log shrank from %d to %d entries (rolled back)", ErrTampered, older.Size, newer.Size)
	}
	if err := proof.VerifyConsistency(hasher, older.Size, newer.Size, proofHashes, older.Root, newer.Root); err != nil {
		return fmt.Errorf("%w: tree of size %d is not a prefix of the tree of size %d: %v", ErrTampered, older.Size, newer.Size, err)
	}
	return nil
}

// Inclusion checks that data is entry index of the tree in cp (RFC 9162
// section 2.1.3), given its inclusion proof.
func Inclusion(cp Checkpoint, index uint64, data []byte, proofHashes [][]byte) error {
	return InclusionHash(cp, index, LeafHash(data), proofHashes)
}

// InclusionHash is Inclusion for a leaf hash.
func InclusionHash(cp Checkpoint, index uint64, leafHash []byte, proofHashes [][]byte) error {
	if index >= cp.Size {
		return &TamperError{Index: index, Exact: true, Size: cp.Size, Reason: fmt.Sprintf("index is beyond the checkpoint's %d entries", cp.Size)}
	}
	if err := proof.VerifyInclusion(hasher, index, cp.Size, leafHash, proofHashes, cp.Root); err != nil {
		return &TamperError{Index: index, Exact: true, Size: cp.Size, Reason: "inclusion proof does not verify against the checkpoint"}
	}
	return nil
}

// equalHash compares two hashes (nil never matches).
func equalHash(a, b []byte) bool { return a != nil && bytes.Equal(a, b) }
