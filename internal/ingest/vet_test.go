package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/store"
)

// Vet applies a reading's rules to data that is not stored (an MQTT will
// at CONNECT): refusals are the same typed errors as a reading's and are
// counted against the device; nothing is ever queued for storage.
func TestVetRefusesLikeAReadingAndStoresNothing(t *testing.T) {
	st := newFakeStore()
	p := newPipeline(t, st, Options{MaxPayloadBytes: 32})
	ctx := context.Background()
	tests := []struct {
		stream, payload, reason string
	}{
		{"status", `{"online":false}`, ""},
		{"status", `offline`, ReasonNotJSON},
		{"status", `{"online":false,"why":"` + strings.Repeat("x", 32) + `"}`, ReasonTooLarge},
		{"control", `{"online":false}`, ReasonBadStream},
		{"Status", `{"online":false}`, ReasonBadStream},
	}
	for _, tc := range tests {
		err := p.Vet(ctx, "dev_a", tc.stream, []byte(tc.payload))
		var re *RefusedError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("Vet(%s, %s) = %v, want accepted", tc.stream, tc.payload, err)
		case tc.reason != "" && (!errors.As(err, &re) || re.Reason != tc.reason):
			t.Errorf("Vet(%s, %s) = %v, want a refusal for %s", tc.stream, tc.payload, err, tc.reason)
		}
	}
	if got := p.PendingCounters("dev_a"); got != (store.DeviceCounters{Refused: 4}) {
		t.Errorf("counters after Vet: %+v, want 4 refused", got)
	}
	p.Close() // flushes: nothing was queued, so nothing is written
	if batches, rows, _, _ := st.snapshot(); len(batches) != 0 || len(rows) != 0 {
		t.Errorf("Vet stored readings: batches %v rows %v", batches, rows)
	}
}
