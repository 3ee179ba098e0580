package logformat

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// File and directory names inside a log directory.
const (
	EntriesFile = "entries.log"
	OffsetsFile = "offsets"
	NodesDir    = "nodes"
	LockFile    = "LOCK"
	KeyFile     = "log.key"
	PubFile     = "log.pub"
)

// StateFiles are the two checkpoint state slots, written alternately so that
// a torn write of one always leaves the other intact.
var StateFiles = [2]string{"checkpoint.0", "checkpoint.1"}

// LevelFile is the name, relative to the log directory, of the file holding
// the node hashes of one tree level.
func LevelFile(level uint) string {
	return fmt.Sprintf("%s/level-%02d", NodesDir, level)
}

// HashSize is the size of every node hash (SHA-256).
const HashSize = 32

// FileHeader starts every entries file; it names the format and version.
var FileHeader = []byte("candor-audit-v1\n")

// RecordHeaderSize is the size of a record's fixed header.
const RecordHeaderSize = 16

// MaxPayload bounds a record's payload. Events are far smaller (the writer
// refuses events over 16 KiB); the bound keeps a damaged length field from
// making a reader allocate gigabytes.
const MaxPayload = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Reasons a record is unreadable. A RecordError carries one of them.
var (
	ErrShortRecord = errors.New("record is cut short")
	ErrBadLength   = errors.New("record length is impossible")
	ErrChecksum    = errors.New("record checksum does not match")
	ErrFileHeader  = errors.New("not a Candor audit log entries file (bad header)")
)

// RecordError reports an unreadable record and where it starts.
type RecordError struct {
	Offset int64 // byte offset of the record in the entries file
	Err    error // ErrShortRecord, ErrBadLength or ErrChecksum
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record at byte %d: %v", e.Offset, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// RecordSize is the number of bytes a record with this payload occupies.
func RecordSize(payloadLen int) int { return RecordHeaderSize + payloadLen }

// AppendRecord appends the record for (index, payload) to dst.
func AppendRecord(dst []byte, index uint64, payload []byte) []byte {
	var h [RecordHeaderSize]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint64(h[8:16], index)
	binary.BigEndian.PutUint32(h[4:8], recordCRC(h[:], payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

func recordCRC(h []byte, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[0:4])
	c = crc32.Update(c, castagnoli, h[8:16])
	return crc32.Update(c, castagnoli, payload)
}

// Record is one decoded entry record.
type Record struct {
	Index   uint64
	Payload []byte
	Offset  int64 // where the record starts in the entries file
}

// DecodeRecord decodes the record at the start of b, which starts at byte
// offset off of the file (used only in errors). It returns the record and
// its size. An error is a *RecordError; the returned payload aliases b.
func DecodeRecord(b []byte, off int64) (Record, int, error) {
	if len(b) < RecordHeaderSize {
		return Record{}, 0, &RecordError{Offset: off, Err: ErrShortRecord}
	}
	n := binary.BigEndian.Uint32(b[0:4])
	if n == 0 || n > MaxPayload {
		return Record{}, 0, &RecordError{Offset: off, Err: ErrBadLength}
	}
	size := RecordHeaderSize + int(n)
	if len(b) < size {
		return Record{}, 0, &RecordError{Offset: off, Err: ErrShortRecord}
	}
	payload := b[RecordHeaderSize:size]
	if binary.BigEndian.Uint32(b[4:8]) != recordCRC(b[:RecordHeaderSize], payload) {
		return Record{}, 0, &RecordError{Offset: off, Err: ErrChecksum}
	}
	return Record{Index: binary.BigEndian.Uint64(b[8:16]), Payload: payload, Offset: off}, size, nil
}

// RecordReader reads records one after another from an entries file.
type RecordReader struct {
	r     *bufio.Reader
	off   int64
	hdr   [RecordHeaderSize]byte
	reuse bool
	buf   []byte
}

// ReusePayloads makes Next return payloads that stay valid only until the
// next call, sparing an allocation per record for callers that only hash
// them (verification scans of millions of entries).
func (rr *RecordReader) ReusePayloads() { rr.reuse = true }

// NewRecordReader reads records from r, whose first byte is at offset off of
// the entries file. To read a whole file, pass the file and 0: the reader
// checks FileHeader first.
func NewRecordReader(r io.Reader, off int64) *RecordReader {
	return &RecordReader{r: bufio.NewReaderSize(r, 256<<10), off: off}
}

// Offset is the byte offset of the next record (after a failed Next: of the
// record that could not be read).
func (rr *RecordReader) Offset() int64 { return rr.off }

// Next returns the next record. It returns io.EOF when the input ends
// exactly at a record boundary, and a *RecordError for a record that is cut
// short, has an impossible length or fails its checksum; after an error,
// Offset still names the start of the bad record.
func (rr *RecordReader) Next() (Record, error) {
	if rr.off == 0 {
		var fh [len("candor-audit-v1\n")]byte
		n, err := io.ReadFull(rr.r, fh[:])
		if n == 0 && err == io.EOF {
			return Record{}, io.EOF
		}
		if err != nil || string(fh[:]) != string(FileHeader) {
			return Record{}, &RecordError{Offset: 0, Err: ErrFileHeader}
		}
		rr.off = int64(len(FileHeader))
	}
	n, err := io.ReadFull(rr.r, rr.hdr[:])
	if n == 0 && err == io.EOF {
		return Record{}, io.EOF
	}
	if err != nil {
		return Record{}, rr.fail(err, ErrShortRecord)
	}
	size := binary.BigEndian.Uint32(rr.hdr[0:4])
	if size == 0 || size > MaxPayload {
		return Record{}, &RecordError{Offset: rr.off, Err: ErrBadLength}
	}
	var payload []byte
	if rr.reuse {
		if cap(rr.buf) < int(size) {
			rr.buf = make([]byte, size, max(int(size), 4096))
		}
		payload = rr.buf[:size]
	} else {
		payload = make([]byte, size)
	}
	if _, err := io.ReadFull(rr.r, payload); err != nil {
		return Record{}, rr.fail(err, ErrShortRecord)
	}
	if binary.BigEndian.Uint32(rr.hdr[4:8]) != recordCRC(rr.hdr[:], payload) {
		return Record{}, &RecordError{Offset: rr.off, Err: ErrChecksum}
	}
	rec := Record{Index: binary.BigEndian.Uint64(rr.hdr[8:16]), Payload: payload, Offset: rr.off}
	rr.off += int64(RecordHeaderSize) + int64(size)
	return rec, nil
}

// fail turns a read error into a RecordError when it is only the end of
// the input, and passes real I/O errors through so that a failing disk is
// never mistaken for a torn record.
func (rr *RecordReader) fail(err error, reason error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &RecordError{Offset: rr.off, Err: reason}
	}
	return fmt.Errorf("read record at byte %d: %w", rr.off, err)
}
