package store

import (
	"fmt"
	"time"
)

// Every engine stores times the same way: int64 nanoseconds since the
// Unix epoch, UTC, with 0 standing for the zero time. Integers compare and
// index cheaply, carry no time zone to get wrong, lose nothing to a
// database's own time type, and let one engine's data be compared with
// another's value for value.

// MinStorableTime and MaxStorableTime bound the times EncodeTime takes.
var (
	MinStorableTime = time.Unix(0, -1<<63).UTC()
	MaxStorableTime = time.Unix(0, 1<<63-1).UTC()
)

// EncodeTime converts t for storage. Times outside what int64 nanoseconds
// can hold (before 1678 or after 2262) are refused rather than silently
// wrapped around.
func EncodeTime(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	if t.Before(MinStorableTime) || t.After(MaxStorableTime) {
		return 0, fmt.Errorf("time %s out of storable range", t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// DecodeTime is the time EncodeTime stored as n.
func DecodeTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// EncodeTimes converts several times at once, failing on the first that
// cannot be stored.
func EncodeTimes(ts ...time.Time) ([]int64, error) {
	out := make([]int64, len(ts))
	for i, t := range ts {
		n, err := EncodeTime(t)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
