package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// Readings are stored in an ordinary rowid table whose INTEGER PRIMARY
// KEY packs the device key and the seq into one int64 (issue #19):
//
//	id = dkey << seqBits | seq
//
// Until schema version 24 the table was WITHOUT ROWID with PRIMARY KEY
// (dkey, seq), an index b-tree whose interior cells carry whole rows
// (about 175 bytes with a sealed 100-byte reading): 21 cells to a 4 KiB
// interior page, so the tree grew a level every 21× of history (4 levels
// at 100k readings, 6 at 10M) and every append and query paid for it.
// A rowid table's interior cells hold only the 8-byte key, hundreds to a
// page. The packed key keeps the order of (dkey, seq), so a device's
// readings stay contiguous and "the device's readings with seq in
// [lo, hi]" is the rowid range [dkey<<seqBits | lo, dkey<<seqBits | hi].
//
// seqBits splits the 63 usable bits (ids stay positive): seq, the global
// counter of readings ever appended (reading_seq), gets 43 bits, about
// 8.8 × 10¹² readings: 27 years at 10,000 readings a second, every
// second; the device key (reading_devices, AUTOINCREMENT, never reused)
// gets the other 20, about a million devices ever given a key (a device
// purged of every reading and sending again gets a new one). A reading
// that would exceed either is refused with a *KeyRangeError and stored
// nowhere; nothing ever wraps. The rest of its batch is stored
// (store.RefusedReadingsError): a device given no key in range keeps no
// other device's readings out, and once the seqs run out the readings
// that still fitted are kept.
const (
	seqBits = 43
	// MaxReadingSeq is the highest seq a reading can be stored under.
	MaxReadingSeq int64 = 1<<seqBits - 1
	// MaxDeviceKey is the highest device key readings can be stored
	// under.
	MaxDeviceKey int64 = 1<<(63-seqBits) - 1
)

// KeyRangeError reports a reading refused because its device key or seq
// does not fit the packed key (MaxDeviceKey, MaxReadingSeq). The hub
// cannot store further readings of that kind until an operator acts (the
// limits are documented in docs/ARCHITECTURE.md).
type KeyRangeError struct {
	// DeviceID is the reading's device; empty when the error is about
	// a whole file (a migration's check).
	DeviceID       string
	DeviceKey, Seq int64
}

func (e *KeyRangeError) Error() string {
	var dev string
	if e.DeviceID != "" {
		dev = fmt.Sprintf("device %q: ", e.DeviceID)
	}
	if e.DeviceKey > MaxDeviceKey || e.DeviceKey < 1 {
		return fmt.Sprintf("%sdevice key %d out of range (1…%d): too many devices have been given keys", dev, e.DeviceKey, int64(MaxDeviceKey))
	}
	return fmt.Sprintf("%sreading seq %d out of range (1…%d): the reading counter is exhausted", dev, e.Seq, int64(MaxReadingSeq))
}

// packKey returns the packed key of (dkey, seq), or a *KeyRangeError if
// either does not fit.
func packKey(dkey, seq int64) (int64, error) {
	if dkey < 1 || dkey > MaxDeviceKey || seq < 1 || seq > MaxReadingSeq {
		return 0, &KeyRangeError{DeviceKey: dkey, Seq: seq}
	}
	return dkey<<seqBits | seq, nil
}

// seqOfKey is the seq a packed key holds.
func seqOfKey(id int64) int64 { return id & MaxReadingSeq }

// SQL fragments for the packed key, with the constants written out: they
// are part of statement texts, which are prepared once.
var (
	// sqlSeqBits shifts a device key into place: dkey << sqlSeqBits.
	sqlSeqBits = strconv.Itoa(seqBits)
	// sqlMaxSeq is MaxReadingSeq, also the mask of a key's seq.
	sqlMaxSeq = strconv.FormatInt(MaxReadingSeq, 10)
)

// keyBounds returns the inclusive seq bounds of sp, clamped to the seqs a
// key can hold, for a rowid range: the device's readings in sp have ids
// in [base+lo, base+hi], base = dkey << seqBits.
func (sp seqSpan) keyBounds() (lo, hi int64) {
	if sp.from > MaxReadingSeq {
		return 1, 0 // beyond every seq: an empty range
	}
	lo, hi = max(sp.from, 0), MaxReadingSeq
	if sp.to != 0 {
		hi = min(sp.to-1, MaxReadingSeq)
	}
	return lo, hi
}

// packedCols are the packed table's columns an insert gives, in the order
// of the stage's columns after (dkey, seq).
const packedCols = `(id, stream, ts, manifest_version, payload)`

// deviceRange is the FROM clause and first condition of a read of one
// device's readings from the packed table, as r: its arguments are the
// device id and the range's inclusive seq bounds (seqSpan.keyBounds).
// reading_devices, one row by its unique device_id, drives the join (a
// CROSS JOIN keeps that order), so the readings are a rowid range, in key
// (that is seq) order; the key lookup runs once per statement part.
var deviceRange = `reading_devices d CROSS JOIN readings r
	WHERE d.device_id = ? AND r.id BETWEEN (d.dkey << ` + sqlSeqBits + `) + ? AND (d.dkey << ` + sqlSeqBits + `) + ?`

// stageKey is the packed key of a staged reading, for reads that merge
// the stage with the packed table by key.
var stageKey = `(dkey << ` + sqlSeqBits + ` | seq)`

// readingKeyOf returns the device's key, ok false when it has none (no
// readings were stored since it last lost them all).
func readingKeyOf(ctx context.Context, q queryRower, deviceID string) (dkey int64, ok bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT dkey FROM reading_devices WHERE device_id = ?`, deviceID).Scan(&dkey)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("device key: %w", err)
	}
	return dkey, true, nil
}
