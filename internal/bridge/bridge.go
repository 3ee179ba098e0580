// Package bridge lets Zigbee2MQTT use the hub as its MQTT broker, so a
// household's Zigbee devices get the same promises as devices that talk
// to the hub directly.
//
// An owner (or the operator) adds a bridge credential: an app of kind
// apps.KindZigbee2MQTT, which Zigbee2MQTT logs in with. Each Zigbee
// device is a hub device of the bridge's household whose name is its
// Zigbee2MQTT friendly name and whose id starts with DevicePrefix; its
// type's manifest comes from the Zigbee2MQTT importer and is confirmed by
// the owner before the device can be added (AddDevice), as for any other
// device.
//
// Zigbee2MQTT publishes all of a device's properties as one JSON object
// on zigbee2mqtt/<friendly_name>. The bridge splits it into one reading
// per property (importer.SplitZigbee2MQTT), so each property is a stream
// people switch on or off alone — occupancy apart from battery — and
// hands each to ingest, which checks it against the manifest and consent
// exactly as a direct device's reading: undeclared properties are
// refused and counted per device. The messages Zigbee2MQTT publishes
// about itself (zigbee2mqtt/bridge/…) are acknowledged and dropped: they
// describe the bridge and its network, they are not readings, and
// nothing of them is stored. Availability messages likewise.
//
// Commands go the other way: a command an app was allowed to send to a
// Zigbee device (a property the manifest declares as writable) is
// published on zigbee2mqtt/<friendly_name>/set, which Zigbee2MQTT
// subscribes to. Nothing else reaches the bridge.
package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/ingest"
	"github.com/candor-iot/candor/internal/manifest/importer"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// BaseTopic is Zigbee2MQTT's default base topic; the bridge serves only
// this one.
const BaseTopic = "zigbee2mqtt"

// DevicePrefix starts the id of every Zigbee device behind a bridge.
const DevicePrefix = "zb_"

// StateTopic is where Zigbee2MQTT says whether it is online; it is also
// the only topic its will may name.
const StateTopic = BaseTopic + "/bridge/state"

// Errors callers act on.
var (
	// ErrInvalid is input that breaks a rule; the detail names the field.
	ErrInvalid = &problem.Kind{Status: 422, Type: "invalid-input", Text: "invalid input"}
	// ErrUnknownDevice: a state message for a friendly name that is no
	// device of the bridge's household. It is counted and dropped.
	ErrUnknownDevice = errors.New("no Zigbee device of the household has this friendly name")
	// ErrNotBridge: the credential is not a live bridge.
	ErrNotBridge = errors.New("not a Zigbee2MQTT bridge credential")
)

// Apps answers which credentials are bridges (package apps).
type Apps interface {
	Bridge(id string) (household string, ok bool)
}

// Ingester is the policy path each property's reading goes through.
type Ingester interface {
	Enqueue(ctx context.Context, deviceID, stream string, payload []byte) (ingest.Ticket, error)
	Refuse(deviceID string, err error)
}

// Store is the storage the bridge reads devices from.
type Store interface {
	Device(ctx context.Context, id string) (store.Device, error)
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
}

// DeviceAdder creates hub devices (package identity).
type DeviceAdder interface {
	AddDevice(ctx context.Context, nd identity.NewDevice) (store.Device, string, error)
}

// Manifests says which device types have a manifest in force.
type Manifests interface {
	Current(deviceType string) (*catalog.Entry, error)
}

// Publisher sends a hub message over MQTT (the broker).
type Publisher interface {
	Publish(topic string, payload []byte, retain bool) error
}

// CommandSender sends a checked command to a device (the broker, for
// devices that are not behind a bridge).
type CommandSender interface {
	SendCommand(deviceID, name string, payload []byte) error
}

// Options configure a Service.
type Options struct {
	Apps      Apps
	Store     Store
	Devices   DeviceAdder
	Manifests Manifests
	Ingest    Ingester
	Logger    *slog.Logger
}

// Service is the Zigbee2MQTT bridge. It is safe for concurrent use.
type Service struct {
	opts Options
	log  *slog.Logger
	pub  atomic.Pointer[pubBox]

	mu sync.Mutex
	// keys remembers, per device and stream, the key path Zigbee2MQTT
	// used for it (PM2.5, color.x), so a command is sent back under the
	// name Zigbee2MQTT knows.
	keys map[streamKey][]string
	// online is each bridge's last bridge/state, in memory only.
	online map[string]bool
	// seen is each household's last zigbee2mqtt/bridge/devices, in memory
	// only: what the admin may import and add (devices.go).
	seen map[string][]SeenDevice

	unknown atomic.Uint64
}

type streamKey struct{ device, stream string }

type pubBox struct {
	p    Publisher
	next CommandSender
}

// New builds a bridge service.
func New(opts Options) (*Service, error) {
	if opts.Apps == nil || opts.Store == nil || opts.Ingest == nil {
		return nil, errors.New("bridge: Apps, Store and Ingest are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{opts: opts, log: log, keys: map[streamKey][]string{}, online: map[string]bool{}, seen: map[string][]SeenDevice{}}, nil
}

// SetBroker connects the service to the broker, which starts after it:
// p publishes commands to Zigbee2MQTT, next sends those for other devices.
func (s *Service) SetBroker(p Publisher, next CommandSender) {
	s.pub.Store(&pubBox{p: p, next: next})
}

// IsBridge reports whether an MQTT username is a live bridge credential.
func (s *Service) IsBridge(username string) bool {
	_, ok := s.opts.Apps.Bridge(username)
	return ok
}

// Topic reports whether a topic or filter is one a bridge may use: under
// BaseTopic.
func Topic(topic string) bool { return strings.HasPrefix(topic, BaseTopic+"/") }

// Online reports whether the bridge last said it is online.
func (s *Service) Online(bridgeID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online[bridgeID]
}

// Unknown counts state messages for friendly names that are no device.
func (s *Service) Unknown() uint64 { return s.unknown.Load() }

// Publish handles a message the bridge published. A state message of a
// known Zigbee device is split into one reading per property, each
// checked and queued; Publish returns once all of them are committed,
// so the bridge is acknowledged only for what is stored. A property that
// is refused does not hold back the others: the first refusal is
// returned (an *ingest.RefusedError) after the rest are committed.
// Messages about the bridge itself are dropped (nil).
func (s *Service) Publish(ctx context.Context, bridgeID, topic string, payload []byte) error {
	household, ok := s.opts.Apps.Bridge(bridgeID)
	if !ok {
		return ErrNotBridge
	}
	rest, ok := strings.CutPrefix(topic, BaseTopic+"/")
	if !ok || rest == "" {
		return ErrInvalid.Errorf("topic: a bridge publishes under %s/", BaseTopic)
	}
	if what, ok := strings.CutPrefix(rest, "bridge/"); ok {
		switch what {
		case "state":
			s.noteState(bridgeID, payload)
		case "devices":
			s.noteDevices(household, payload)
		}
		return nil
	}
	name, suffix := splitSuffix(rest)
	if suffix != "" {
		// availability, or a set/get Zigbee2MQTT would never publish
		// itself: nothing to store.
		return nil
	}
	d, err := s.deviceByName(ctx, household, name)
	if err != nil {
		if errors.Is(err, ErrUnknownDevice) {
			s.unknown.Add(1)
		}
		return err
	}
	parts, err := importer.SplitZigbee2MQTT(payload)
	if err != nil {
		re := &ingest.RefusedError{DeviceID: d.ID, Reason: ingest.ReasonNotJSON, Detail: "a Zigbee2MQTT state message must be one JSON object"}
		s.opts.Ingest.Refuse(d.ID, re)
		return re
	}
	var first error
	tickets := make([]ingest.Ticket, 0, len(parts))
	for _, p := range parts {
		t, err := s.opts.Ingest.Enqueue(ctx, d.ID, p.Stream, p.Payload)
		if err != nil {
			var re *ingest.RefusedError
			if !errors.As(err, &re) {
				return fmt.Errorf("queue %s of Zigbee device %s: %w", p.Stream, d.ID, err)
			}
			if first == nil {
				first = err
			}
			continue
		}
		s.remember(d.ID, p.Stream, p.Path)
		tickets = append(tickets, t)
	}
	for _, t := range tickets {
		if err := t.Wait(ctx); err != nil {
			return fmt.Errorf("commit reading of Zigbee device %s: %w", d.ID, err)
		}
	}
	return first
}

// splitSuffix splits the topic suffixes Zigbee2MQTT uses after a friendly
// name. Friendly names may contain '/', so only these are cut.
func splitSuffix(rest string) (name, suffix string) {
	for _, sfx := range []string{"/availability", "/set", "/get"} {
		if n, ok := strings.CutSuffix(rest, sfx); ok {
			return n, sfx
		}
		if i := strings.Index(rest, sfx+"/"); i > 0 {
			return rest[:i], sfx // e.g. <name>/set/<property>
		}
	}
	return rest, ""
}

func (s *Service) noteState(bridgeID string, payload []byte) {
	// Zigbee2MQTT sends {"state":"online"} (older versions: "online").
	var v struct {
		State string `json:"state"`
	}
	on := string(bytes.TrimSpace(payload)) == "online" ||
		(json.Unmarshal(payload, &v) == nil && v.State == "online")
	s.mu.Lock()
	s.online[bridgeID] = on
	s.mu.Unlock()
}

func (s *Service) remember(deviceID, stream string, path []string) {
	k := streamKey{deviceID, stream}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k]; ok || len(s.keys) >= maxKeys {
		return
	}
	s.keys[k] = path
}

// maxKeys bounds the remembered key paths (one per device property).
const maxKeys = 100_000

// deviceByName finds the household's Zigbee device with a friendly name.
func (s *Service) deviceByName(ctx context.Context, household, name string) (store.Device, error) {
	ds, err := s.opts.Store.Devices(ctx, household)
	if err != nil {
		return store.Device{}, fmt.Errorf("list devices of household %s: %w", household, err)
	}
	for _, d := range ds {
		if strings.HasPrefix(d.ID, DevicePrefix) && d.Name == name && !d.Revoked() {
			return d, nil
		}
	}
	return store.Device{}, ErrUnknownDevice
}

// AddDevice adds a Zigbee device behind the household's bridge: a hub
// device named with its Zigbee2MQTT friendly name, of a type whose
// manifest is in force (imported from Zigbee2MQTT and confirmed). It has
// no secret of its own: only its bridge speaks for it.
func (s *Service) AddDevice(ctx context.Context, household, friendlyName, deviceType, keyOwner string) (store.Device, error) {
	if s.opts.Devices == nil || s.opts.Manifests == nil {
		return store.Device{}, errors.New("bridge: no device registry")
	}
	if strings.TrimSpace(friendlyName) == "" || strings.ContainsAny(friendlyName, "+#") ||
		strings.HasPrefix(friendlyName, "bridge/") || friendlyName == "bridge" {
		return store.Device{}, ErrInvalid.Errorf("friendly_name: %q is not a Zigbee2MQTT friendly name (no + or #, and not bridge)", friendlyName)
	}
	if n, sfx := splitSuffix(friendlyName); sfx != "" || n != friendlyName {
		return store.Device{}, ErrInvalid.Errorf("friendly_name: %q ends like a Zigbee2MQTT command topic", friendlyName)
	}
	if e, err := s.opts.Manifests.Current(deviceType); err != nil || e == nil || e.Draft {
		return store.Device{}, ErrInvalid.Errorf("type: %q has no confirmed manifest; import it from Zigbee2MQTT and confirm it first", deviceType)
	}
	if _, err := s.deviceByName(ctx, household, friendlyName); err == nil {
		return store.Device{}, ErrInvalid.Errorf("friendly_name: the household already has a Zigbee device called %q", friendlyName)
	} else if !errors.Is(err, ErrUnknownDevice) {
		return store.Device{}, err
	}
	d, _, err := s.opts.Devices.AddDevice(ctx, identity.NewDevice{HouseholdID: household, Name: friendlyName, Type: deviceType,
		KeyOwner: keyOwner, IDPrefix: DevicePrefix})
	if err != nil {
		return store.Device{}, err
	}
	s.log.Info("zigbee device added", "device", d.ID, "household", household, "type", deviceType)
	return d, nil
}

// SendCommand sends a command an app was allowed (package apps checked
// the grant and the schema) to a Zigbee device through Zigbee2MQTT, on
// zigbee2mqtt/<friendly_name>/set; commands for other devices go on to
// the broker.
func (s *Service) SendCommand(deviceID, name string, payload []byte) error {
	b := s.pub.Load()
	if b == nil {
		return errors.New("bridge: no broker to send commands through")
	}
	if !strings.HasPrefix(deviceID, DevicePrefix) {
		return b.next.SendCommand(deviceID, name, payload)
	}
	ctx := context.Background()
	d, err := s.opts.Store.Device(ctx, deviceID)
	if err != nil {
		return fmt.Errorf("zigbee device %s: %w", deviceID, err)
	}
	out, err := s.setPayload(deviceID, name, payload)
	if err != nil {
		return err
	}
	return b.p.Publish(BaseTopic+"/"+d.Name+"/set", out, false)
}

// setPayload turns a command, {"<stream>": value} as its schema says,
// into what Zigbee2MQTT expects: the property under the key path it
// publishes it with ({"color":{"x":…}} for color_x).
func (s *Service) setPayload(deviceID, stream string, payload []byte) ([]byte, error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, fmt.Errorf("command %s: %w", stream, err)
	}
	s.mu.Lock()
	path := s.keys[streamKey{deviceID, stream}]
	s.mu.Unlock()
	if len(path) == 0 {
		path = []string{stream}
	}
	raw, ok := in[stream]
	if !ok {
		return payload, nil // a schema naming other properties: sent as it is
	}
	var v any = raw
	for i := len(path) - 1; i >= 0; i-- {
		v = map[string]any{path[i]: v}
	}
	return json.Marshal(v)
}

// Visible reports whether a bridge may receive a message on topic: only
// zigbee2mqtt/<friendly_name>/set of a Zigbee device of its household,
// since bridges of several households share the base topic.
func (s *Service) Visible(ctx context.Context, bridgeID, topic string) bool {
	household, ok := s.opts.Apps.Bridge(bridgeID)
	if !ok {
		return false
	}
	rest, ok := strings.CutPrefix(topic, BaseTopic+"/")
	if !ok {
		return false
	}
	name, found := strings.CutSuffix(rest, "/set")
	if !found {
		return false
	}
	_, err := s.deviceByName(ctx, household, name)
	return err == nil
}
