package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/store"
)

func init() { pageNames = append(pageNames, "alerts", "monitoring") }

// AlertPrefs keeps each person's choice of which alarms reach them by
// e-mail (the store does).
type AlertPrefs interface {
	PutAlertPrefs(ctx context.Context, p store.AlertPrefs) error
	AlertPrefs(ctx context.Context, householdID string) ([]store.AlertPrefs, error)
}

// Policies is what the admin's monitoring page needs of the monitor.
type Policies interface {
	Policy() monitor.Policy
	ChangePolicy(ctx context.Context, by auditlog.Actor, p monitor.Policy) error
}

// choice is one radio button.
type choice struct {
	Value, Label, Hint string
	Checked            bool
}

// alarmWords names each severity for people, with an example.
var alarmWords = map[monitor.Severity][2]string{
	monitor.Info:     {"Small things", "For example, a device joins from a new place."},
	monitor.Warning:  {"Odd behaviour", "For example, a device sends much more than it said it would."},
	monitor.Critical: {"Serious trouble", "For example, two copies of one device, or a device that ignores your off switch."},
}

// holdWords names each action for the admin.
var holdWords = map[monitor.Action][2]string{
	monitor.ActNotify:     {"Only tell people", "Nothing changes for the device."},
	monitor.ActRateLimit:  {"Slow it down", "The hub turns away messages above twice the rate the device said."},
	monitor.ActQuarantine: {"Put it on hold", "The hub keeps and passes on nothing it sends until its owner releases it."},
	monitor.ActRevoke:     {"Lock it out", "The device's secret stops working. Someone must set it up again."},
}

type severityRow struct {
	Name, Title, Hint string
	Choices           []choice
}

type monitoringForm struct {
	Available bool
	Rows      []severityRow
}

func policyRows(p monitor.Policy) []severityRow {
	var rows []severityRow
	for _, sev := range monitor.Severities() {
		w := alarmWords[sev]
		row := severityRow{Name: sev.String(), Title: w[0], Hint: w[1]}
		for _, act := range monitor.Actions() {
			aw := holdWords[act]
			row.Choices = append(row.Choices, choice{Value: string(act), Label: aw[0], Hint: aw[1], Checked: p[sev] == act})
		}
		rows = append(rows, row)
	}
	return rows
}

// monitoringPage lets the admin choose what the hub does about alarms of
// each severity.
func (s *Server) monitoringPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	mf := monitoringForm{Available: s.cfg.Policies != nil}
	if mf.Available {
		mf.Rows = policyRows(s.cfg.Policies.Policy())
	}
	p := s.pageFor(r, v, "What the hub does about odd devices", "admin")
	p.Data = mf
	s.render(w, r, http.StatusOK, "monitoring", p)
}

func (s *Server) postMonitoring(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Admin() || s.cfg.Policies == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	p := monitor.Policy{}
	var errs []formError
	for _, sev := range monitor.Severities() {
		act, err := monitor.ParseAction(r.PostFormValue(sev.String()))
		if err != nil {
			errs = append(errs, formError{Field: "action-" + sev.String() + "-" + string(monitor.ActNotify),
				Message: "Choose what to do about " + strings.ToLower(alarmWords[sev][0]) + "."})
			continue
		}
		p[sev] = act
	}
	if len(errs) == 0 {
		err := s.cfg.Policies.ChangePolicy(r.Context(), v.Actor(), p)
		if err == nil {
			s.flash(v, "Saved. The hub acts this way on the next alarm.")
			http.Redirect(w, r, "/admin/monitoring?done="+flashDone, http.StatusSeeOther)
			return
		}
		if !errors.Is(err, monitor.ErrBadPolicy) {
			s.fail(w, r, err)
			return
		}
		errs = append(errs, formError{Message: upperFirst(sentence(err.Error()))})
	}
	pg := s.pageFor(r, v, "What the hub does about odd devices", "admin")
	pg.Data = monitoringForm{Available: true, Rows: policyRows(p)}
	pg.Errors = errs
	s.render(w, r, http.StatusUnprocessableEntity, "monitoring", pg)
}

type alertsForm struct {
	Available bool
	Mail      bool // the hub can send e-mail
	Email     string
	Choices   []choice
}

func alertChoices(min string) []choice {
	out := []choice{{Value: "", Label: "None", Hint: "No e-mail. You still see each alarm on the device's page.", Checked: min == ""}}
	for _, sev := range monitor.Severities() {
		w := alarmWords[sev]
		label := w[0] + " and worse"
		if sev == monitor.Critical {
			label = w[0] + " only"
		}
		out = append(out, choice{Value: sev.String(), Label: label, Hint: w[1], Checked: min == sev.String()})
	}
	return out
}

// alertsPage lets a person choose which alarms about their household's
// devices reach them by e-mail.
func (s *Server) alertsPage(w http.ResponseWriter, r *http.Request, v viewer) {
	if v.Account.ID == "" || v.Account.HouseholdID == "" {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	af := alertsForm{Available: s.cfg.Alerts != nil, Mail: s.cfg.AlertMail}
	min := ""
	if af.Available {
		ps, err := s.cfg.Alerts.AlertPrefs(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, x := range ps {
			if x.AccountID == v.Account.ID {
				min, af.Email = x.MinSeverity, x.Email
			}
		}
	}
	af.Choices = alertChoices(min)
	p := s.pageFor(r, v, "Alarms by e-mail", "security")
	p.Data = af
	s.render(w, r, http.StatusOK, "alerts", p)
}

func (s *Server) postAlerts(w http.ResponseWriter, r *http.Request, v viewer) {
	if v.Account.ID == "" || v.Account.HouseholdID == "" || s.cfg.Alerts == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	min := r.PostFormValue("min")
	email := strings.TrimSpace(r.PostFormValue("email"))
	var errs []formError
	if min != "" {
		if _, err := monitor.ParseSeverity(min); err != nil {
			errs = append(errs, formError{Field: "alerts-min-none", Message: "Choose which alarms reach you."})
		}
	}
	switch {
	case email != "" && (!strings.Contains(email, "@") || strings.ContainsAny(email, " \r\n<>")):
		errs = append(errs, formError{Field: "alerts-email", Message: "Give an e-mail address, such as ann@example.org."})
	case email == "" && min != "":
		errs = append(errs, formError{Field: "alerts-email", Message: "Give the e-mail address the alarms go to."})
	}
	if len(errs) == 0 {
		if err := s.cfg.Alerts.PutAlertPrefs(r.Context(), store.AlertPrefs{AccountID: v.Account.ID, MinSeverity: min, Email: email}); err != nil {
			s.fail(w, r, err)
			return
		}
		s.flash(v, "Saved. New alarms reach you as you chose.")
		http.Redirect(w, r, "/alerts?done="+flashDone, http.StatusSeeOther)
		return
	}
	p := s.pageFor(r, v, "Alarms by e-mail", "security")
	p.Data = alertsForm{Available: true, Mail: s.cfg.AlertMail, Email: email, Choices: alertChoices(min)}
	p.Errors = errs
	s.render(w, r, http.StatusUnprocessableEntity, "alerts", p)
}
