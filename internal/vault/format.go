package vault

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// The sealed form of a reading:
//
//	offset size
//	0      1    version: 0xC1 (never the first byte of UTF-8 text, so a
//	            sealed reading can never be mistaken for a JSON payload)
//	1      8    key id: which of the owner's data keys (chains)
//	9      4    epoch: big-endian, which epoch of that key (keys.go)
//	13     8    counter: big-endian, unique per (key, epoch)
//	21     n+16 AES-256-GCM ciphertext and tag of the n-byte reading
//
// The 12 bytes at offset 9 (epoch ‖ counter) are the GCM nonce. The header
// is not part of the GCM additional data, yet it is authenticated all the
// same: a different key id or epoch selects a different key, a different
// counter a different nonce, and only version 0xC1 is accepted.

const (
	version = 0xC1
	// KeyIDSize is the length of a key id in the header.
	KeyIDSize = 8
	// HeaderSize is the length of the header in front of the ciphertext.
	HeaderSize = 1 + KeyIDSize + 4 + 8
	tagSize    = 16
	// Overhead is how many bytes sealing adds to a reading.
	Overhead = HeaderSize + tagSize
)

// KeyID names one data key (chain) of a key owner. It is random, so key
// ids of different owners do not collide in practice; they are unique per
// owner by construction.
type KeyID [KeyIDSize]byte

// String returns the id as the store keeps it: 16 lowercase hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseKeyID is the inverse of KeyID.String.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	if len(s) != 2*KeyIDSize {
		return id, fmt.Errorf("vault: key id %q: want %d hex digits", s, 2*KeyIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("vault: key id %q: %w", s, err)
	}
	return id, nil
}

// Header is the clear part of a sealed reading.
type Header struct {
	KeyID   KeyID
	Epoch   uint32
	Counter uint64
}

// ParseHeader reads the header of a sealed reading. It fails with
// ErrMalformed unless b is long enough to hold a header and a tag and
// starts with the version byte. It never allocates.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < Overhead {
		return Header{}, errTooShort
	}
	if b[0] != version {
		return Header{}, errVersion
	}
	var h Header
	copy(h.KeyID[:], b[1:1+KeyIDSize])
	h.Epoch = binary.BigEndian.Uint32(b[9:13])
	h.Counter = binary.BigEndian.Uint64(b[13:21])
	return h, nil
}

// IsSealed reports whether b looks like a sealed reading (rather than a
// plain payload stored before encryption at rest existed).
func IsSealed(b []byte) bool {
	_, err := ParseHeader(b)
	return err == nil
}

var (
	errTooShort = fmt.Errorf("%w: shorter than a header and tag", ErrMalformed)
	errVersion  = fmt.Errorf("%w: unknown version", ErrMalformed)
)

// putHeader writes h into b[:HeaderSize].
func putHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	b[0] = version
	copy(b[1:1+KeyIDSize], h.KeyID[:])
	binary.BigEndian.PutUint32(b[9:13], h.Epoch)
	binary.BigEndian.PutUint64(b[13:21], h.Counter)
}

// nonce returns the GCM nonce inside a sealed reading's header.
func nonce(sealed []byte) []byte { return sealed[9:HeaderSize] }

// AppendReadingAAD appends the canonical additional data of one reading to
// dst: what a sealed reading is bound to, so a ciphertext moved to another
// device, stream or time fails to open. Each field is length-prefixed, so
// no two different triples encode alike. ts is taken in nanoseconds UTC.
//
// The store assigns a reading's Seq only when the batch commits, after
// sealing, so the time the hub accepted the reading (Reading.Time) is the
// natural third field; any value fixed before sealing and stored next to
// the ciphertext works.
func AppendReadingAAD(dst []byte, deviceID, stream string, ts time.Time) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(deviceID)))
	dst = append(dst, deviceID...)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	return binary.BigEndian.AppendUint64(dst, uint64(ts.UnixNano()))
}

// grow returns dst extended by n bytes and the n-byte tail, reusing dst's
// capacity when it suffices.
func grow(dst []byte, n int) (whole, tail []byte) {
	total := len(dst) + n
	if cap(dst) >= total {
		whole = dst[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, dst)
	}
	return whole, whole[len(dst):]
}
