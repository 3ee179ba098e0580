package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/store"
)

// The machine-learning register (clause 2B d of the IoT Good Practice
// paper: awareness of machine learning that changes how the home
// behaves): every stream and use of the household's devices that their
// manifests mark candor:machineLearning or candor:automatedDecisions,
// with what learns, from what, what it changes, and a switch for that use
// alone. The switch is a consent decision (package consent); who may
// flip it is access.Principal.CanDecide, as on the device page, and
// everyone else may ask.

func init() { pageNames = append(pageNames, "learning") }

type learningView struct {
	Available bool
	CSRF      string
	Devices   []learningDevice
}

// learningDevice is one device with its learning uses.
type learningDevice struct {
	ID         string
	Name       string
	CanChange  bool
	WhoDecides string
	Uses       []learningUseView
}

// learningUseView is one learning use as the page shows it.
type learningUseView struct {
	ID      string // for aria-describedby
	Stream  string
	Purpose string
	What    string // "It learns from Temperature."
	From    string
	Changes string
	On      bool
	Why     string
	Short   string // for the button's accessible name
}

// learningPage shows the register; every member sees it.
func (s *Server) learningPage(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderLearning(w, r, v, http.StatusOK, nil)
}

func (s *Server) renderLearning(w http.ResponseWriter, r *http.Request, v viewer, status int, errs []formError) {
	p := s.pageFor(r, v, "What learns from your data", "learning")
	p.Errors = errs
	lv, err := s.learningView(r.Context(), v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lv.CSRF = p.CSRF
	p.Data = lv
	s.render(w, r, status, "learning", p)
}

func (s *Server) learningView(ctx context.Context, v viewer) (learningView, error) {
	lv := learningView{Available: s.cfg.Consent != nil}
	if !lv.Available {
		return lv, nil
	}
	devs, err := s.st.Devices(ctx, v.Account.HouseholdID)
	if err != nil {
		return lv, err
	}
	for di, d := range devs {
		if d.Revoked() || v.SeeDevice(d) != nil {
			continue
		}
		uses, err := s.cfg.Consent.Learning(ctx, d.ID)
		var ce *consent.Error
		switch {
		case errors.As(err, &ce):
			continue // no manifest in force: nothing the hub knows learns
		case err != nil:
			return lv, err
		case len(uses) == 0:
			continue
		}
		ld := learningDevice{ID: d.ID, Name: d.Name, CanChange: v.CanDecide(d), WhoDecides: s.whoDecides(ctx, v, d)}
		for ui, u := range uses {
			ld.Uses = append(ld.Uses, learningUseOf(fmt.Sprintf("learning-%d-%d", di, ui), u))
		}
		lv.Devices = append(lv.Devices, ld)
	}
	return lv, nil
}

func learningUseOf(id string, u consent.LearningUse) learningUseView {
	lu := learningUseView{ID: id, Stream: u.Stream, Purpose: u.Purpose, From: joinAnd(u.From), Changes: sentence(u.Changes),
		On: u.On, Why: u.Why}
	if u.Purpose == consent.PurposeAutomatedDecisions {
		lu.What = "It makes choices on its own from " + lowerFirst(u.Title) + "."
		lu.Short = u.Title + ", choices made on its own"
	} else {
		lu.What = "It learns from " + lowerFirst(u.Title) + "."
		lu.Short = u.Title + ", learning"
	}
	return lu
}

// learningDeviceOf loads the device a learning form is about.
func (s *Server) learningDeviceOf(w http.ResponseWriter, r *http.Request, v viewer) (store.Device, bool) {
	if s.cfg.Consent == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return store.Device{}, false
	}
	d, err := s.ownDevice(r.Context(), v, r.PostFormValue("device"))
	if err != nil {
		s.fail(w, r, err)
		return store.Device{}, false
	}
	return d, true
}

// postLearning switches one learning use alone, for whoever decides for
// the device; anyone else is answered 403 with who decides.
func (s *Server) postLearning(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.learningDeviceOf(w, r, v)
	if !ok {
		return
	}
	if err := v.Decide(d); err != nil {
		s.fail(w, r, err)
		return
	}
	stream, purpose, on := r.PostFormValue("stream"), r.PostFormValue("purpose"), r.PostFormValue("on") == "1"
	if !consent.IsLearningPurpose(purpose) {
		s.renderLearning(w, r, v, http.StatusUnprocessableEntity, []formError{{Message: "This form switches learning only. Other uses are on the device page."}})
		return
	}
	if _, err := s.cfg.Consent.Set(r.Context(), consent.Change{AccountID: v.Account.ID, DeviceID: d.ID, Stream: stream,
		Purpose: purpose, Recipient: consent.RecipientHub, On: on}); err != nil {
		s.learningRefused(w, r, v, err)
		return
	}
	what := "learning from it"
	if purpose == consent.PurposeAutomatedDecisions {
		what = "making choices from it on its own"
	}
	msg := fmt.Sprintf("From the next reading of %s on, %s is off. The hub still keeps what you agreed to. The device has been told.", d.Name, what)
	if on {
		msg = fmt.Sprintf("From the next reading of %s on, %s is on. The device has been told.", d.Name, what)
	}
	s.flash(v, msg+" Your receipt is on the device page.")
	http.Redirect(w, r, "/machine-learning?done="+flashDone+"#device-"+url.PathEscape(d.ID), http.StatusSeeOther)
}

// postLearningAsk asks whoever decides for the device to switch one
// learning use; it is listed on their home page.
func (s *Server) postLearningAsk(w http.ResponseWriter, r *http.Request, v viewer) {
	d, ok := s.learningDeviceOf(w, r, v)
	if !ok {
		return
	}
	purpose := r.PostFormValue("purpose")
	if !consent.IsLearningPurpose(purpose) {
		s.renderLearning(w, r, v, http.StatusUnprocessableEntity, []formError{{Message: "This form asks about learning only. Other uses are on the device page."}})
		return
	}
	if _, err := s.cfg.Consent.Ask(r.Context(), consent.Change{AccountID: v.Account.ID, DeviceID: d.ID, Stream: r.PostFormValue("stream"),
		Purpose: purpose, Recipient: consent.RecipientHub, On: r.PostFormValue("on") == "1"}); err != nil {
		s.learningRefused(w, r, v, err)
		return
	}
	s.flash(v, "Your request is sent. It is listed for whoever decides for this device, until they choose.")
	http.Redirect(w, r, "/machine-learning?done="+flashDone+"#device-"+url.PathEscape(d.ID), http.StatusSeeOther)
}

// learningRefused shows consent's refusal (a stream that is not
// marked, say) on the register itself.
func (s *Server) learningRefused(w http.ResponseWriter, r *http.Request, v viewer, err error) {
	var ce *consent.Error
	if errors.As(err, &ce) {
		s.renderLearning(w, r, v, http.StatusUnprocessableEntity, []formError{{Message: upperFirst(sentence(ce.Msg))}})
		return
	}
	s.fail(w, r, err)
}
