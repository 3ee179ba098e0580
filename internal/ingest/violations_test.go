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

// Violations being written to the store stay visible through
// PendingViolations until the write is done, as counters do: a reader in
// between found them neither pending nor stored.
func TestViolationsVisibleWhileWritten(t *testing.T) {
	fs := newFakeStore()
	fs.violationEntered, fs.violationGate = make(chan struct{}), make(chan struct{})
	p := newPipeline(t, fs, Options{})
	p.Refuse("dev_a", &RefusedError{DeviceID: "dev_a", Stream: "temperature", Reason: manifest.ViolUndeclaredField,
		Violation: &manifest.Violation{Stream: "temperature", Field: "wifi", Reason: manifest.ViolUndeclaredField}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.FlushCounters()
	}()
	<-fs.violationEntered
	if vs := p.PendingViolations("dev_a"); len(vs) != 1 || vs[0].Count != 1 || vs[0].Field != "wifi" {
		t.Errorf("while written: %+v, want the one violation", vs)
	}
	close(fs.violationGate)
	<-done
	if vs := p.PendingViolations("dev_a"); len(vs) != 0 {
		t.Errorf("once written: %+v still pending", vs)
	}
}
