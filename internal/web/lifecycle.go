package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/operator"
	"github.com/candor-iot/candor/internal/store"
)

// Advisories gives the pages the open advisories of a household or a
// device, in the words the API and the command line use too.
type Advisories interface {
	Findings(ctx context.Context, householdID string) ([]advisories.Finding, error)
	DeviceFindings(ctx context.Context, deviceID string) ([]advisories.Finding, error)
	Views(ctx context.Context, fs []advisories.Finding) []advisories.View
}

// Firmware lists the versions a device reported, newest first.
type Firmware interface {
	History(ctx context.Context, deviceID string) ([]store.FirmwareReport, error)
}

// Operator reads and changes who runs the hub.
type Operator interface {
	Get(ctx context.Context) (operator.Settings, error)
	Set(ctx context.Context, in operator.Settings) (operator.Settings, error)
}

func init() { pageNames = append(pageNames, "operator") }

// lifeView is the device page's firmware and advisories.
type lifeView struct {
	Firmware   *store.FirmwareReport  // nil: never reported
	History    []store.FirmwareReport // older versions, newest first
	Advisories []advisories.View
	// DeviceID, CSRF and CanHold serve the owner's "put it on hold until
	// fixed" button; CanHold is false for people who cannot manage it.
	DeviceID string
	CSRF     string
	CanHold  bool
}

// deviceLife reads what the device page shows about firmware and
// advisories. Both are best effort: the page matters more than either.
func (s *Server) deviceLife(ctx context.Context, deviceID string) lifeView {
	var lv lifeView
	if s.cfg.Firmware != nil {
		if h, err := s.cfg.Firmware.History(ctx, deviceID); err == nil && len(h) > 0 {
			lv.Firmware, lv.History = &h[0], h[1:]
		} else if err != nil {
			s.log.Error("read firmware history", "device", deviceID, "err", err)
		}
	}
	if s.cfg.Advisories != nil {
		if fs, err := s.cfg.Advisories.DeviceFindings(ctx, deviceID); err == nil {
			lv.Advisories = s.cfg.Advisories.Views(ctx, fs)
		} else {
			s.log.Error("match advisories", "device", deviceID, "err", err)
		}
	}
	return lv
}

// householdAdvisories are the open findings the home page lists first.
func (s *Server) householdAdvisories(ctx context.Context, householdID string) []advisories.View {
	if s.cfg.Advisories == nil {
		return nil
	}
	fs, err := s.cfg.Advisories.Findings(ctx, householdID)
	if err != nil {
		s.log.Error("match advisories", "household", householdID, "err", err)
		return nil
	}
	return s.cfg.Advisories.Views(ctx, fs)
}

// operatorView is who runs the hub, for the footer and the Learn page.
type operatorView struct {
	Name           string
	Contact        string
	PrivacyContact string
	Policy         string
}

func (s *Server) operatorOf(ctx context.Context) *operatorView {
	ov := &operatorView{Name: operator.Unnamed}
	if s.cfg.Operator == nil {
		return ov
	}
	o, err := s.cfg.Operator.Get(ctx)
	if err != nil {
		return ov
	}
	return &operatorView{Name: o.DisplayName(), Contact: o.Contact, PrivacyContact: o.PrivacyContact, Policy: o.DisclosurePolicy}
}

type operatorForm struct {
	Form      operator.Settings
	Available bool
}

// operatorPage lets the admin name the hub's operator.
func (s *Server) operatorPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	of := operatorForm{Available: s.cfg.Operator != nil}
	if of.Available {
		o, err := s.cfg.Operator.Get(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		of.Form = o
	}
	p := s.pageFor(r, v, "Who runs this hub", "admin")
	p.Data = of
	s.render(w, r, http.StatusOK, "operator", p)
}

func (s *Server) postOperator(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() || s.cfg.Operator == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	in := operator.Settings{
		Name:             r.PostFormValue("name"),
		Contact:          r.PostFormValue("contact"),
		PrivacyContact:   r.PostFormValue("privacy"),
		DisclosurePolicy: r.PostFormValue("policy"),
	}
	if _, err := s.cfg.Operator.Set(r.Context(), in); err != nil {
		if !errors.Is(err, operator.ErrInvalid) {
			s.fail(w, r, err)
			return
		}
		p := s.pageFor(r, v, "Who runs this hub", "admin")
		p.Data = operatorForm{Form: in, Available: true}
		p.Errors = operatorErrors(err)
		s.render(w, r, http.StatusUnprocessableEntity, "operator", p)
		return
	}
	s.flash(v, "Saved. Pages, new consent records and security.txt now name the operator this way.")
	http.Redirect(w, r, "/operator?done="+flashDone, http.StatusSeeOther)
}

// operatorErrors places the service's refusal ("contact: must be …") next
// to its field.
func operatorErrors(err error) []formError {
	msg := detail(err)
	name, rest, _ := strings.Cut(msg, ": ")
	fields := map[string]field{
		"name": {"operator-name", "The name"}, "contact": {"operator-contact", "The contact"},
		"privacyContact": {"operator-privacy", "The privacy contact"}, "disclosurePolicy": {"operator-policy", "The policy address"},
	}
	f, ok := fields[name]
	if !ok {
		return []formError{{Message: upperFirst(sentence(msg))}}
	}
	return []formError{{Field: f.id, Message: sentence(f.name + " " + rest)}}
}
