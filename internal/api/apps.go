package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// Apps is the service behind /api/v1/apps (package apps).
type Apps interface {
	Add(ctx context.Context, na apps.NewApp) (store.App, string, error)
	App(ctx context.Context, id string) (store.App, error)
	List(ctx context.Context, householdID string) ([]store.App, error)
	Rotate(ctx context.Context, actor auditlog.Actor, id string) (string, error)
	Revoke(ctx context.Context, actor auditlog.Actor, id string) error
	Set(ctx context.Context, sw apps.Switch) error
	Grants(ctx context.Context, appID string) ([]store.AppGrant, error)
	Authenticate(ctx context.Context, id, secret string) (store.App, error)
	Visible(appID, topic string) bool
	Stats(appID string) apps.Stats
}

type appGrantJSON struct {
	DeviceID string `json:"device_id"`
	Stream   string `json:"stream"`
	Topic    string `json:"topic"`
}

type appJSON struct {
	ID          string         `json:"id"`
	Household   string         `json:"household_id"`
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Purposes    []string       `json:"purposes"`
	Kind        string         `json:"kind,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	Revoked     bool           `json:"revoked"`
	Receives    []appGrantJSON `json:"receives"`
	Delivery    apps.Stats     `json:"delivery"`
}

func (s *Server) toApp(ctx context.Context, a store.App) (appJSON, error) {
	out := appJSON{ID: a.ID, Household: a.HouseholdID, Name: a.Name, Description: a.Description, Purposes: a.Purposes, Kind: a.Kind,
		CreatedAt: a.CreatedAt, Revoked: a.Revoked(), Receives: []appGrantJSON{}, Delivery: s.cfg.Apps.Stats(a.ID)}
	if out.Purposes == nil {
		out.Purposes = []string{}
	}
	gs, err := s.cfg.Apps.Grants(ctx, a.ID)
	if err != nil {
		return appJSON{}, err
	}
	for _, g := range gs {
		out.Receives = append(out.Receives, appGrantJSON{DeviceID: g.DeviceID, Stream: g.Stream, Topic: apps.TopicRoot + "/" + g.DeviceID + "/" + g.Stream})
	}
	return out, nil
}

func (s *Server) appsOff(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Apps == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "apps-unavailable", "this hub does not serve apps")
		return true
	}
	return false
}

// app loads an app the caller may see; another household's is not found.
func (s *Server) app(r *http.Request, p access.Principal) (store.App, error) {
	a, err := s.cfg.Apps.App(r.Context(), r.PathValue("id"))
	if err != nil {
		return store.App{}, err
	}
	if err := p.See("app", a.ID, a.HouseholdID); err != nil {
		return store.App{}, err
	}
	return a, nil
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.appsOff(w, r) {
		return
	}
	hh := ""
	if !p.Operator || r.URL.Query().Get("household") != "" {
		var err error
		if hh, err = s.householdParam(r, p, r.URL.Query().Get("household")); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	list, err := s.cfg.Apps.List(r.Context(), hh)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]appJSON, 0, len(list))
	for _, a := range list {
		aj, err := s.toApp(r.Context(), a)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, aj)
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (s *Server) addApp(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.appsOff(w, r) {
		return
	}
	var in struct {
		Name        string   `json:"name"`
		Description string   `json:"description,omitempty"`
		Purposes    []string `json:"purposes"`
		Household   string   `json:"household,omitempty"`
		Kind        string   `json:"kind,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	hh, err := s.householdParam(r, p, in.Household)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hh == "" {
		s.fail(w, r, badRequest("household: this hub has no household yet; add a device or an account first"))
		return
	}
	if !p.CanManage(hh) {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	a, secret, err := s.cfg.Apps.Add(r.Context(), apps.NewApp{HouseholdID: hh, Name: in.Name, Description: in.Description,
		Purposes: in.Purposes, Kind: in.Kind, Actor: p.Actor()})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	aj, err := s.toApp(r.Context(), a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"app": aj, "secret": secret,
		"mqtt": map[string]string{"username": a.ID, "topics": apps.TopicRoot + "/<device-id>/<stream>"},
		"note": "The secret is shown only this once. The app receives nothing until someone allows it a stream."})
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if s.appsOff(w, r) {
		return
	}
	a, err := s.app(r, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	aj, err := s.toApp(r.Context(), a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, aj)
}

func (s *Server) managedApp(w http.ResponseWriter, r *http.Request, p access.Principal) (store.App, bool) {
	if s.appsOff(w, r) {
		return store.App{}, false
	}
	a, err := s.app(r, p)
	if err == nil && !p.CanManage(a.HouseholdID) {
		err = identity.ErrForbidden
	}
	if err != nil {
		s.fail(w, r, err)
		return store.App{}, false
	}
	return a, true
}

func (s *Server) rotateApp(w http.ResponseWriter, r *http.Request, p access.Principal) {
	a, ok := s.managedApp(w, r, p)
	if !ok {
		return
	}
	secret, err := s.cfg.Apps.Rotate(r.Context(), p.Actor(), a.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": a.ID, "secret": secret})
}

func (s *Server) revokeApp(w http.ResponseWriter, r *http.Request, p access.Principal) {
	a, ok := s.managedApp(w, r, p)
	if !ok {
		return
	}
	if err := s.cfg.Apps.Revoke(r.Context(), p.Actor(), a.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": a.ID, "revoked": true})
}

// setAppGrant switches whether an app receives one stream of one device.
func (s *Server) setAppGrant(w http.ResponseWriter, r *http.Request, p access.Principal) {
	s.switchApp(w, r, p, "stream")
}

// switchApp switches one use of an app: "stream" (it receives the
// stream), "command" (it may send the command) or "retain" (it gets the
// stream's last value when it subscribes).
func (s *Server) switchApp(w http.ResponseWriter, r *http.Request, p access.Principal, use string) {
	if s.appsOff(w, r) {
		return
	}
	a, err := s.app(r, p)
	if err == nil && !p.CanSwitchApps(a.HouseholdID) {
		err = identity.ErrForbidden
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		On *bool `json:"on"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.On == nil {
		s.fail(w, r, badRequest("on: say true (the app receives the stream) or false (it does not)"))
		return
	}
	sw := apps.Switch{AppID: a.ID, DeviceID: r.PathValue("device"), Stream: r.PathValue("stream"), On: *in.On, Actor: p.Actor()}
	switch use {
	case "command":
		sw.Stream, sw.Command = r.PathValue("name"), true
	case "retain":
		sw.Retain = true
	}
	if err := s.cfg.Apps.Set(r.Context(), sw); err != nil {
		s.fail(w, r, err)
		return
	}
	key := use
	if use == "retain" {
		key = "stream"
	}
	out := map[string]any{"app_id": a.ID, "device_id": sw.DeviceID, key: sw.Stream, "on": sw.On}
	if use == "retain" {
		out["last_value"] = sw.On
	}
	writeJSON(w, http.StatusOK, out)
}

// setAppRetain switches whether an app gets a stream's last value (kept
// in memory only) when it subscribes.
func (s *Server) setAppRetain(w http.ResponseWriter, r *http.Request, p access.Principal) {
	s.switchApp(w, r, p, "retain")
}

// setAppCommand switches whether an app may send one declared command to
// one device.
func (s *Server) setAppCommand(w http.ResponseWriter, r *http.Request, p access.Principal) {
	s.switchApp(w, r, p, "command")
}

// appReadings lets an app catch up from the stored history after its
// live queue overflowed: the app authenticates with its own credential
// (HTTP Basic: its id and secret) and reads, from the cursor since=<seq>
// on, only the streams it is allowed now. Each read is logged.
func (s *Server) appReadings(w http.ResponseWriter, r *http.Request) {
	if s.appsOff(w, r) {
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="candor apps"`)
		writeProblem(w, r, http.StatusUnauthorized, "unauthenticated", "send the app's id and secret with HTTP Basic authentication")
		return
	}
	a, err := s.cfg.Apps.Authenticate(r.Context(), user, pass)
	if err != nil || a.ID != r.PathValue("id") {
		if err == nil || errors.Is(err, apps.ErrUnauthenticated) {
			writeProblem(w, r, http.StatusUnauthorized, "unauthenticated", "wrong app id or secret")
			return
		}
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	deviceID, stream := q.Get("device"), q.Get("stream")
	if deviceID == "" || stream == "" {
		s.fail(w, r, badRequest("device and stream: name the device and the stream to catch up on"))
		return
	}
	if !s.cfg.Apps.Visible(a.ID, apps.TopicRoot+"/"+deviceID+"/"+stream) {
		// Not allowed is answered like unknown, so an app cannot probe.
		s.fail(w, r, &access.NotFoundError{Kind: "stream", ID: deviceID + "/" + stream})
		return
	}
	var after int64
	if v := q.Get("since"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			s.fail(w, r, badRequest("since: a reading sequence number (0 or more), such as the next_after of the previous page"))
			return
		}
	}
	d, err := s.st.Device(r.Context(), deviceID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.History == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "history-unavailable", "this hub does not serve readings")
		return
	}
	ctx := auditlog.WithActor(r.Context(), auditlog.Actor{Kind: auditlog.ActorRecipient, ID: a.ID})
	open := func(list []store.Reading) error { return s.openReadings(d, list) }
	list, err := s.cfg.History.Read(ctx, d, store.ReadingQuery{Stream: stream, AfterSeq: after}, "app catch-up", open)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]readingJSON, 0, len(list))
	last := after
	for _, rd := range list {
		out = append(out, readingJSON{Seq: rd.Seq, Stream: rd.Stream, Time: rd.Time, Payload: rd.Payload, ManifestVersion: rd.ManifestVersion})
		last = rd.Seq
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": d.ID, "stream": stream, "readings": out, "next_after": last})
}
