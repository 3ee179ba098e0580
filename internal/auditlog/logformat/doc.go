// Package logformat defines the bytes of Candor's transparency log: the
// on-disk layout the hub writes (entries file, node-hash files, checkpoint
// state slots) and the export format an offline verifier reads. It holds no
// policy and performs no verification beyond framing; the writer
// (package auditlog) and the independent verifier (package verify) both build
// on it, so the two can never disagree about what a byte means.
//
// # Directory layout
//
//	LOCK              advisory lock: one writer per directory
//	log.key, log.pub  the hub's note signing key (0600) and verifier key (optional here)
//	entries.log       FileHeader, then one record per entry (the source of truth)
//	checkpoint.0/.1   two state slots, written alternately (see State)
//	offsets           derived: entry i starts at the big-endian uint64 at 8*i
//	nodes/level-NN    derived: node (NN, i) of the RFC 6962 tree at 32*i,
//	                  for every perfect subtree (ephemeral nodes are not stored)
//
// Derived files can be rebuilt from entries.log at any time; only the
// entries and the signed checkpoints carry information.
//
// # Entry records
//
// A record is a 16-byte header followed by the payload (the canonical JSON
// of one event, which is also the RFC 6962 leaf data):
//
//	offset 0  uint32 big-endian  payload length (1..MaxPayload)
//	offset 4  uint32 big-endian  CRC-32C (Castagnoli) of bytes 0..3, 8..15 and the payload
//	offset 8  uint64 big-endian  the entry's index in the log
//	offset 16 payload
//
// The checksum detects torn and damaged writes; the index makes a deleted or
// reordered record visible at the exact position. Neither resists a
// deliberate forger (who can recompute both): that is the Merkle tree's and
// the signed checkpoint's job.
//
// # Export
//
// An export is JSON lines (see ExportHeader, ExportEntry, ExportEnd): one
// header with the signed checkpoint, one line per entry, one end line. Each
// entry carries its event as a JSON object; the leaf data is the canonical
// form of that object (see Canonicalize), so reformatting the export with a
// JSON tool does not break verification.
package logformat
