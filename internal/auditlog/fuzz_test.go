package auditlog

import (
	"bytes"
	"testing"
)

// FuzzParseEvent: the entry decoder never panics, and anything it accepts
// is a valid event that encodes back to exactly the same leaf bytes.
func FuzzParseEvent(f *testing.F) {
	for i := range kinds {
		ev := event(i)
		f.Add(ev.appendCanonical(nil))
	}
	f.Add([]byte(`{"action":"a.b","actor":{"kind":"hub"},"time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"action":"a.b","actor":{"kind":"hub"},"subject":{},"time":"2026-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		if !bytes.Equal(ev.appendCanonical(nil), b) {
			t.Fatalf("accepted a non-canonical entry")
		}
	})
}
