package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/monitor"
)

// Monitor is the abuse monitor as the pages use it: what it found about a
// device, and releasing a device it holds back (it records the release).
type Monitor interface {
	Status(deviceID string) (monitor.Status, bool)
	Active(deviceID string) []monitor.Alarm
	Release(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error
}

// watchView is the device page's account of what the monitor found.
type watchView struct {
	Quarantined bool
	RateLimited bool
	Since       time.Time
	Refused     int64
	Alarms      []monitor.Explanation
	CSRF        string
}

// Held reports whether the device is quarantined or rate-limited.
func (w *watchView) Held() bool { return w.Quarantined || w.RateLimited }

// watch builds the view, or nil when the monitor found nothing.
func (s *Server) watch(deviceID string) *watchView {
	if s.cfg.Monitor == nil {
		return nil
	}
	w := &watchView{}
	seen := map[monitor.Kind]bool{}
	if st, ok := s.cfg.Monitor.Status(deviceID); ok {
		w.Quarantined, w.RateLimited, w.Since, w.Refused = st.Quarantined, st.RateLimited, st.Since, st.Refused
		w.Alarms = append(w.Alarms, st.Alarm.Explain())
		seen[st.Alarm.Kind] = true
	}
	for _, a := range s.cfg.Monitor.Active(deviceID) {
		if !seen[a.Kind] {
			seen[a.Kind] = true
			w.Alarms = append(w.Alarms, a.Explain())
		}
	}
	if len(w.Alarms) == 0 {
		return nil
	}
	return w
}

// postRelease lifts the monitor's hold on a device, with the person's
// reason.
func (s *Server) postRelease(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := s.manageable(r, v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		s.showDevice(w, r, v, d, http.StatusUnprocessableEntity,
			[]formError{{Field: "release-reason", Message: "Say why you trust the device again."}})
		return
	}
	if s.cfg.Monitor == nil {
		s.fail(w, r, monitor.ErrNotHeld)
		return
	}
	if err := s.cfg.Monitor.Release(r.Context(), d.ID, v.Actor(), reason); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID)+"?done=released", http.StatusSeeOther)
}
