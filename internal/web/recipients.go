package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/forward"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/manifest"
)

// "Where your data goes" (who gets it, can I control it): every
// recipient a manifest of the household's devices names, what they say
// they do with the data, which streams may go to them, where they receive
// and how delivery went. An owner sets where each receives, or stops
// sending; a member reads. The rules are the API's, from the same
// forward.Registry: only a recipient a manifest names, only at a URL
// forward.CheckURL allows.

func init() { pageNames = append(pageNames, "recipients") }

// forwardKeyURL is where recipients fetch the key that checks the hub's
// signature on each delivery (package api).
const forwardKeyURL = "/api/v1/forward/key"

// Recipients lists and configures where a household's data goes
// (*forward.Registry does).
type Recipients interface {
	List(ctx context.Context, householdID string) ([]forward.Recipient, error)
	Set(ctx context.Context, householdID, name, url string) error
	Remove(ctx context.Context, householdID, name string) error
}

type recipientsView struct {
	Available  bool
	CanManage  bool
	KeyURL     string
	Recipients []recipientView
}

// recipientView is one recipient as the page shows it.
type recipientView struct {
	ID           string // prefix of the element ids of its section
	Name         string
	InSentence   string // the name inside a sentence: "your energy supplier"
	Role         string // one sentence: "They decide how to use it."
	Purposes     []string
	Terms        string
	Contact      string
	Identifiable string // "linked", "de-identified" or "anonymous"
	KeptFor      string
	Uses         []recipientUseView
	URL          string
	ConfiguredAt time.Time
	Sending      bool // an endpoint is set and some use is on
	AnyOn        bool
	Delivered    string // "3 readings"
	Dropped      string
	Queued       string
	LastError    string
	// Typed is the address to show in the form: what the owner just
	// typed when it was refused, else the one in use.
	Typed string
}

// recipientUseView is one device's stream that may go to a recipient.
type recipientUseView struct {
	DeviceID    string
	DeviceName  string
	Stream      string
	StreamTitle string
	Purpose     string
	// Known: the hub can tell whether the household switched it on.
	Known bool
	On    bool
}

func (s *Server) recipientsPage(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderRecipients(w, r, v, http.StatusOK, "", "", nil)
}

// renderRecipients shows the page; formName and typed give back what the
// owner typed for one recipient when it was refused.
func (s *Server) renderRecipients(w http.ResponseWriter, r *http.Request, v viewer, status int, formName, typed string, errs []formError) {
	p := s.pageFor(r, v, "Where your data goes", "recipients")
	p.Errors = errs
	rv := recipientsView{Available: s.cfg.Recipients != nil, CanManage: v.CanManage(v.Account.HouseholdID), KeyURL: forwardKeyURL}
	if rv.Available {
		list, err := s.cfg.Recipients.List(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for i, rc := range list {
			view := s.recipientView(i, rc)
			if rc.Name == formName {
				view.Typed = typed
			}
			rv.Recipients = append(rv.Recipients, view)
		}
	}
	p.Data = rv
	s.render(w, r, status, "recipients", p)
}

func (s *Server) recipientView(i int, rc forward.Recipient) recipientView {
	view := recipientView{ID: "recipient-" + strconv.Itoa(i+1), Name: rc.Name, InSentence: nameInSentence(rc.Name), Role: manifest.RoleSentence(rc.Role),
		Terms: rc.Terms, Contact: strings.TrimPrefix(rc.Contact, "mailto:"), Identifiable: rc.Identifiable, URL: rc.URL, ConfiguredAt: rc.ConfiguredAt,
		Typed: rc.URL}
	if !rc.Retention.IsZero() {
		view.KeptFor = rc.Retention.Human()
	}
	for _, u := range rc.Uses {
		view.Purposes = appendOnce(view.Purposes, manifest.PurposeWords(u.Purpose))
		uv := recipientUseView{DeviceID: u.DeviceID, DeviceName: u.DeviceName, Stream: u.Stream, StreamTitle: u.StreamTitle,
			Purpose: manifest.PurposeWords(u.Purpose)}
		if s.cfg.Consent != nil {
			uv.Known = true
			uv.On = slices.Contains(s.cfg.Consent.Allowed(u.DeviceID, u.Stream).Recipients, rc.Name)
			view.AnyOn = view.AnyOn || uv.On
		}
		view.Uses = append(view.Uses, uv)
	}
	view.Sending = view.URL != "" && view.AnyOn
	// The forwarder starts an endpoint when it is set, or after a restart
	// at the first reading for it: until then nothing was sent.
	var d forward.Stats
	if rc.Delivery != nil {
		d = *rc.Delivery
	}
	view.Delivered = plural(d.Delivered, "reading", "readings")
	view.Dropped = plural(d.Dropped, "reading", "readings")
	view.Queued = plural(int64(d.Queued), "reading", "readings")
	view.LastError = d.LastError
	return view
}

// recipientAction starts a POST of the page: the hub must forward, and
// only an owner decides where the household's data goes.
func (s *Server) recipientAction(w http.ResponseWriter, r *http.Request, v viewer) bool {
	if s.cfg.Recipients == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return false
	}
	if !v.CanManage(v.Account.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, identity.ErrForbidden)
		return false
	}
	return true
}

// postRecipientSet sets (or changes) where a recipient receives.
func (s *Server) postRecipientSet(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.recipientAction(w, r, v) {
		return
	}
	name := r.PostFormValue("name")
	u := strings.TrimSpace(r.PostFormValue("url"))
	err := s.cfg.Recipients.Set(r.Context(), v.Account.HouseholdID, name, u)
	if errors.Is(err, forward.ErrBadURL) {
		field := ""
		if list, lerr := s.cfg.Recipients.List(r.Context(), v.Account.HouseholdID); lerr == nil {
			for i, rc := range list {
				if rc.Name == name {
					field = "recipient-" + strconv.Itoa(i+1) + "-url"
				}
			}
		}
		s.renderRecipients(w, r, v, http.StatusUnprocessableEntity, name, u, []formError{{Field: field, Message: urlMessage(u, err)}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("recipient endpoint set", "household", v.Account.HouseholdID, "account", v.Account.ID)
	s.flash(v, "Data for "+nameInSentence(name)+" now goes to "+u+". Only the streams a person switched on are sent.")
	http.Redirect(w, r, "/recipients?done="+flashDone, http.StatusSeeOther)
}

// urlMessage says why an address was refused, in forward.CheckURL's words.
func urlMessage(typed string, err error) string {
	if typed == "" {
		return "Enter the web address where it goes. It starts with https://."
	}
	return sentence(upperFirst(strings.TrimPrefix(err.Error(), "url: ")))
}

// postRecipientRemove stops sending to a recipient.
func (s *Server) postRecipientRemove(w http.ResponseWriter, r *http.Request, v viewer) {
	if !s.recipientAction(w, r, v) {
		return
	}
	name := r.PostFormValue("name")
	if err := s.cfg.Recipients.Remove(r.Context(), v.Account.HouseholdID, name); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("recipient endpoint removed", "household", v.Account.HouseholdID, "account", v.Account.ID)
	s.flash(v, "Nothing more goes to "+nameInSentence(name)+". What was still waiting to go was dropped.")
	http.Redirect(w, r, "/recipients?done="+flashDone, http.StatusSeeOther)
}

// plural writes a count with its noun: "1 reading", "1,024 readings".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}
