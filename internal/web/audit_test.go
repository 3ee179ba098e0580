package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
)

// fakeAudit keeps recorded events in memory, with the actor filled in
// from the context as auditlog.Log.Record does.
type fakeAudit struct {
	mu     sync.Mutex
	events []auditlog.Event
	fail   bool
}

func (f *fakeAudit) Record(ctx context.Context, ev auditlog.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("log unavailable")
	}
	if ev.Actor.Kind == "" {
		ev.Actor = auditlog.ActorFrom(ctx)
	}
	f.events = append(f.events, ev)
	return nil
}

func (f *fakeAudit) find(action string) []auditlog.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []auditlog.Event
	for _, ev := range f.events {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

func TestChangesAndReadsGoToTheTransparencyLog(t *testing.T) {
	t.Parallel()
	audit := &fakeAudit{}
	h := startHubRecording(t, audit)
	acc := h.setup("alex")
	b := h.browser()
	b.login("alex", goodPassword)

	// A device added through the pages is the person's action.
	b.get("/add?type=thermostat")
	p := b.post("/add", url.Values{"type": {"thermostat"}, "name": {"Kitchen"}})
	deviceID := strings.TrimSuffix(strings.TrimPrefix(p.url, "/devices/"), "/credential")
	evs := audit.find(auditlog.ActionCredentialCreate)
	if len(evs) != 1 || evs[0].Actor != (auditlog.Actor{Kind: auditlog.ActorPerson, ID: acc.ID}) || evs[0].Subject.Device != deviceID {
		t.Errorf("device creation logged as %+v", evs)
	}

	// A device page without readings reads nothing; with readings, the
	// read is logged before the page shows them.
	b.get("/devices/" + deviceID)
	if n := len(audit.find(auditlog.ActionReadingsRead)); n != 0 {
		t.Errorf("%d reads logged for a page without readings", n)
	}
	if err := h.submit(deviceID, "temperature", `{"celsius": 22.75}`); err != nil {
		t.Fatal(err)
	}
	p = b.get("/devices/" + deviceID)
	evs = audit.find(auditlog.ActionReadingsRead)
	if len(evs) != 1 {
		t.Fatalf("%d reads logged, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Actor.ID != acc.ID || ev.Household != acc.HouseholdID || ev.Subject.Device != deviceID || ev.Detail["readings"] != "1" {
		t.Errorf("read logged as %+v", ev)
	}
	if !strings.Contains(p.body, "22.75") {
		t.Error("the page does not show the reading")
	}

	// When the read cannot be logged, the readings are not shown.
	audit.mu.Lock()
	audit.fail = true
	audit.mu.Unlock()
	p = b.get("/devices/" + deviceID)
	if p.status != http.StatusInternalServerError || strings.Contains(p.body, "22.75") {
		t.Errorf("with the log down the page answered %d and shows the reading: %v", p.status, strings.Contains(p.body, "22.75"))
	}
}
