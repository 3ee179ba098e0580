package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// A device that sends ever new undeclared field names, long ones too,
// leaves a bounded number of violation entries, in memory before the
// flush and in the store after it, and every refusal is still counted.
func TestViolationNamesAreBounded(t *testing.T) {
	db := openStore(t)
	createDevice(t, db, "dev_flood")
	p := newPipeline(t, db, Options{})
	const sent = 500
	for i := range sent {
		field := fmt.Sprintf("secret_%d_%s", i, strings.Repeat("v", 200))
		p.Refuse("dev_flood", &RefusedError{DeviceID: "dev_flood", Stream: "temperature", Reason: manifest.ViolUndeclaredField,
			Violation: &manifest.Violation{Stream: "temperature", Field: field, Reason: manifest.ViolUndeclaredField}})
	}
	check := func(where string, vs []store.ViolationCount) {
		t.Helper()
		if len(vs) > store.MaxViolationRows+1 {
			t.Errorf("%s: %d entries for one device, want at most %d", where, len(vs), store.MaxViolationRows+1)
		}
		var n int64
		for _, v := range vs {
			n += v.Count
			if len(v.Field) > store.MaxViolationField {
				t.Errorf("%s: a field name of %d bytes is kept", where, len(v.Field))
			}
		}
		if n != sent {
			t.Errorf("%s: %d refusals counted, want %d", where, n, sent)
		}
	}
	check("pending", p.PendingViolations("dev_flood"))
	p.Close()
	stored, total, err := db.Violations(t.Context(), "dev_flood", 0)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(stored) {
		t.Errorf("%d rows listed of %d", len(stored), total)
	}
	check("stored", stored)
}
