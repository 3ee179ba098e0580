package api

import (
	"context"
	"net/http"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// Bridge adds Zigbee devices behind a household's Zigbee2MQTT bridge
// (package bridge).
type Bridge interface {
	AddDevice(ctx context.Context, household, friendlyName, deviceType, keyOwner string) (store.Device, error)
	Seen(ctx context.Context, household string) ([]bridge.SeenDevice, error)
}

// listZigbeeDevices lists the Zigbee devices the household's Zigbee2MQTT
// last announced (bridge/devices, kept in memory only), each with its
// definition to import and the hub device it is once added.
func (s *Server) listZigbeeDevices(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Bridge == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "bridge-unavailable", "this hub does not serve Zigbee2MQTT")
		return
	}
	hh, err := s.householdParam(r, p, r.URL.Query().Get("household"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hh == "" || !p.CanManage(hh) {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	list, err := s.cfg.Bridge.Seen(r.Context(), hh)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []bridge.SeenDevice{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": list})
}

// addZigbeeDevice adds a Zigbee device: a hub device named with its
// Zigbee2MQTT friendly name, of a type whose manifest is confirmed. It
// has no secret: its bridge speaks for it.
func (s *Server) addZigbeeDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Bridge == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "bridge-unavailable", "this hub does not serve Zigbee2MQTT")
		return
	}
	var in struct {
		FriendlyName string `json:"friendly_name"`
		Type         string `json:"type"`
		Household    string `json:"household,omitempty"`
		Shared       bool   `json:"shared,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	hh, err := s.householdParam(r, p, in.Household)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hh == "" || !p.CanManage(hh) {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	d, err := s.cfg.Bridge.AddDevice(r.Context(), hh, in.FriendlyName, in.Type, p.KeyOwnerFor(hh, in.Shared))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"device": s.toDevice(d),
		"note": "Zigbee2MQTT's state messages for this friendly name now reach the hub, one stream per property; nothing is kept until someone allows it."})
}
