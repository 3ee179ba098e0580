package logformat

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Checkpoint is the body of a checkpoint note in the C2SP tlog-checkpoint
// format used by Certificate Transparency logs built on transparency-dev
// and (in spirit) by the Go checksum database:
//
//	<origin>\n
//	<tree size, decimal>\n
//	<root hash, standard base64>\n
//
// followed, once signed, by a blank line and note signature lines
// (golang.org/x/mod/sumdb/note).
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// Marshal returns the checkpoint body (the text that is signed).
func (c Checkpoint) Marshal() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// ParseCheckpoint parses a checkpoint body (the note text, without
// signatures). Extension lines after the root hash are allowed and ignored,
// as the format requires.
func ParseCheckpoint(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("checkpoint: text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("checkpoint: %d lines, want at least 3 (origin, size, root hash)", len(lines))
	}
	origin := lines[0]
	if origin == "" {
		return Checkpoint{}, errors.New("checkpoint: empty origin line")
	}
	size, err := parseDecimal(lines[1])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: tree size line %q: %w", lines[1], err)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return Checkpoint{}, fmt.Errorf("checkpoint: root hash line %q is not a base64 %d-byte hash", lines[2], HashSize)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// parseDecimal accepts only the canonical decimal form (no sign, no
// leading zeros), so that one tree size has exactly one spelling.
func parseDecimal(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a canonical decimal number")
	}
	return strconv.ParseUint(s, 10, 64)
}

// State is one checkpoint state slot: the latest signed checkpoint plus the
// writer's bookkeeping. The slot file is
//
//	candor-auditlog-state/1 seq=<n> synced=<B> synced-offset=<byte offset> crc32c=<8 hex digits>\n
//	<signed checkpoint note>
//
// where the CRC-32C covers the first line up to (not including) " crc32c="
// plus a newline and the note. Synced says that the derived files
// (offsets, node hashes) were flushed to disk for entries [0, Synced), and
// SyncedOffset is where entry Synced starts in the entries file; the writer
// rebuilds derived data only from there after a crash.
type State struct {
	Seq          uint64
	Synced       uint64
	SyncedOffset int64
	Signed       []byte // the signed checkpoint note
}

const stateMagic = "candor-auditlog-state/1"

// MaxStateSize bounds a state slot (a note is a few hundred bytes).
const MaxStateSize = 64 << 10

// Marshal encodes the slot.
func (s State) Marshal() []byte {
	head := fmt.Sprintf("%s seq=%d synced=%d synced-offset=%d", stateMagic, s.Seq, s.Synced, s.SyncedOffset)
	sum := stateCRC(head, s.Signed)
	out := make([]byte, 0, len(head)+32+len(s.Signed))
	out = fmt.Appendf(out, "%s crc32c=%08x\n", head, sum)
	return append(out, s.Signed...)
}

func stateCRC(head string, note []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte(head))
	c = crc32.Update(c, castagnoli, []byte{'\n'})
	return crc32.Update(c, castagnoli, note)
}

// ParseState decodes a slot written by State.Marshal. A torn or damaged
// slot fails here (checksum), before its signature is even looked at.
func ParseState(b []byte) (State, error) {
	if len(b) > MaxStateSize {
		return State{}, fmt.Errorf("state slot: %d bytes, more than %d", len(b), MaxStateSize)
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return State{}, errors.New("state slot: no header line")
	}
	line, note := string(b[:nl]), b[nl+1:]
	head, sumHex, ok := strings.Cut(line, " crc32c=")
	if !ok || len(sumHex) != 8 {
		return State{}, errors.New("state slot: header has no crc32c field")
	}
	sum, err := strconv.ParseUint(sumHex, 16, 32)
	if err != nil {
		return State{}, fmt.Errorf("state slot: crc32c %q: %w", sumHex, err)
	}
	if uint32(sum) != stateCRC(head, note) {
		return State{}, errors.New("state slot: checksum does not match (torn or damaged write)")
	}
	f := strings.Split(head, " ")
	if len(f) != 4 || f[0] != stateMagic {
		return State{}, fmt.Errorf("state slot: header %q is not %s", head, stateMagic)
	}
	var s State
	vals := make([]uint64, 3)
	for i, name := range []string{"seq=", "synced=", "synced-offset="} {
		v, ok := strings.CutPrefix(f[i+1], name)
		if !ok {
			return State{}, fmt.Errorf("state slot: field %d is not %s", i+1, strings.TrimSuffix(name, "="))
		}
		if vals[i], err = parseDecimal(v); err != nil {
			return State{}, fmt.Errorf("state slot: %s%s: %w", name, v, err)
		}
	}
	if vals[2] > 1<<62 {
		return State{}, errors.New("state slot: synced-offset out of range")
	}
	s.Seq, s.Synced, s.SyncedOffset = vals[0], vals[1], int64(vals[2])
	s.Signed = append([]byte(nil), note...)
	return s, nil
}
