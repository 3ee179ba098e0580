package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/store"
)

// Monitor is the abuse monitor as the pages use it: what it found about a
// device, and releasing a device it holds back (it records the release).
type Monitor interface {
	Status(deviceID string) (monitor.Status, bool)
	Active(deviceID string) []monitor.Alarm
	Release(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error
	Recent(ctx context.Context, deviceID string, since time.Time) ([]store.MonitorWindow, error)
	Keep() time.Duration
	Now() time.Time
}

// behaviourView is the device page's table of what the monitor counted
// in the last day, hour by hour: counts and sizes, never values.
type behaviourView struct {
	Hours    []hourView
	KeepDays int
}

type hourView struct {
	Start                                     time.Time
	Messages, AvgBytes, Refused, WrongSecrets int64
	Probes, Connects                          int64
}

// behaviour builds the view from the monitor's stored windows, or nil
// when the monitor keeps none.
func (s *Server) behaviour(ctx context.Context, deviceID string) (*behaviourView, error) {
	if s.cfg.Monitor == nil {
		return nil, nil
	}
	since := s.cfg.Monitor.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	ws, err := s.cfg.Monitor.Recent(ctx, deviceID, since)
	if errors.Is(err, monitor.ErrNoHistory) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := &behaviourView{KeepDays: int(s.cfg.Monitor.Keep().Hours() / 24)}
	var bytes int64
	for _, w := range ws {
		start := w.Start.Truncate(time.Hour)
		if n := len(v.Hours); n == 0 || !v.Hours[n-1].Start.Equal(start) {
			if n > 0 && v.Hours[n-1].Messages > 0 {
				v.Hours[n-1].AvgBytes = bytes / v.Hours[n-1].Messages
			}
			bytes = 0
			v.Hours = append(v.Hours, hourView{Start: start})
		}
		h := &v.Hours[len(v.Hours)-1]
		h.Messages += w.Readings
		bytes += w.Bytes
		h.Refused += w.Refused
		h.WrongSecrets += w.WrongSecrets
		h.Probes += w.Probes
		h.Connects += w.Connects
	}
	if n := len(v.Hours); n > 0 && v.Hours[n-1].Messages > 0 {
		v.Hours[n-1].AvgBytes = bytes / v.Hours[n-1].Messages
	}
	return v, nil
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
