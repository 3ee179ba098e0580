package web

import (
	"regexp"
	"testing"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/store"
)

// TestEventSentencesArePlainWords checks that every action the hub
// records reads as plain words on the log page: no code names such as
// "key.change", and a refused read never reads as a view.
func TestEventSentencesArePlainWords(t *testing.T) {
	t.Parallel()
	me := viewer{Principal: access.Person(store.Account{ID: "acc_me", HouseholdID: "hh_1"}, store.Session{})}
	names := map[string]string{"dev_1": "Hall"}
	you := auditlog.Actor{Kind: auditlog.ActorPerson, ID: "acc_me"}
	code := regexp.MustCompile(`\b[a-z]+\.[a-z]+\b`)
	tests := []struct {
		action string
		detail map[string]string
		want   string
	}{
		{auditlog.ActionKeyChange, nil, "You changed who holds the keys to the data."},
		{auditlog.ActionKeyRotate, nil, "You made a new key for the data."},
		{history.ActionReadingsRefused, map[string]string{"reason": "user-held", "readings": "3"},
			`You could not see readings of "Hall" (dev_1): they are locked with the owner's own key.`},
		{auditlog.ActionReadingsRead, map[string]string{"readings": "3"}, `You viewed 3 readings of "Hall" (dev_1).`},
		{consent.ActionConsentRequest, nil, `You asked for a consent choice to change for "Hall" (dev_1) (power).`},
		{forward.ActionRecipientChange, nil, "You changed where a recipient gets data."},
		{"account.password.change", nil, "You changed a password."},
		{identity.ActionSecondFactorOn, nil, "You turned on login codes from an app."},
		{identity.ActionSecondFactorOff, nil, "You turned off login codes from an app."},
		{identity.ActionSecondFactorReset, nil, "You turned off the login codes of a person who lost their phone."},
		{"future.thing", nil, `You made a change this page cannot describe yet, about "Hall" (dev_1).`},
		{auditlog.ActionDeviceQuarantine, map[string]string{"kind": "advisory", "advisory": "CVE-2026-1"},
			`You put "Hall" (dev_1) on hold until a security flaw is fixed.`},
		{monitor.ActionRelease, map[string]string{"kind": "advisory"}, `You let "Hall" (dev_1) off its hold.`},
		{advisories.ActionFeedAdd, nil, "You added a source of news of security flaws."},
		{advisories.ActionFeedRemove, nil, "You removed a source of news of security flaws."},
		{advisories.ActionAdvisoryImport, nil, "You added news of a security flaw."},
	}
	for _, a := range []string{auditlog.ActionReadingsForward, auditlog.ActionReadingsExport, auditlog.ActionConsentChange,
		auditlog.ActionDataDelete, auditlog.ActionDataShred, auditlog.ActionManifestChange, auditlog.ActionDeviceCreate,
		auditlog.ActionDeviceDelete, auditlog.ActionCredentialCreate, auditlog.ActionCredentialRotate, auditlog.ActionCredentialRevoke,
		auditlog.ActionDeviceQuarantine, auditlog.ActionSecurityFinding, auditlog.ActionAccountCreate, auditlog.ActionAccountDelete,
		auditlog.ActionAccountRole, auditlog.ActionAccountLogin, auditlog.ActionTokenCreate, auditlog.ActionTokenRevoke,
		auditlog.ActionSessionRevoke, auditlog.ActionHouseholdCreate, auditlog.ActionAuditExport, auditlog.ActionAuditRecover} {
		tests = append(tests, struct {
			action string
			detail map[string]string
			want   string
		}{action: a})
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			ev := auditlog.Event{Actor: you, Action: tt.action, Subject: auditlog.Subject{Device: "dev_1", Stream: "power"}, Detail: tt.detail}
			got := eventSentence(me, ev, names)
			if tt.want != "" && got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if m := code.FindString(got); m != "" {
				t.Errorf("%q shows the code name %q", got, m)
			}
		})
	}
}
