package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/testsupport/logtest"
)

// TestConsentChangesAreRecordedOnceInOneShape changes the same choices
// through the API and through the pages. The consent service records
// them with the recorder it was built with; the transports, which only
// hold the hub's log for reading, record nothing. Both front ends give
// the same event, apart from the record id.
func TestConsentChangesAreRecordedOnceInOneShape(t *testing.T) {
	t.Parallel()
	services := logtest.Open(t)
	h := startHubRecording(t, services)
	alex := h.setup("alex")
	d, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	b := h.browser()
	b.login("alex", goodPassword)

	api := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, h.srv.URL+"/api/v1/devices/"+d.ID+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if p := b.do(req); p.status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", path, p.status, p.body)
		}
	}
	page := func(path string, form func() url.Values) {
		t.Helper()
		b.get("/devices/" + d.ID)
		if p := b.post("/devices/"+d.ID+path, form()); p.status != http.StatusOK {
			t.Fatalf("POST %s: %d", path, p.status)
		}
	}
	toggle := func() url.Values { return toggleForm(t, b.last.body, "setpoint", "dpv:ServiceProvision") }
	routing := func() url.Values { return url.Values{"stream": {"setpoint"}, "keep": {"no"}} }

	tests := []struct {
		name         string
		viaAPI       func()
		viaPages     func()
		stream, kind string
	}{
		{
			name: "a use switched",
			viaAPI: func() {
				api("/consent/setpoint", `{"purpose": "dpv:ServiceProvision", "recipient": "`+consent.RecipientHub+`", "on": false}`)
			},
			viaPages: func() { page("/consent", toggle) },
			stream:   "setpoint", kind: consent.KindConsent,
		},
		{
			name:     "routing chosen",
			viaAPI:   func() { api("/consent/setpoint/routing", `{"keep_on_hub": false}`) },
			viaPages: func() { page("/consent/routing", routing) },
			stream:   "setpoint", kind: consent.KindStorage,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]auditlog.Event
			for i, change := range []func(){tt.viaAPI, tt.viaPages} {
				before := len(logtest.Events(t, services, auditlog.ActionConsentChange))
				change()
				evs := logtest.Events(t, services, auditlog.ActionConsentChange)[before:]
				if len(evs) != 1 {
					t.Fatalf("change %d: %d consent events recorded, want 1", i, len(evs))
				}
				got[i] = evs[0]
			}
			for i, ev := range got {
				if ev.Detail["record"] == "" {
					t.Errorf("event %d names no record: %+v", i, ev)
				}
				delete(ev.Detail, "record")
			}
			want := auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorPerson, ID: alex.ID}, Action: auditlog.ActionConsentChange,
				Household: alex.HouseholdID, Subject: auditlog.Subject{Device: d.ID, Stream: tt.stream}, Purpose: "consent choice"}
			for i, ev := range got {
				if ev.Actor != want.Actor || ev.Action != want.Action || ev.Household != want.Household ||
					ev.Subject != want.Subject || ev.Purpose != want.Purpose || len(ev.Detail) != 1 || ev.Detail["kind"] != tt.kind {
					t.Errorf("through the %s: %+v, want %+v with kind %s", []string{"API", "pages"}[i], ev, want, tt.kind)
				}
			}
		})
	}

	// Nothing about consent reached the log the transports hold.
	if evs := logtest.Events(t, h.alog, auditlog.ActionConsentChange); len(evs) != 0 {
		t.Errorf("a transport recorded consent changes: %+v", evs)
	}
}
