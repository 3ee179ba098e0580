package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/history"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/onboarding"
	"github.com/candor-iot/candor/internal/store"
	"github.com/candor-iot/candor/internal/vault"
)

type homeView struct {
	Devices   []deviceSummary
	Attention int // devices with warnings
	CanAdd    bool
	// Undelivered are recipients whose deliveries failed or were dropped
	// since the hub started: data people agreed to send that did not go.
	Undelivered []undelivered
	// Requests are what others in the household asked the viewer, who
	// decides for those devices, to turn on or off.
	Requests []requestView
	// Changes are what newer manifests ask of the viewer, waiting for a
	// yes or a no.
	Changes []changeView
	// Together is what the household's devices show together that no
	// one of them shows alone.
	Together []togetherView
	CSRF     string
	// Advisories are the household's open security advisories, shown
	// before everything else.
	Advisories []advisories.View
	// StaleFeeds are advisory feeds not read for a week: "no flaws" may
	// then be wrong.
	StaleFeeds []advisories.FeedStatus
}

// undelivered is a recipient the hub could not send everything to.
type undelivered struct {
	Name    string
	Dropped int64
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, v viewer) {
	list, err := s.summaries(r.Context(), v.Account.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hv := homeView{Devices: list, CanAdd: v.CanManage(v.Account.HouseholdID),
		Advisories: s.householdAdvisories(r.Context(), v.Account.HouseholdID), StaleFeeds: s.staleFeeds(r.Context())}
	for _, d := range list {
		if len(d.Warnings) > 0 {
			hv.Attention++
		}
	}
	if s.cfg.Recipients != nil {
		// Best effort: the device list matters more than this warning.
		if rs, err := s.cfg.Recipients.List(r.Context(), v.Account.HouseholdID); err == nil {
			for _, rc := range rs {
				if rc.Delivery != nil && (rc.Delivery.Dropped > 0 || rc.Delivery.LastError != "") {
					hv.Undelivered = append(hv.Undelivered, undelivered{Name: nameInSentence(rc.Name), Dropped: rc.Delivery.Dropped})
				}
			}
		}
	}
	hv.Requests = s.openRequests(r.Context(), v)
	hv.Changes = s.pendingChanges(r.Context(), v)
	hv.Together = s.revealedTogether(r.Context(), v.Account.HouseholdID)
	p := s.pageFor(r, v, "Your devices", "home")
	hv.CSRF = p.CSRF
	p.Data = hv
	s.render(w, r, http.StatusOK, "home", p)
}

// knowView answers "What does it know?" for one stream.
type knowView struct {
	Title       string
	Fields      []fieldView
	About       []string // what the data is about, in plain words
	Reveals     string
	RevealsWith []string
	KeptFor     string
	Learning    string
}

type fieldView struct {
	Name, Description, Unit string
}

// recipientGroup is who gets one stream, beyond the hub.
type recipientGroup struct {
	Stream     string
	Recipients []string
}

type deviceView struct {
	deviceSummary
	Device     store.Device
	CanManage  bool
	Label      *manifest.Label
	Version    int
	Goes       string
	Know       []knowView
	Who        []recipientGroup
	Data       []streamData
	Violations []violationView
	Life       lifeView
	// ViolationsOff counts the older violation rows not listed.
	ViolationsOff int
	// Locked says the readings are sealed under the person's own key
	// (user-held mode): the page shows everything else and offers to
	// open them with that key. Opened says they were, for this view.
	Locked, Opened bool
	// Update is the device's firmware update state; nil when its
	// manifest names no update repository.
	Update *updateView
	// Consent is the person's switches for each stream; nil when the
	// device has no manifest in force. Its Available is false when the
	// hub has no consent service.
	Consent *consentView
	// Watch is what the abuse monitor found; nil when nothing.
	Watch *watchView
	// Behaviour is what the monitor counted lately; nil when it keeps
	// no counts.
	Behaviour *behaviourView
	// AppsShown: the hub has apps; Apps is what each of the household's
	// apps may get from this device, one entry per app and stream.
	AppsShown bool
	Apps      []appUseView
}

func (s *Server) devicePage(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.ownDevice(r.Context(), v, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.showDevice(w, r, v, d, http.StatusOK, nil)
}

// showDevice renders the device page, with errors of a form on it.
func (s *Server) showDevice(w http.ResponseWriter, r *http.Request, v viewer, d store.Device, status int, errs []formError) {
	s.renderDevice(w, r, v, d, status, errs, nil)
}

// renderDevice renders the device page. open, when set, opens its
// readings instead of the hub's keys: the person's own key, for this one
// view. History only the person's key opens leaves the page whole, with
// the readings locked and a way to open them.
func (s *Server) renderDevice(w http.ResponseWriter, r *http.Request, v viewer, d store.Device, status int, errs []formError, open history.Open) {
	e, l := s.deviceLabel(d)
	var m *manifest.Manifest
	if e != nil {
		m = e.Manifest
	}
	viols, leftOff, err := s.violations(r.Context(), d.ID, m)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dv := deviceView{
		deviceSummary: s.summary(d, e, l, viols),
		Device:        d,
		CanManage:     v.CanManage(d.HouseholdID),
		Label:         l,
		Violations:    viols,
		ViolationsOff: leftOff,
		Life:          s.deviceLife(r.Context(), d.ID),
	}
	if e != nil {
		// The readings shown are read, and recorded as read, before the
		// page is built: a read that cannot be recorded shows nothing.
		latest, err := s.latest(r.Context(), d, m, open)
		switch {
		case errors.Is(err, vault.ErrUserHeld):
			dv.Locked, latest = true, nil
		case errors.Is(err, vault.ErrWrongIdentity):
			// Recorded as a refused read; the form says what to do.
			dv.Locked, latest, status = true, nil, http.StatusUnprocessableEntity
			errs = append(errs, formError{Field: "open-identity",
				Message: "This key does not open these readings. Use the secret key that belongs to the public key you gave."})
		case err != nil:
			s.fail(w, r, err)
			return
		}
		dv.Opened = open != nil
		dv.Version = e.Version
		dv.Goes = goesNowSentence(l.Short)
		for i, st := range m.Streams {
			sl := l.Streams[i]
			kv := knowView{Title: st.Title, Reveals: sl.Reveals, RevealsWith: sl.RevealsWith, KeptFor: sl.KeptFor, Learning: sl.Learning}
			for _, f := range st.Fields {
				kv.Fields = append(kv.Fields, fieldView{Name: f.Name, Description: f.Description, Unit: f.Unit})
			}
			for _, pd := range st.PersonalData {
				kv.About = appendOnce(kv.About, manifest.PersonalDataWords(pd))
			}
			dv.Know = append(dv.Know, kv)
			if len(sl.Recipients) > 0 {
				dv.Who = append(dv.Who, recipientGroup{Stream: st.Title, Recipients: sl.Recipients})
			}
			dv.Data = append(dv.Data, streamReadings(d.ID, st, latest[st.Name]))
		}
	}
	if m != nil && m.Updates != nil || s.updatesKnown(d.ID) {
		dv.Update = s.updateView(d.ID)
	}
	if e != nil {
		cv, err := s.consentView(r.Context(), v, d, m)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		dv.Consent = cv
		if s.cfg.Apps != nil {
			list, err := s.cfg.Apps.List(r.Context(), d.HouseholdID)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			dv.AppsShown, dv.Apps = true, s.deviceApps(r.Context(), d, m, list)
		}
	}
	p := s.pageFor(r, v, d.Name, "")
	if dv.Consent != nil {
		dv.Consent.CSRF = p.CSRF
	}
	if dv.Watch = s.watch(d.ID); dv.Watch != nil {
		dv.Watch.CSRF = p.CSRF
	}
	if dv.Behaviour, err = s.behaviour(r.Context(), d.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	dv.Life.DeviceID, dv.Life.CSRF, dv.Life.CanHold = d.ID, p.CSRF, dv.CanManage && s.cfg.Restrict != nil && !d.Revoked()
	if dv.Update != nil && dv.CanManage && s.cfg.UpdateControls != nil && !d.Revoked() {
		dv.Update.Controls, dv.Update.DeviceID, dv.Update.CSRF, dv.Update.Days = true, d.ID, p.CSRF, postponeChoices
	}
	p.Errors = errs
	p.Data = dv
	s.render(w, r, status, "device", p)
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// typeChoice is one device type on the add page.
type typeChoice struct {
	Type        string
	Title       string
	Description string
	Line        string
}

type addView struct {
	Types  []typeChoice
	Chosen *typeChoice
	Label  *manifest.Label
	Name   string
	// CAFingerprint identifies the hub's own authority, whose ca.pem the
	// device needs to check the hub over TLS.
	CAFingerprint string
}

func (s *Server) typeChoices() []typeChoice {
	var out []typeChoice
	for _, t := range s.cfg.Catalog.Types() {
		e, l := s.labelFor(t)
		if e == nil {
			continue
		}
		out = append(out, typeChoice{Type: t, Title: e.Manifest.Title, Description: l.Description, Line: oneLine(l)})
	}
	return out
}

// getAdd shows the types to choose from, or, once one is chosen, its
// label in plain words before anything is added.
func (s *Server) getAdd(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.CanManage(v.Account.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, identity.ErrForbidden)
		return
	}
	av := addView{Types: s.typeChoices()}
	var errs []formError
	if t, ok := r.URL.Query()["type"]; ok {
		if c := s.choice(av.Types, t[0]); c != nil {
			av.Chosen = c
			_, av.Label = s.labelFor(c.Type)
		} else {
			errs = []formError{{Field: "type-" + firstType(av.Types), Message: "Choose one of the types below."}}
		}
	}
	s.renderAdd(w, r, v, http.StatusOK, av, errs)
}

func firstType(ts []typeChoice) string {
	if len(ts) == 0 {
		return ""
	}
	return ts[0].Type
}

func (s *Server) choice(ts []typeChoice, t string) *typeChoice {
	for i := range ts {
		if ts[i].Type == t {
			return &ts[i]
		}
	}
	return nil
}

func (s *Server) renderAdd(w http.ResponseWriter, r *http.Request, v viewer, status int, av addView, errs []formError) {
	title := "Add a device"
	if av.Chosen != nil {
		title = "Add a device: " + av.Chosen.Title
	}
	p := s.pageFor(r, v, title, "add")
	p.Errors = errs
	av.CAFingerprint = s.cfg.CAFingerprint
	p.Data = av
	s.render(w, r, status, "add", p)
}

func (s *Server) postAdd(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.CanManage(v.Account.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, identity.ErrForbidden)
		return
	}
	av := addView{Types: s.typeChoices(), Name: strings.TrimSpace(r.PostFormValue("name"))}
	c := s.choice(av.Types, r.PostFormValue("type"))
	if c == nil {
		// Only types with a manifest in force may be added: the hub must
		// be able to describe and enforce what the device sends.
		s.renderAdd(w, r, v, http.StatusUnprocessableEntity, av,
			[]formError{{Field: "type-" + firstType(av.Types), Message: "Choose one of the types below."}})
		return
	}
	av.Chosen = c
	_, av.Label = s.labelFor(c.Type)
	d, secret, err := s.id.AddDevice(r.Context(), identity.NewDevice{HouseholdID: v.Account.HouseholdID, Name: av.Name, Type: c.Type,
		KeyOwner: v.KeyOwnerFor(v.Account.HouseholdID, false)})
	if errors.Is(err, identity.ErrInvalid) {
		s.renderAdd(w, r, v, http.StatusUnprocessableEntity, av, inputErrors(err, map[string]field{"name": {"name", "The name"}}))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.secrets.put(s.now(), v.Session.ID, d.ID, secret)
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"/credential", http.StatusSeeOther)
}

type credentialView struct {
	Device   store.Device
	Shown    bool
	Secret   string
	Host     string
	Port     string
	Topic    string
	Stream   string
	Payload  string
	Command  string
	Manifest bool
	// TLS and CAFingerprint say how the device checks it talks to this
	// hub.
	TLS           bool
	CAFingerprint string
}

// credentialPage shows a new secret exactly once: the POST that made it
// left it for this session, and showing it forgets it.
func (s *Server) credentialPage(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.ownDevice(r.Context(), v, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cv := credentialView{Device: d, TLS: s.cfg.MQTTTLS, CAFingerprint: s.cfg.CAFingerprint}
	cv.Host, cv.Port = onboarding.BrokerHostPort(s.cfg.MQTTAddr)
	cv.Topic = "candor/" + d.ID + "/"
	if secret, ok := s.secrets.take(s.now(), v.Session.ID, d.ID); ok {
		cv.Shown, cv.Secret = true, secret
		stream, payload := "test", []byte(`{"value": 1}`)
		if e, err := s.cfg.Catalog.Current(d.Type); err == nil && len(e.Manifest.Streams) > 0 {
			st := e.Manifest.Streams[0]
			stream, payload = st.Name, st.SamplePayload()
			cv.Manifest = true
		}
		cv.Stream, cv.Payload = stream, string(payload)
		cv.Command = onboarding.MosquittoPub(s.cfg.MQTTAddr, s.cfg.MQTTTLS, s.cfg.MQTTCAFile, d.ID, secret, stream, payload)
	}
	p := s.pageFor(r, v, "Credential for "+d.Name, "")
	p.Data = cv
	s.render(w, r, http.StatusOK, "credential", p)
}

type confirmView struct {
	Device store.Device
	Action string // "rotate" or "revoke"
}

// manageable loads a device the viewer may change: not found outside the
// household, forbidden for members.
func (s *Server) manageable(r *http.Request, v viewer) (store.Device, error) {
	d, err := s.ownDevice(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return store.Device{}, err
	}
	if !v.CanManage(d.HouseholdID) {
		return store.Device{}, identity.ErrForbidden
	}
	return d, nil
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request, v viewer, action, title string) {
	d, err := s.manageable(r, v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Revoked() {
		http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID), http.StatusSeeOther)
		return
	}
	p := s.pageFor(r, v, title+": "+d.Name, "")
	p.Data = confirmView{Device: d, Action: action}
	s.render(w, r, http.StatusOK, "confirm", p)
}

func (s *Server) getRotate(w http.ResponseWriter, r *http.Request, v viewer) {
	s.confirm(w, r, v, "rotate", "Make a new credential")
}

func (s *Server) getRevoke(w http.ResponseWriter, r *http.Request, v viewer) {
	s.confirm(w, r, v, "revoke", "Revoke the credential")
}

func (s *Server) postRotate(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.manageable(r, v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Revoked() {
		http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID), http.StatusSeeOther)
		return
	}
	secret, err := s.id.RotateDevice(r.Context(), d.ID, "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.secrets.put(s.now(), v.Session.ID, d.ID, secret)
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"/credential", http.StatusSeeOther)
}

func (s *Server) postRevoke(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.manageable(r, v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !d.Revoked() {
		if err := s.id.RevokeDevice(r.Context(), d.ID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"?done=revoked", http.StatusSeeOther)
}

// Compile-time check that the hub's catalog fits.
var _ Catalog = (*catalog.Catalog)(nil)
