package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/store"
)

// Monitor is the abuse monitor as the API uses it: what it found about a
// device, and releasing a device it holds back (it records the release).
type Monitor interface {
	Status(deviceID string) (monitor.Status, bool)
	Active(deviceID string) []monitor.Alarm
	Release(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error
	Recent(ctx context.Context, deviceID string, since time.Time) ([]store.MonitorWindow, error)
}

// AlertPrefs keeps people's choices of which alarms reach them.
type AlertPrefs interface {
	PutAlertPrefs(ctx context.Context, p store.AlertPrefs) error
	AlertPrefs(ctx context.Context, householdID string) ([]store.AlertPrefs, error)
}

type alarmJSON struct {
	Kind     monitor.Kind `json:"kind"`
	Severity string       `json:"severity"`
	Stream   string       `json:"stream,omitempty"`
	Observed float64      `json:"observed"`
	Limit    float64      `json:"limit"`
	Window   string       `json:"window"`
	Why      string       `json:"why"`
	Risk     string       `json:"risk"`
	Next     string       `json:"next"`
}

func toAlarm(a monitor.Alarm) alarmJSON {
	ex := a.Explain()
	return alarmJSON{Kind: a.Kind, Severity: a.Severity.String(), Stream: a.Stream, Observed: a.Observed,
		Limit: a.Limit, Window: a.Window.String(), Why: ex.Why, Risk: ex.Risk, Next: ex.Next}
}

type holdJSON struct {
	Quarantined bool      `json:"quarantined"`
	RateLimited bool      `json:"rate_limited"`
	Since       time.Time `json:"since"`
	Refused     int64     `json:"refused"`
	Alarm       alarmJSON `json:"alarm"`
}

// windowJSON is one stored monitoring window: counts and sizes only.
type windowJSON struct {
	Start        time.Time `json:"start"`
	Seconds      float64   `json:"seconds"`
	Readings     int64     `json:"readings"`
	Bytes        int64     `json:"bytes"`
	MaxBytes     int64     `json:"max_bytes"`
	Refused      int64     `json:"refused"`
	WrongSecrets int64     `json:"wrong_secrets"`
	Probes       int64     `json:"probes"`
	Connects     int64     `json:"connects"`
}

// historyDefault is how far back the monitor's windows go when the
// request does not say.
const historyDefault = 24 * time.Hour

// deviceMonitor says what the monitor found about a device: its hold, if
// any, the alarms that are up, each explained, and its recent windows
// (from ?since=, an RFC 3339 time, or the last 24 hours).
func (s *Server) deviceMonitor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.device(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.Monitor == nil {
		s.fail(w, r, errUnavailable.Errorf("abuse monitoring is not running"))
		return
	}
	out := map[string]any{"held": nil, "alarms": []alarmJSON{}}
	if st, ok := s.cfg.Monitor.Status(d.ID); ok {
		out["held"] = holdJSON{Quarantined: st.Quarantined, RateLimited: st.RateLimited, Since: st.Since,
			Refused: st.Refused, Alarm: toAlarm(st.Alarm)}
	}
	alarms := []alarmJSON{}
	for _, a := range s.cfg.Monitor.Active(d.ID) {
		alarms = append(alarms, toAlarm(a))
	}
	out["alarms"] = alarms
	since := time.Now().Add(-historyDefault)
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			s.fail(w, r, badRequest("since: %q is not an RFC 3339 time", v))
			return
		}
	}
	history := []windowJSON{}
	ws, err := s.cfg.Monitor.Recent(r.Context(), d.ID, since)
	if err != nil && !errors.Is(err, monitor.ErrNoHistory) {
		s.fail(w, r, err)
		return
	}
	for _, x := range ws {
		history = append(history, windowJSON{Start: x.Start, Seconds: x.Length.Seconds(), Readings: x.Readings, Bytes: x.Bytes,
			MaxBytes: x.MaxBytes, Refused: x.Refused, WrongSecrets: x.WrongSecrets, Probes: x.Probes, Connects: x.Connects})
	}
	out["history"] = history
	writeJSON(w, http.StatusOK, out)
}

// releaseDevice lifts the monitor's hold on a device, with the person's
// reason; the monitor records it.
func (s *Server) releaseDevice(w http.ResponseWriter, r *http.Request, p access.Principal) {
	d, err := s.managedDevice(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Reason = strings.TrimSpace(in.Reason); in.Reason == "" {
		s.fail(w, r, badRequest("reason: say why the device may be trusted again"))
		return
	}
	if s.cfg.Monitor == nil {
		s.fail(w, r, errUnavailable.Errorf("abuse monitoring is not running"))
		return
	}
	if err := s.cfg.Monitor.Release(r.Context(), d.ID, p.Actor(), in.Reason); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": d.ID})
}

// myAlerts reads and sets which alarms about the household's devices reach
// the signed-in person by e-mail.
func (s *Server) getMyAlerts(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator || s.cfg.Alerts == nil {
		s.fail(w, r, badRequest("alert choices belong to a person's account"))
		return
	}
	ps, err := s.cfg.Alerts.AlertPrefs(r.Context(), p.Account.HouseholdID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]string{"min_severity": "", "email": ""}
	for _, x := range ps {
		if x.AccountID == p.Account.ID {
			out["min_severity"], out["email"] = x.MinSeverity, x.Email
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) putMyAlerts(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator || s.cfg.Alerts == nil {
		s.fail(w, r, badRequest("alert choices belong to a person's account"))
		return
	}
	var in struct {
		MinSeverity string `json:"min_severity"`
		Email       string `json:"email"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.MinSeverity != "" {
		if _, err := monitor.ParseSeverity(in.MinSeverity); err != nil {
			s.fail(w, r, badRequest("min_severity: %v", err))
			return
		}
	}
	if in.Email != "" && (!strings.Contains(in.Email, "@") || strings.ContainsAny(in.Email, " \r\n<>")) {
		s.fail(w, r, badRequest("email: %q is not an e-mail address", in.Email))
		return
	}
	if err := s.cfg.Alerts.PutAlertPrefs(r.Context(), store.AlertPrefs{AccountID: p.Account.ID, MinSeverity: in.MinSeverity, Email: in.Email}); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"min_severity": in.MinSeverity, "email": in.Email})
}

// Policies is the monitor's action per severity, as the admin sees and
// changes it (the monitor keeps and logs the change).
type Policies interface {
	Policy() monitor.Policy
	ChangePolicy(ctx context.Context, by auditlog.Actor, p monitor.Policy) error
}

func policyJSON(p monitor.Policy) map[string]string {
	out := map[string]string{}
	for sev, act := range p {
		out[sev.String()] = string(act)
	}
	return out
}

// getMonitorActions answers the admin with the action per severity.
func (s *Server) getMonitorActions(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Policies == nil {
		s.fail(w, r, errUnavailable.Errorf("abuse monitoring is not running"))
		return
	}
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON(s.cfg.Policies.Policy()))
}

// putMonitorActions sets the action for every severity at once, such as
// {"info": "notify", "warning": "rate_limit", "critical": "quarantine"}.
func (s *Server) putMonitorActions(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.cfg.Policies == nil {
		s.fail(w, r, errUnavailable.Errorf("abuse monitoring is not running"))
		return
	}
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	var in map[string]string
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	pol := monitor.Policy{}
	for sevS, actS := range in {
		sev, err := monitor.ParseSeverity(sevS)
		if err != nil {
			s.fail(w, r, badRequest("%v", err))
			return
		}
		act, err := monitor.ParseAction(actS)
		if err != nil {
			s.fail(w, r, badRequest("%s: %v", sevS, err))
			return
		}
		pol[sev] = act
	}
	if err := s.cfg.Policies.ChangePolicy(r.Context(), p.Actor(), pol); err != nil {
		if errors.Is(err, monitor.ErrBadPolicy) {
			s.fail(w, r, badRequest("%v", err))
			return
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON(s.cfg.Policies.Policy()))
}
