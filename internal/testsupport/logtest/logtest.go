// Package logtest gives tests a real transparency log (package auditlog)
// in a temporary folder, and reads back what was recorded in it, so the
// services' tests check the events they append without a stand-in.
package logtest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
)

// Open returns a new log in t.TempDir(), closed when the test ends. Close
// it earlier to see how a caller copes with a log that refuses appends.
func Open(t testing.TB) *auditlog.Log {
	t.Helper()
	key, err := auditlog.GenerateKey("test.candor.local")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(context.Background(), filepath.Join(t.TempDir(), "auditlog"), key, auditlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open transparency log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Events returns every event in l, oldest first, with the given action
// only when action is not empty.
func Events(t testing.TB, l *auditlog.Log, action string) []auditlog.Event {
	t.Helper()
	var out []auditlog.Event
	for e, err := range l.Entries(context.Background(), 0, l.Checkpoint().Size) {
		if err != nil {
			t.Fatalf("read transparency log: %v", err)
		}
		if action == "" || e.Event.Action == action {
			out = append(out, e.Event)
		}
	}
	return out
}
