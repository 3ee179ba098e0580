package web

import (
	"context"
	"testing"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
)

// The admin's log page shows hub-level entries and the admin's own
// household's; another household's device ids and actions stay off it.
// A member who is not the admin sees no hub-level entries either.
func TestAdminLogPageShowsHubLevelNotOtherHouseholds(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	ctx := context.Background()
	alex := h.setup("alex")
	_, sam, err := h.id.CreateHousehold(ctx, "Flat 2", identity.NewAccount{Username: "sam", Password: "marble-otter-sunrise-19"})
	if err != nil {
		t.Fatal(err)
	}
	kitchen, _ := h.addDevice(alex.HouseholdID, "Kitchen", "thermostat")
	door, _ := h.addDevice(sam.HouseholdID, "Door", "door-sensor")
	if _, err := h.alog.Append(ctx, auditlog.Event{Actor: auditlog.Actor{Kind: auditlog.ActorHub}, Action: auditlog.ActionManifestChange,
		Purpose: "manifest updated"}); err != nil {
		t.Fatal(err)
	}

	ba, bs := h.browser(), h.browser()
	ba.login("alex", goodPassword)
	bs.login("sam", "marble-otter-sunrise-19")
	p := ba.get("/log")
	mustContain(t, "the admin's log page", p.body, kitchen.ID, "changed a data manifest")
	mustNotContain(t, "the admin's log page", p.body, door.ID, sam.ID)
	p = bs.get("/log")
	mustContain(t, "Sam's log page", p.body, door.ID)
	mustNotContain(t, "Sam's log page", p.body, kitchen.ID, "changed a data manifest")
}
