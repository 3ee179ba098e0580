package store

import "fmt"

// RefusedReadingsError is what AppendReadings returns when it stored a
// batch except for readings the engine cannot store at all, whatever is
// retried: a limit the hub has reached for one device or for every
// reading, such as the SQLite engine's packed key range
// (sqlite.KeyRangeError). Only the readings listed were refused; they get
// no Seq. Every other reading of the batch is on disk with its Seq set,
// as after a nil return (there may be none: a batch refused whole wrote
// nothing).
//
// AppendReadings returns it as it is, never wrapped: an error that only
// contains one (joined with another, say) is a failure of the whole
// batch, and callers look at the returned error's own type.
//
// The ingest pipeline commits the readings of many devices together, so
// one device past a limit must not keep the others' readings out (nor
// their acknowledgements back): the engine refuses its readings alone.
type RefusedReadingsError struct {
	// Refused are the refused readings, in increasing Index order.
	Refused []RefusedReading
}

// RefusedReading is one reading AppendReadings refused.
type RefusedReading struct {
	Index int   // its position in the batch
	Err   error // why: names the device and the limit, never the payload
}

func (e *RefusedReadingsError) Error() string {
	switch len(e.Refused) {
	case 0:
		return "append readings: no reading refused"
	case 1:
		return fmt.Sprintf("append readings: 1 reading refused, any other of its batch stored: %v", e.Refused[0].Err)
	}
	return fmt.Sprintf("append readings: %d readings refused, any other of their batch stored; the first: %v", len(e.Refused), e.Refused[0].Err)
}

// Unwrap returns every refused reading's error, so errors.As finds the
// engine's reason through the batch's error.
func (e *RefusedReadingsError) Unwrap() []error {
	errs := make([]error, len(e.Refused))
	for i, r := range e.Refused {
		errs[i] = r.Err
	}
	return errs
}
