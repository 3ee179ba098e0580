package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// "Your apps": the household's own programs (Home Assistant, Node-RED, a
// script) that get its readings live over MQTT. Each gets a stream only
// when a person switched it on here or on the device page. An owner adds
// an app (its secret is shown once), makes a new secret or revokes it.
// The rules are the apps service's and access's, as for the API.

func init() { pageNames = append(pageNames, "apps") }

// Apps is the service behind the apps page (package apps).
type Apps interface {
	Add(ctx context.Context, na apps.NewApp) (store.App, string, error)
	List(ctx context.Context, householdID string) ([]store.App, error)
	App(ctx context.Context, id string) (store.App, error)
	Rotate(ctx context.Context, actor auditlog.Actor, id string) (string, error)
	Revoke(ctx context.Context, actor auditlog.Actor, id string) error
	Set(ctx context.Context, sw apps.Switch) error
	Visible(appID, topic string) bool
	Stats(appID string) apps.Stats
	// KeepsLast, MayCommand and CommandNames answer the last-value and
	// command switches.
	KeepsLast(appID, deviceID, stream string) bool
	MayCommand(appID, deviceID, name string) bool
	CommandNames(ctx context.Context, deviceID string) []string
}

// Bridge is the Zigbee2MQTT bridge (package bridge), for the apps page.
type Bridge interface {
	Online(bridgeID string) bool
	Seen(ctx context.Context, household string) ([]bridge.SeenDevice, error)
	AddDevice(ctx context.Context, household, friendlyName, deviceType, keyOwner string) (store.Device, error)
}

// zigbeeView is one device a Zigbee2MQTT bridge announced; Field is the
// id of its type choice when it can be added here.
type zigbeeView struct {
	Name, Model, DeviceID string
	Field                 string
}

// appPurposes are the purposes offered when adding an app, with the words
// the page shows.
var appPurposes = []string{"candor:HomeAutomation", "dpv:ServiceProvision", "candor:EnergyManagement"}

type appsView struct {
	Available bool
	CanManage bool
	MQTTAddr  string
	Purposes  []purposeOption
	Apps      []appView
	// ZigbeeTypes are the device types with a confirmed manifest, which
	// an announced Zigbee device can be added as.
	ZigbeeTypes []typeChoice
	// New is set right after an app was added or got a new secret: the
	// only time its secret is shown.
	New *newAppSecret
}

type purposeOption struct{ ID, Words string }

type newAppSecret struct {
	ID, Name, Secret string
}

type appView struct {
	ID, Name, Description string
	Purposes              []string
	Revoked               bool
	// Bridge: a Zigbee2MQTT bridge, which passes data to the hub and
	// gets none; Online and Zigbee say what it last told the hub.
	Bridge             bool
	Online             bool
	Zigbee             []zigbeeView
	Delivered, Dropped string
	Uses               []appUseView
}

// appUseView is one use of one device by an app, and whether it is on:
// Use "stream" (it gets the stream), "retain" (it gets the stream's last
// value as soon as it connects) or "command" (it may send the command).
type appUseView struct {
	AppID, AppName         string
	DeviceID, DeviceName   string
	Stream, StreamTitle    string
	Use                    string
	On                     bool
	ElementID, Description string
}

func (s *Server) appsPage(w http.ResponseWriter, r *http.Request, v viewer) {
	s.renderApps(w, r, v, http.StatusOK, nil, nil)
}

func (s *Server) renderApps(w http.ResponseWriter, r *http.Request, v viewer, status int, fresh *newAppSecret, errs []formError) {
	p := s.pageFor(r, v, "Your apps", "apps")
	p.Errors = errs
	av := appsView{Available: s.cfg.Apps != nil, CanManage: v.CanManage(v.Account.HouseholdID), MQTTAddr: s.cfg.MQTTAddr, New: fresh}
	for _, id := range appPurposes {
		av.Purposes = append(av.Purposes, purposeOption{ID: id, Words: manifest.PurposeWords(id)})
	}
	if av.Available {
		list, err := s.cfg.Apps.List(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		streams, err := s.appStreams(r.Context(), v.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, a := range list {
			view := s.appView(a, streams)
			if view.Bridge && !view.Revoked && s.cfg.Bridge != nil {
				view.Online = s.cfg.Bridge.Online(a.ID)
				seen, err := s.cfg.Bridge.Seen(r.Context(), a.HouseholdID)
				if err != nil {
					s.fail(w, r, err)
					return
				}
				for i, d := range seen {
					model := strings.TrimSpace(d.Vendor + " " + d.Model)
					view.Zigbee = append(view.Zigbee, zigbeeView{Name: d.FriendlyName, Model: model, DeviceID: d.DeviceID,
						Field: fmt.Sprintf("zigbee-%s-%d", a.ID, i)})
				}
				if av.ZigbeeTypes == nil && av.CanManage {
					av.ZigbeeTypes = s.confirmedTypes()
				}
			}
			av.Apps = append(av.Apps, view)
		}
	}
	p.Data = av
	s.render(w, r, status, "apps", p)
}

// deviceStream is one stream (or, Command set, one command) of one of
// the household's devices.
type deviceStream struct {
	DeviceID, DeviceName, Stream, Title string
	Command                             bool
}

// appStreams lists every stream of the household's devices an app could
// be allowed.
func (s *Server) appStreams(ctx context.Context, householdID string) ([]deviceStream, error) {
	devs, err := s.st.Devices(ctx, householdID)
	if err != nil {
		return nil, err
	}
	var out []deviceStream
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		e, err := s.cfg.Catalog.Current(d.Type)
		if err != nil {
			continue // no manifest in force: nothing of it can go anywhere
		}
		out = append(out, s.deviceUses(ctx, d, e.Manifest)...)
	}
	return out, nil
}

// deviceUses lists a device's streams and then the commands an app could
// be allowed to send it.
func (s *Server) deviceUses(ctx context.Context, d store.Device, m *manifest.Manifest) []deviceStream {
	var out []deviceStream
	for _, st := range m.Streams {
		out = append(out, deviceStream{DeviceID: d.ID, DeviceName: d.Name, Stream: st.Name, Title: streamTitle(st)})
	}
	for _, name := range s.cfg.Apps.CommandNames(ctx, d.ID) {
		title := name
		if st := m.Stream(name); st != nil {
			title = streamTitle(st)
		}
		out = append(out, deviceStream{DeviceID: d.ID, DeviceName: d.Name, Stream: name, Title: title, Command: true})
	}
	return out
}

func streamTitle(st *manifest.Stream) string {
	if st.Title != "" {
		return st.Title
	}
	return st.Name
}

func (s *Server) appView(a store.App, streams []deviceStream) appView {
	st := s.cfg.Apps.Stats(a.ID)
	view := appView{ID: a.ID, Name: a.Name, Description: a.Description, Revoked: a.Revoked(),
		Delivered: plural(int64(st.Delivered), "reading", "readings"), Dropped: plural(int64(st.Dropped), "reading", "readings")}
	for _, p := range a.Purposes {
		view.Purposes = append(view.Purposes, manifest.PurposeWords(p))
	}
	view.Bridge = a.Kind == apps.KindZigbee2MQTT
	if view.Revoked || view.Bridge {
		return view
	}
	for _, ds := range streams {
		view.Uses = append(view.Uses, s.appUses(a, ds)...)
	}
	return view
}

// appUses are the switches of one stream (whether the app gets it and,
// once it does, whether it gets the last value at once) or of one
// command.
func (s *Server) appUses(a store.App, ds deviceStream) []appUseView {
	u := appUseView{AppID: a.ID, AppName: a.Name, DeviceID: ds.DeviceID, DeviceName: ds.DeviceName,
		Stream: ds.Stream, StreamTitle: ds.Title, Use: "stream",
		ElementID:   "use-" + a.ID + "-" + ds.DeviceID + "-" + ds.Stream,
		Description: ds.Title + " from " + ds.DeviceName + " to " + a.Name}
	if ds.Command {
		u.Use, u.On = "command", s.cfg.Apps.MayCommand(a.ID, ds.DeviceID, ds.Stream)
		u.ElementID += "-command"
		u.Description = a.Name + " may change " + ds.Title + " on " + ds.DeviceName
		return []appUseView{u}
	}
	u.On = s.cfg.Apps.Visible(a.ID, apps.TopicRoot+"/"+ds.DeviceID+"/"+ds.Stream)
	if !u.On {
		return []appUseView{u}
	}
	last := u
	last.Use, last.On = "retain", s.cfg.Apps.KeepsLast(a.ID, ds.DeviceID, ds.Stream)
	last.ElementID += "-last"
	last.Description = "the last " + ds.Title + " from " + ds.DeviceName + " to " + a.Name + " at once"
	return []appUseView{u, last}
}

// deviceApps lists, for the device page, what each of the household's
// apps gets from the device.
func (s *Server) deviceApps(ctx context.Context, d store.Device, m *manifest.Manifest, list []store.App) []appUseView {
	var out []appUseView
	uses := s.deviceUses(ctx, d, m)
	for _, a := range list {
		if a.Revoked() || a.Kind == apps.KindZigbee2MQTT {
			continue
		}
		for _, ds := range uses {
			out = append(out, s.appUses(a, ds)...)
		}
	}
	return out
}

// appAction starts a POST about one of the household's apps.
func (s *Server) appAction(w http.ResponseWriter, r *http.Request, v viewer, allowed func(string) bool) (store.App, bool) {
	if s.cfg.Apps == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return store.App{}, false
	}
	a, err := s.cfg.Apps.App(r.Context(), r.PostFormValue("app"))
	if err == nil {
		err = v.See("app", a.ID, a.HouseholdID)
	}
	if err != nil {
		s.fail(w, r, err)
		return store.App{}, false
	}
	if !allowed(a.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, errors.New("only an owner of your household can do this"))
		return store.App{}, false
	}
	return a, true
}

// postAppAdd adds an app and shows its secret, once.
func (s *Server) postAppAdd(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Apps == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	if !v.CanManage(v.Account.HouseholdID) {
		s.renderError(w, r, http.StatusForbidden, errors.New("only an owner of your household can add an app"))
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	purpose := r.PostFormValue("purpose")
	if !slices.Contains(appPurposes, purpose) {
		s.renderApps(w, r, v, http.StatusUnprocessableEntity, nil, []formError{{Field: "app-purpose", Message: "Choose what the app uses the data for."}})
		return
	}
	na := apps.NewApp{HouseholdID: v.Account.HouseholdID, Name: name,
		Description: strings.TrimSpace(r.PostFormValue("description")), Purposes: []string{purpose}, Actor: v.Actor()}
	if r.PostFormValue("home_assistant") == "1" {
		na.Kind = apps.KindHomeAssistant
	}
	a, secret, err := s.cfg.Apps.Add(r.Context(), na)
	if errors.Is(err, apps.ErrInvalid) {
		msg := "Give the app a name of up to 64 letters."
		if strings.Contains(err.Error(), "description") {
			msg = "Say what it is for in up to 280 letters."
		}
		s.renderApps(w, r, v, http.StatusUnprocessableEntity, nil, []formError{{Field: "app-name", Message: msg}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderApps(w, r, v, http.StatusCreated, &newAppSecret{ID: a.ID, Name: a.Name, Secret: secret}, nil)
}

// postAppSwitch switches whether an app gets one stream of one device.
func (s *Server) postAppSwitch(w http.ResponseWriter, r *http.Request, v viewer) {
	a, ok := s.appAction(w, r, v, v.CanSwitchApps)
	if !ok {
		return
	}
	on := r.PostFormValue("on") == "1"
	deviceID, stream := r.PostFormValue("device"), r.PostFormValue("stream")
	sw := apps.Switch{AppID: a.ID, DeviceID: deviceID, Stream: stream, On: on, Actor: v.Actor()}
	switch r.PostFormValue("use") {
	case "command":
		sw.Command = true
	case "retain":
		sw.Retain = true
	}
	if err := s.cfg.Apps.Set(r.Context(), sw); err != nil {
		s.fail(w, r, err)
		return
	}
	switch {
	case sw.Command && on:
		s.flash(v, a.Name+" may now change this. Each change is logged.")
	case sw.Command:
		s.flash(v, a.Name+" may no longer change this.")
	case sw.Retain && on:
		s.flash(v, a.Name+" now gets the last reading as soon as it connects. The hub keeps it in memory only.")
	case sw.Retain:
		s.flash(v, a.Name+" no longer gets the last reading when it connects. The hub forgot it.")
	case on:
		s.flash(v, a.Name+" now gets this data, from the next reading on.")
	default:
		s.flash(v, a.Name+" no longer gets this data, from the next reading on.")
	}
	back := "/apps?done=" + flashDone + "#app-" + a.ID
	if r.PostFormValue("back") == "device" {
		back = "/devices/" + deviceID + "?done=" + flashDone + "#apps"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// postAppRotate gives an app a new secret and shows it, once.
func (s *Server) postAppRotate(w http.ResponseWriter, r *http.Request, v viewer) {
	a, ok := s.appAction(w, r, v, v.CanManage)
	if !ok {
		return
	}
	secret, err := s.cfg.Apps.Rotate(r.Context(), v.Actor(), a.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderApps(w, r, v, http.StatusOK, &newAppSecret{ID: a.ID, Name: a.Name, Secret: secret}, nil)
}

// postAppRevoke revokes an app for good.
func (s *Server) postAppRevoke(w http.ResponseWriter, r *http.Request, v viewer) {
	a, ok := s.appAction(w, r, v, v.CanManage)
	if !ok {
		return
	}
	if err := s.cfg.Apps.Revoke(r.Context(), v.Actor(), a.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.flash(v, a.Name+" is revoked. It can no longer connect, and it gets nothing more.")
	http.Redirect(w, r, "/apps?done="+flashDone, http.StatusSeeOther)
}

// confirmedTypes are the device types whose manifest in force is
// confirmed: only those can be given to a Zigbee device (bridge.AddDevice
// says the same).
func (s *Server) confirmedTypes() []typeChoice {
	var out []typeChoice
	for _, c := range s.typeChoices() {
		if e, err := s.cfg.Catalog.Current(c.Type); err == nil && !e.Draft {
			out = append(out, c)
		}
	}
	return out
}

// postZigbeeAdd adds a Zigbee device the household's bridge announced, as
// the type an owner chose; its page is next.
func (s *Server) postZigbeeAdd(w http.ResponseWriter, r *http.Request, v viewer) {
	if s.cfg.Apps == nil || s.cfg.Bridge == nil {
		s.renderError(w, r, http.StatusNotFound, nil)
		return
	}
	hh := v.Account.HouseholdID
	if !v.CanManage(hh) {
		s.renderError(w, r, http.StatusForbidden, errors.New("only an owner of your household can add a device"))
		return
	}
	name, typ, field := r.PostFormValue("friendly_name"), r.PostFormValue("type"), r.PostFormValue("field")
	seen, err := s.cfg.Bridge.Seen(r.Context(), hh)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !slices.ContainsFunc(seen, func(d bridge.SeenDevice) bool { return d.FriendlyName == name && d.DeviceID == "" }) {
		s.renderApps(w, r, v, http.StatusUnprocessableEntity, nil, []formError{{Field: field, Message: "Zigbee2MQTT did not tell the hub about this device, or it is added already."}})
		return
	}
	if !slices.ContainsFunc(s.confirmedTypes(), func(c typeChoice) bool { return c.Type == typ }) {
		s.renderApps(w, r, v, http.StatusUnprocessableEntity, nil, []formError{{Field: field, Message: "Choose one of the types in the list."}})
		return
	}
	d, err := s.cfg.Bridge.AddDevice(r.Context(), hh, name, typ, v.KeyOwnerFor(hh, false))
	if errors.Is(err, bridge.ErrInvalid) {
		s.renderApps(w, r, v, http.StatusUnprocessableEntity, nil, []formError{{Field: field, Message: "The hub could not add it. Check its name and type."}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices/"+url.PathEscape(d.ID), http.StatusSeeOther)
}
