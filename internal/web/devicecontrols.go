package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/updates"
)

// UpdateControls are the owner's update choices on the device page: the
// updates service, which records each in the transparency log.
type UpdateControls interface {
	Install(ctx context.Context, actor auditlog.Actor, d updates.Device) (updates.State, error)
	Postpone(ctx context.Context, actor auditlog.Actor, dev updates.Device, d time.Duration) (updates.State, error)
	SetAutomatic(ctx context.Context, actor auditlog.Actor, d updates.Device, on bool) error
}

// Restricter puts a device on hold until a flaw is fixed (the advisories
// service; the monitor's quarantine records it). The actor comes from
// the context.
type Restricter interface {
	Restrict(ctx context.Context, deviceID, advisoryID string) error
}

// postponeChoices are the lengths the page offers; the service bounds
// them to 30 days.
var postponeChoices = []int{1, 7, 14, 30}

// deviceControlRoutes registers the owner's update and hold buttons.
func (s *Server) deviceControlRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /devices/{id}/restrict", s.authed(s.postRestrict))
	m.HandleFunc("POST /devices/{id}/updates/install", s.authed(s.postInstall))
	m.HandleFunc("POST /devices/{id}/updates/postpone", s.authed(s.postPostpone))
	m.HandleFunc("POST /devices/{id}/updates/automatic", s.authed(s.postAutomatic))
}

// controlDone shows the device page again after a change, with msg.
func (s *Server) controlDone(w http.ResponseWriter, r *http.Request, v viewer, d store.Device, anchor, msg string) {
	s.flash(v, msg)
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"?done="+flashDone+"#"+anchor, http.StatusSeeOther)
}

// controlRefused shows a refusal the person can act on (no update
// waiting, postponed once already) next to the buttons, and any other
// error as an error page.
func (s *Server) controlRefused(w http.ResponseWriter, r *http.Request, v viewer, d store.Device, field string, err error) {
	if k, msg, ok := problem.Of(err); ok && k.Status < http.StatusInternalServerError {
		s.showDevice(w, r, v, d, k.Status, []formError{{Field: field, Message: upperFirst(sentence(msg))}})
		return
	}
	s.fail(w, r, err)
}

// controlled finds the device a control form is about, which v must be
// able to manage, and answers for the handler when it cannot be found or
// the control is not available on this hub (available false): ok is then
// false.
func (s *Server) controlled(w http.ResponseWriter, r *http.Request, v viewer, available bool) (d store.Device, ok bool) {
	d, err := s.manageable(r, v)
	if err != nil {
		s.fail(w, r, err)
		return store.Device{}, false
	}
	if !available {
		s.renderError(w, r, http.StatusNotFound, nil)
		return store.Device{}, false
	}
	return d, true
}

func (s *Server) postRestrict(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.controlled(w, r, v, s.cfg.Restrict != nil)
	if !ok {
		return
	}
	// Trimmed as the API does: a pasted id often carries a space or a
	// line break, which would name no advisory.
	adv := strings.TrimSpace(r.PostFormValue("advisory"))
	if err := s.cfg.Restrict.Restrict(r.Context(), d.ID, adv); err != nil {
		s.controlRefused(w, r, v, d, "", err)
		return
	}
	s.controlDone(w, r, v, d, "watch-title", "The device is on hold until it is fixed. It ends by itself when the device reports a fixed version.")
}

func (s *Server) postInstall(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.controlled(w, r, v, s.cfg.UpdateControls != nil)
	if !ok {
		return
	}
	if _, err := s.cfg.UpdateControls.Install(r.Context(), v.Actor(), updates.DeviceOf(d)); err != nil {
		s.controlRefused(w, r, v, d, "update-install", err)
		return
	}
	s.controlDone(w, r, v, d, "updates-title", "The hub offered the update to the device. This page shows how it goes.")
}

func (s *Server) postPostpone(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.controlled(w, r, v, s.cfg.UpdateControls != nil)
	if !ok {
		return
	}
	days, err := strconv.Atoi(r.PostFormValue("days"))
	if err != nil || days <= 0 {
		s.showDevice(w, r, v, d, http.StatusUnprocessableEntity, []formError{{Field: "postpone-days", Message: "Choose for how long to put it off."}})
		return
	}
	if _, err := s.cfg.UpdateControls.Postpone(r.Context(), v.Actor(), updates.DeviceOf(d), time.Duration(days)*24*time.Hour); err != nil {
		s.controlRefused(w, r, v, d, "postpone-days", err)
		return
	}
	s.controlDone(w, r, v, d, "updates-title", "The update is put off. You can only do this once for each update.")
}

func (s *Server) postAutomatic(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.controlled(w, r, v, s.cfg.UpdateControls != nil)
	if !ok {
		return
	}
	on := r.PostFormValue("automatic") == "on"
	if err := s.cfg.UpdateControls.SetAutomatic(r.Context(), v.Actor(), updates.DeviceOf(d), on); err != nil {
		s.fail(w, r, err)
		return
	}
	msg := "Security updates now wait for an owner to install them."
	if on {
		msg = "Security updates are now installed without asking."
	}
	s.controlDone(w, r, v, d, "updates-title", msg)
}
