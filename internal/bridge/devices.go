package bridge

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
)

// SeenDevice is one Zigbee device of the list Zigbee2MQTT last published on
// zigbee2mqtt/bridge/devices: what the admin needs to import its type's
// manifest (Definition, for POST /api/v1/manifests/import/zigbee2mqtt) and
// add it. The IEEE address is not kept: the hub names a Zigbee device by
// its friendly name only.
type SeenDevice struct {
	FriendlyName string          `json:"friendly_name"`
	Model        string          `json:"model,omitempty"`
	Vendor       string          `json:"vendor,omitempty"`
	Description  string          `json:"description,omitempty"`
	Definition   json.RawMessage `json:"definition,omitempty"`
	// DeviceID is the hub device of this friendly name, once added.
	DeviceID string `json:"device_id,omitempty"`
}

// maxSeen bounds the devices kept per household.
const maxSeen = 500

// noteDevices keeps the device list a bridge published, in memory only.
// The Coordinator and devices Zigbee2MQTT does not support (no
// definition) are left out; a list that is not one is ignored.
func (s *Service) noteDevices(household string, payload []byte) {
	var list []struct {
		FriendlyName string          `json:"friendly_name"`
		Type         string          `json:"type"`
		Definition   json.RawMessage `json:"definition"`
	}
	if json.Unmarshal(payload, &list) != nil {
		s.log.Info("zigbee2mqtt bridge/devices is not a device list; ignored")
		return
	}
	var out []SeenDevice
	for _, d := range list {
		if d.Type == "Coordinator" || d.FriendlyName == "" || len(d.Definition) == 0 || string(d.Definition) == "null" {
			continue
		}
		var def struct{ Model, Vendor, Description string }
		if json.Unmarshal(d.Definition, &def) != nil {
			continue
		}
		out = append(out, SeenDevice{FriendlyName: d.FriendlyName, Model: def.Model, Vendor: def.Vendor,
			Description: def.Description, Definition: d.Definition})
		if len(out) == maxSeen {
			break
		}
	}
	slices.SortFunc(out, func(a, b SeenDevice) int { return strings.Compare(a.FriendlyName, b.FriendlyName) })
	s.mu.Lock()
	s.seen[household] = out
	s.mu.Unlock()
}

// Seen lists the Zigbee devices the household's bridge last said it has,
// each with the hub device it is, once added.
func (s *Service) Seen(ctx context.Context, household string) ([]SeenDevice, error) {
	s.mu.Lock()
	out := slices.Clone(s.seen[household])
	s.mu.Unlock()
	ds, err := s.opts.Store.Devices(ctx, household)
	if err != nil {
		return nil, err
	}
	for i := range out {
		for _, d := range ds {
			if strings.HasPrefix(d.ID, DevicePrefix) && d.Name == out[i].FriendlyName && !d.Revoked() {
				out[i].DeviceID = d.ID
			}
		}
	}
	return out, nil
}
