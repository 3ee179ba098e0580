package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// Home Assistant MQTT discovery. For an app of kind KindHomeAssistant the
// hub announces, as retained messages, one entity per field of each
// stream the app is allowed, at
//
//	homeassistant/<component>/<app-id>/<device-id>_<stream>_<field>/config
//
// (Home Assistant's <discovery_prefix>/<component>/<node_id>/<object_id>/config,
// with the app as the node, so an app sees only its own announcements),
// with units and device classes taken from the manifest. Withdrawing the
// use sends the empty retained message that removes the entity. The
// announcements say what exists, never a reading: the readings stay on
// their own topics, delivered only while allowed.

// KindHomeAssistant marks an app that gets Home Assistant discovery.
const KindHomeAssistant = "home-assistant"

// DiscoveryPrefix is Home Assistant's default discovery prefix.
const DiscoveryPrefix = "homeassistant"

// discoveryComponents are the components announced: numbers and text as
// sensors, booleans as binary sensors.
var discoveryComponents = []string{"sensor", "binary_sensor"}

// haUnits maps manifest units to Home Assistant's unit and device class.
var haUnits = map[string][2]string{
	"degree Celsius":   {"°C", "temperature"},
	"percent":          {"%", ""},
	"watt":             {"W", "power"},
	"kilowatt hour":    {"kWh", "energy"},
	"beats per minute": {"bpm", ""},
}

type announcement struct {
	topic   string
	payload []byte
}

// announcements are the discovery messages of one stream for one app.
func announcements(appID string, d store.Device, st *manifest.Stream) []announcement {
	var out []announcement
	for _, f := range st.Fields {
		component := "sensor"
		cfg := map[string]any{
			"name":        d.Name + " " + strings.ReplaceAll(f.Name, "_", " "),
			"unique_id":   "candor_" + appID + "_" + d.ID + "_" + st.Name + "_" + f.Name,
			"state_topic": TopicRoot + "/" + d.ID + "/" + st.Name,
			"device":      map[string]any{"identifiers": []string{"candor_" + d.ID}, "name": d.Name, "model": d.Type, "manufacturer": "Candor"},
		}
		if f.Type == "boolean" {
			component = "binary_sensor"
			cfg["value_template"] = "{{ 'ON' if value_json." + f.Name + " else 'OFF' }}"
		} else {
			cfg["value_template"] = "{{ value_json." + f.Name + " }}"
			if u, ok := haUnits[f.Unit]; ok {
				cfg["unit_of_measurement"] = u[0]
				if u[1] != "" {
					cfg["device_class"] = u[1]
				}
				if f.Unit == "percent" && strings.Contains(f.Name, "humidity") {
					cfg["device_class"] = "humidity"
				}
			} else if f.Unit != "" {
				cfg["unit_of_measurement"] = f.Unit
			}
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			continue // a map of strings always encodes
		}
		out = append(out, announcement{topic: DiscoveryPrefix + "/" + component + "/" + appID + "/" + d.ID + "_" + st.Name + "_" + f.Name + "/config", payload: b})
	}
	return out
}

// announce publishes (on) or removes (off) the discovery messages of one
// stream for a Home Assistant app.
func (s *Service) announce(ctx context.Context, a store.App, deviceID, stream string, on bool) error {
	if a.Kind != KindHomeAssistant {
		return nil
	}
	b := s.pub.Load()
	if b == nil {
		return nil // the broker is not up yet; AnnounceAll runs when it is
	}
	d, err := s.st.Device(ctx, deviceID)
	if err != nil {
		return err
	}
	e, err := s.manifests.ForDevice(ctx, deviceID)
	if err != nil {
		return err
	}
	st := e.Manifest.Stream(stream)
	if st == nil {
		return nil
	}
	for _, an := range announcements(a.ID, d, st) {
		payload := an.payload
		if !on {
			payload = nil // an empty retained message removes the entity
		}
		if err := b.p.Publish(an.topic, payload, true); err != nil {
			return fmt.Errorf("announce %s: %w", an.topic, err)
		}
	}
	return nil
}

// AnnounceAll publishes the discovery messages of every Home Assistant
// app for what it may receive: the broker keeps retained messages in
// memory only, so the hub calls it each time the broker starts.
func (s *Service) AnnounceAll(ctx context.Context) error {
	as, err := s.st.Apps(ctx, "")
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.Kind != KindHomeAssistant || a.Revoked() {
			continue
		}
		gs, err := s.st.AppGrants(ctx, a.ID)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if !isReadingGrant(g.Stream) {
				continue
			}
			if err := s.announce(ctx, a, g.DeviceID, g.Stream, true); err != nil {
				s.log.Warn("apps: discovery not announced", "app", a.ID, "device", g.DeviceID, "err", err)
			}
		}
	}
	return nil
}

// discoveryVisible reports whether topic is one of the app's own
// discovery messages (a Home Assistant app only).
func (s *Service) discoveryVisible(appID, topic string) bool {
	if s.table.Load().apps[appID].kind != KindHomeAssistant {
		return false
	}
	parts := strings.Split(topic, "/")
	return len(parts) == 5 && parts[0] == DiscoveryPrefix && parts[2] == appID && parts[4] == "config"
}

// discoveryMayMatch reports whether a wildcard filter can match one of
// the app's discovery messages.
func (s *Service) discoveryMayMatch(appID, filter string) bool {
	if s.table.Load().apps[appID].kind != KindHomeAssistant {
		return false
	}
	for _, c := range discoveryComponents {
		if matchFilter(filter, DiscoveryPrefix+"/"+c+"/"+appID+"/x/config") {
			return true
		}
	}
	return false
}

// ReloadAnnouncing is Reload for a change another hub node made: it also
// announces, on this node's broker, the discovery messages of Home
// Assistant apps for the streams they were allowed meanwhile, and removes
// those of the streams they no longer are, as Switch does on the node
// that made the change. Retained messages live in each node's broker
// only, so without this an app connected here would learn of a grant
// switched through another node only when this node restarts.
func (s *Service) ReloadAnnouncing(ctx context.Context) error {
	s.mu.Lock()
	old := s.table.Load()
	err := s.reloadLocked(ctx)
	now := s.table.Load()
	s.mu.Unlock()
	if err != nil || old == nil {
		return err
	}
	for _, c := range discoveryChanges(old, now) {
		if err := s.announce(ctx, store.App{ID: c.app, Kind: KindHomeAssistant}, c.device, c.stream, c.on); err != nil {
			s.log.Warn("apps: discovery not updated", "app", c.app, "device", c.device, "err", err)
		}
	}
	return nil
}

// discoveryChange is a Home Assistant app's reading grant that came (on)
// or went.
type discoveryChange struct {
	app, device, stream string
	on                  bool
}

// discoveryChanges compares two tables for the reading grants of Home
// Assistant apps that came or went. A grant that went with its app
// revoked or gone is left alone, as on the node that revoked the app:
// the app can no longer connect to read it.
func discoveryChanges(old, now *table) []discoveryChange {
	var out []discoveryChange
	diff := func(from, to *table, on bool) {
		for k, ids := range from.allowed {
			if !isReadingGrant(k.stream) {
				continue
			}
			for _, id := range ids {
				if from.apps[id].kind != KindHomeAssistant || slices.Contains(to.allowed[k], id) {
					continue
				}
				if ai, ok := now.apps[id]; !ok || ai.revoked {
					continue
				}
				out = append(out, discoveryChange{app: id, device: k.device, stream: k.stream, on: on})
			}
		}
	}
	diff(now, old, true)
	diff(old, now, false)
	return out
}
