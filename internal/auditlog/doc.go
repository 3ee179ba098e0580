// Package auditlog is Candor's transparency log: an append-only,
// tamper-evident record of every event that touches personal data or
// trust — reads and forwarding of readings, consent changes, deletion and
// crypto-shredding, manifest changes, device credentials, accounts and
// admin actions, security findings and quarantines. Each entry says who
// (Actor), did what (Action), to which data (Subject: ids, never values),
// why (Purpose) and when.
//
// It serves the accountability principle of section 3 of the IGF Dynamic
// Coalition on IoT's "Internet of Things Good Practice" paper: a household
// should be able to see what was done with its data and by whom, and be
// able to trust that account rather than take it on faith. So the log is
// built the way Certificate Transparency and the Go checksum database
// are:
//
//   - Entries are the leaves of a Merkle tree hashed per RFC 6962 / RFC 9162
//     section 2.1 (leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || l
//     || r)), using github.com/transparency-dev/merkle for proofs and
//     compact ranges.
//   - After every committed batch the hub signs a checkpoint (C2SP
//     tlog-checkpoint: origin, size, root hash) as a golang.org/x/mod/sumdb/note
//     with its Ed25519 log key (Key). Anyone holding the public verifier
//     key and an old checkpoint can check that the log only grew
//     (consistency proof) and that an entry is in it (inclusion proof),
//     offline, with package verify, which shares no code with this writer
//     beyond the formats in package logformat.
//
// # Durability and crash safety
//
// Append returns only after the entry is written and fsynced and a
// checkpoint covering it is signed and fsynced (group commit: concurrent
// appends share those fsyncs). Hence everything after the newest
// checkpoint on disk was never acknowledged, and Open may safely cut a
// torn write there (reporting it in Recovery and in an "auditlog.recover"
// entry) — while anything wrong inside the signed part is tampering, and
// Open refuses with a *TamperError naming the first altered index, leaving
// the files untouched.
//
// # What it does not protect against
//
// The signing key lives with the hub, so someone who controls the hub's
// machine can sign a rewritten history. That is caught only by comparing
// with checkpoints kept elsewhere (a household's saved checkpoint, an
// export, a future witness): verify.Consistency or verify.Export with
// ExportOptions.Trusted then fails. Likewise, a selection export proves
// that its entries are in the log, not that no entry about the person was
// left out.
//
// # Why not tessera
//
// transparency-dev/tessera is the maintained library for such logs and
// has a POSIX back-end, but it fits this job less well than its merkle
// core: it sequences entries and integrates and publishes checkpoints
// asynchronously at an interval (the POSIX driver's minimum is 100 ms), so
// an acknowledged entry can sit beyond the last signed checkpoint, which
// would blur the line this package draws between "torn write, cut it" and
// "tampering, refuse". Its storage is the C2SP tlog-tiles layout meant for
// static serving and witnessing, and it brings a far larger dependency
// tree into a single household binary; start-up verification with
// first-bad-index reporting would still have to be built on top. The
// tree, hashes and checkpoints here are the standard ones, so serving the
// same log as tiles later (or moving to tessera) keeps every root and
// checkpoint valid.
package auditlog
