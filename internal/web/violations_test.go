package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// A device that sends ever new undeclared field names gets a bounded
// list on its page: the names beyond the hub's limit counted in one row,
// the newest rows shown, and how many older rows were left off.
func TestDevicePageBoundsViolations(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	acc := h.setup("alex")
	d, _ := h.addDevice(acc.HouseholdID, "Hall", "thermostat")
	// Flushed earlier: 40 names, of which the store keeps 32 and counts
	// the rest together.
	var old []store.ViolationCount
	for i := range 40 {
		old = append(old, store.ViolationCount{DeviceID: d.ID, Stream: "temperature", Field: fmt.Sprintf("old_%02d", i),
			Reason: "undeclared_field", Count: 1, LastAt: time.Now().Add(-time.Hour)})
	}
	if err := h.st.AddViolations(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	// Not flushed yet: 40 more names through the pipeline.
	for i := range 40 {
		if err := h.submit(d.ID, "temperature", fmt.Sprintf(`{"celsius": 20, "humidity_percent": 40, "new_%02d": 1}`, i)); err == nil {
			t.Fatal("an undeclared field was accepted")
		}
	}
	b := h.browser()
	b.login("alex", goodPassword)
	p := b.get("/devices/" + d.ID)
	if p.status != 200 {
		t.Fatalf("device page: %d", p.status)
	}
	refused := func(p page2) string {
		section := p.body[strings.Index(p.body, `id="refused-title"`):]
		return section[:strings.Index(section, "</section>")]
	}
	section := refused(p)
	// As the store will hold them: 32 old names and one overflow row
	// counting the 8 other old names and the 40 new ones (it listed 32
	// new names as well, rows the store never keeps).
	if rows := strings.Count(section, "<tr><th scope=\"row\">"); rows != store.MaxViolationRows+1 {
		t.Errorf("%d violation rows shown, want %d", rows, store.MaxViolationRows+1)
	}
	mustContain(t, "refused data", section, "counted together")
	if strings.Contains(section, "new_") {
		t.Error("a name the store will count in the overflow row is listed")
	}
	// The same once the pending counts are written.
	h.in.FlushCounters()
	if again := refused(b.get("/devices/" + d.ID)); strings.Count(again, "<tr><th scope=\"row\">") != store.MaxViolationRows+1 {
		t.Errorf("%d violation rows shown once written, want %d", strings.Count(again, "<tr><th scope=\"row\">"), store.MaxViolationRows+1)
	}
}
