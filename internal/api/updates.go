package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/updates"
)

// Updates is the firmware update service the API drives; it decides and
// records, the API only asks.
type Updates interface {
	Status(deviceID string) (updates.State, bool)
	Household(householdID string) []updates.State
	CheckNow(ctx context.Context, d updates.Device) (updates.State, error)
	Install(ctx context.Context, actor auditlog.Actor, d updates.Device) (updates.State, error)
	Postpone(ctx context.Context, actor auditlog.Actor, d updates.Device, by time.Duration) (updates.State, error)
	SetAutomatic(ctx context.Context, actor auditlog.Actor, d updates.Device, on bool) error
}

func (s *Server) updateState(d store.Device) updates.State {
	if st, ok := s.cfg.Updates.Status(d.ID); ok {
		return st
	}
	return updates.State{Device: d.ID, Household: d.HouseholdID, DeviceType: d.Type, Stage: updates.StatusNone, Automatic: true}
}

// deviceUpdates shows a device's firmware update state.
func (s *Server) deviceUpdates(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"update": s.updateState(d)})
}

// householdUpdates lists the update state of the caller's household's
// devices (the operator names a household with ?household=).
func (s *Server) householdUpdates(w http.ResponseWriter, r *http.Request, p access.Principal) {
	hh := p.Account.HouseholdID
	if p.Operator {
		hh = r.URL.Query().Get("household")
	}
	if hh == "" || !p.CanSee(hh) {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", "name the household with ?household=")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"updates": s.cfg.Updates.Household(hh)})
}

// checkUpdate asks the maker's repository now. A refusal is part of the
// state returned (its reason in plain words), not an error of the call.
func (s *Server) checkUpdate(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.cfg.Updates.CheckNow(r.Context(), updates.DeviceOf(d))
	var re *updates.RefusedError
	if err != nil && !errors.As(err, &re) {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"update": st})
}

// installUpdate offers the waiting update to the device now.
func (s *Server) installUpdate(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.cfg.Updates.Install(r.Context(), p.Actor(), updates.DeviceOf(d))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"update": st})
}

// postponeUpdate holds the waiting update back for a number of days.
func (s *Server) postponeUpdate(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Days int `json:"days"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.cfg.Updates.Postpone(r.Context(), p.Actor(), updates.DeviceOf(d), time.Duration(in.Days)*24*time.Hour)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"update": st})
}

// setAutomaticUpdates switches automatic security updates for a device.
func (s *Server) setAutomaticUpdates(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Automatic *bool `json:"automatic"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Automatic == nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", `send {"automatic": true} or {"automatic": false}`)
		return
	}
	if err := s.cfg.Updates.SetAutomatic(r.Context(), p.Actor(), updates.DeviceOf(d), *in.Automatic); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"update": s.updateState(d)})
}

// withUpdates answers 503 when the hub runs without the updates service.
func (s *Server) withUpdates(h func(http.ResponseWriter, *http.Request, access.Principal)) func(http.ResponseWriter, *http.Request, access.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p access.Principal) {
		if s.cfg.Updates == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "firmware updates are not available on this hub")
			return
		}
		h(w, r, p)
	}
}
