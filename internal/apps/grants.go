package apps

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/store"
)

// TopicRoot is the first level of every reading topic,
// candor/<device-id>/<stream>, the same topic the device publishes on.
const TopicRoot = "candor"

// table is the immutable snapshot every hot-path question reads. A change
// builds a new one and swaps the pointer, so a withdrawn grant is in force
// for the next reading.
type table struct {
	apps map[string]appInfo
	// allowed lists, per device and stream, the apps that may receive it.
	allowed map[streamKey][]string
	// retain lists the apps allowed the stream's last value when they
	// subscribe (lastvalue.go).
	retain map[streamKey][]string
}

type appInfo struct {
	household string
	kind      string
	revoked   bool
}

type streamKey struct{ device, stream string }

// Reload rereads apps and their grants from the store: after a change
// here, and for a change made by another hub node sharing it (a grant
// switched, an app revoked).
func (s *Service) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(ctx)
}

func (s *Service) reloadLocked(ctx context.Context) error {
	as, err := s.st.Apps(ctx, "")
	if err != nil {
		return fmt.Errorf("apps: load apps: %w", err)
	}
	gs, err := s.st.AppGrants(ctx, "")
	if err != nil {
		return fmt.Errorf("apps: load grants: %w", err)
	}
	t := &table{apps: make(map[string]appInfo, len(as)), allowed: map[streamKey][]string{}, retain: map[streamKey][]string{}}
	for _, a := range as {
		t.apps[a.ID] = appInfo{household: a.HouseholdID, kind: a.Kind, revoked: a.Revoked()}
	}
	for _, g := range gs {
		if ai, ok := t.apps[g.AppID]; !ok || ai.revoked {
			continue
		}
		if stream, ok := strings.CutPrefix(g.Stream, retainPrefix); ok {
			k := streamKey{g.DeviceID, stream}
			t.retain[k] = append(t.retain[k], g.AppID)
			continue
		}
		k := streamKey{g.DeviceID, g.Stream}
		t.allowed[k] = append(t.allowed[k], g.AppID)
	}
	s.table.Store(t)
	s.pruneLast(t)
	return nil
}

// KindZigbee2MQTT marks the credential of a Zigbee2MQTT bridge: it logs in
// like an app, but publishes its Zigbee devices' states (package bridge)
// instead of receiving readings, and is never allowed any.
const KindZigbee2MQTT = "zigbee2mqtt"

// Bridge reports whether id names a live (not revoked) Zigbee2MQTT bridge
// credential, and its household. It answers from memory.
func (s *Service) Bridge(id string) (household string, ok bool) {
	ai, found := s.table.Load().apps[id]
	if !found || ai.revoked || ai.kind != KindZigbee2MQTT {
		return "", false
	}
	return ai.household, true
}

// Grant is one stream of one device an app may receive.
type Grant = store.AppGrant

// Switch is a person's (or the operator's) choice about one use: whether
// app AppID may receive Stream of DeviceID.
type Switch struct {
	AppID    string
	DeviceID string
	Stream   string
	On       bool
	// Command makes Stream the name of a command the app may send to the
	// device, instead of a stream it receives.
	Command bool
	// Retain switches whether the app gets the stream's last value when
	// it subscribes (it still needs the stream itself allowed).
	Retain bool
	Actor  auditlog.Actor
}

// Set switches what an app receives, or (Command set) which command it
// may send. The app and the device must be of the same household and the
// stream or command declared by the manifest in force.
// The change holds from the next reading on and is recorded in the
// transparency log (ids only, not the choice).
func (s *Service) Set(ctx context.Context, sw Switch) error {
	a, err := s.st.App(ctx, sw.AppID)
	if err != nil {
		return fmt.Errorf("app %s: %w", sw.AppID, err)
	}
	if a.Revoked() {
		return ErrInvalid.Errorf("app: %s is revoked and receives nothing", sw.AppID)
	}
	if a.Kind == KindZigbee2MQTT && sw.On {
		return ErrInvalid.Errorf("app: %s is a Zigbee2MQTT bridge; it passes its devices' readings to the hub and receives none", sw.AppID)
	}
	d, err := s.st.Device(ctx, sw.DeviceID)
	if err != nil || d.HouseholdID != a.HouseholdID {
		// Another household's device is reported as unknown, so its id
		// cannot be probed through an app.
		return fmt.Errorf("device %s: %w", sw.DeviceID, store.ErrNotFound)
	}
	if sw.On {
		e, err := s.manifests.ForDevice(ctx, d.ID)
		if err != nil {
			return ErrInvalid.Errorf("device: %s has no data manifest in force, so none of its data can go to an app", d.ID)
		}
		if sw.Command {
			if _, ok := Commands(e)[sw.Stream]; !ok || s.schemaFor(e, sw.Stream) == nil {
				return ErrInvalid.Errorf("command: %q is not a command the manifest of device %s declares with a closed schema", sw.Stream, d.ID)
			}
		} else if e.Manifest.Stream(sw.Stream) == nil {
			return ErrInvalid.Errorf("stream: %q is not a stream the manifest of device %s declares", sw.Stream, d.ID)
		}
	}
	if sw.Command && sw.Retain {
		return ErrInvalid.Errorf("switch: a command has no last value to keep")
	}
	key := sw.Stream
	switch {
	case sw.Command:
		key = commandPrefix + sw.Stream
	case sw.Retain:
		key = retainPrefix + sw.Stream
	}
	s.mu.Lock()
	if sw.On {
		by := "operator"
		if sw.Actor.ID != "" {
			by = sw.Actor.ID
		}
		err = s.st.PutAppGrant(ctx, store.AppGrant{AppID: a.ID, DeviceID: d.ID, Stream: key, DecidedBy: by, DecidedAt: s.now().UTC()})
	} else {
		err = s.st.DeleteAppGrant(ctx, a.ID, d.ID, key)
	}
	stored := err == nil
	if stored {
		err = s.reloadLocked(ctx)
	}
	s.mu.Unlock()
	if stored {
		// Stored is changed: the other nodes must hear of it even if
		// this node's reload failed.
		s.notifyChanged(a.ID)
	}
	if err != nil {
		return fmt.Errorf("switch app %s on device %s: %w", a.ID, d.ID, err)
	}
	s.log.Info("app consent changed", "app", a.ID, "device", d.ID, "stream", sw.Stream)
	if !sw.Command && !sw.Retain {
		if err := s.announce(ctx, a, d.ID, sw.Stream, sw.On); err != nil {
			s.log.Warn("apps: discovery not updated", "app", a.ID, "device", d.ID, "err", err)
		}
	}
	var detail map[string]string
	switch {
	case sw.Command:
		detail = map[string]string{"use": "command"}
	case sw.Retain:
		detail = map[string]string{"use": "last value"}
	}
	return s.record(ctx, auditlog.Event{Actor: sw.Actor, Action: auditlog.ActionConsentChange, Household: a.HouseholdID,
		Subject: auditlog.Subject{Device: d.ID, Stream: sw.Stream, Recipient: a.ID}, Purpose: strings.Join(a.Purposes, " "),
		Detail: detail})
}

// Grants lists what an app may receive.
func (s *Service) Grants(ctx context.Context, appID string) ([]Grant, error) {
	return s.st.AppGrants(ctx, appID)
}

// GrantsForDevice lists, for each app of the device's household, which of
// the device's streams it may receive.
func (s *Service) GrantsForDevice(deviceID string) map[string][]string {
	out := map[string][]string{}
	for k, ids := range s.table.Load().allowed {
		if k.device != deviceID {
			continue
		}
		for _, id := range ids {
			out[id] = append(out[id], k.stream)
		}
	}
	for _, ss := range out {
		slices.Sort(ss)
	}
	return out
}

// IsApp reports whether an MQTT username names an app.
func IsApp(username string) bool { return strings.HasPrefix(username, IDPrefix) }

// ReadingTopic splits candor/<device>/<stream>; ok is false for any other
// topic (control topics included).
func ReadingTopic(topic string) (device, stream string, ok bool) {
	rest, found := strings.CutPrefix(topic, TopicRoot+"/")
	if !found {
		return "", "", false
	}
	device, stream, found = strings.Cut(rest, "/")
	if !found || device == "" || stream == "" || strings.Contains(stream, "/") {
		return "", "", false
	}
	return device, stream, true
}

// Visible reports whether an app may receive the reading published on
// topic, now: it asks the in-memory table, so it is cheap enough for
// every reading.
func (s *Service) Visible(appID, topic string) bool {
	device, stream, ok := ReadingTopic(topic)
	if !ok {
		return false
	}
	t := s.table.Load()
	if ai, ok := t.apps[appID]; !ok || ai.revoked {
		return false
	}
	return slices.Contains(t.allowed[streamKey{device, stream}], appID)
}

// MayMatch reports whether an MQTT topic filter can match a reading an
// app could ever be allowed to receive: a reading topic of a device of
// its household, for a stream that device's manifest declares. A filter
// that can match none of them is refused at SUBSCRIBE, with a reason,
// rather than accepted and left silent.
//
// A filter without wildcards is a single topic: it is accepted only while
// the app is allowed that stream, because the broker asks the same
// question for every reading it delivers and cannot tell the two apart.
func (s *Service) MayMatch(ctx context.Context, appID, filter string) bool {
	if !strings.ContainsAny(filter, "+#") {
		return s.Visible(appID, filter) || s.discoveryVisible(appID, filter)
	}
	if s.discoveryMayMatch(appID, filter) {
		return true
	}
	if strings.HasPrefix(filter, "$") {
		return false // $SYS and shared subscriptions are not for apps
	}
	t := s.table.Load()
	ai, ok := t.apps[appID]
	if !ok || ai.revoked {
		return false
	}
	devs, err := s.st.Devices(ctx, ai.household)
	if err != nil {
		s.log.Warn("apps: list devices for a subscription", "app", appID, "err", err)
		return false
	}
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		e, err := s.manifests.ForDevice(ctx, d.ID)
		if err != nil {
			continue
		}
		for _, st := range e.Manifest.Streams {
			if matchFilter(filter, TopicRoot+"/"+d.ID+"/"+st.Name) {
				return true
			}
		}
	}
	return false
}

// matchFilter reports whether an MQTT topic filter matches a topic name
// (MQTT 3.1.1 section 4.7; topics starting with '$' never match a
// leading wildcard).
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fs := strings.Split(filter, "/")
	ts := strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return i == len(fs)-1
		}
		if i >= len(ts) {
			return false
		}
		if f != "+" && f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}

// Wants reports whether at least one app may receive the stream now.
func (s *Service) Wants(deviceID, stream string) bool {
	return len(s.table.Load().allowed[streamKey{deviceID, stream}]) > 0
}

// Deliver hands an accepted reading (it passed the manifest) to the
// broker when at least one app may receive it; the broker then asks
// Visible for each subscribed app. It costs a map lookup when no app is
// allowed the stream. It does not wait for an app's socket, except for an
// app resuming its session at that moment: until the broker has written
// its CONNACK (and, on a takeover, the DISCONNECT to its previous
// connection), each bounded by the broker's write timeout (the broker's
// resume gate).
func (s *Service) Deliver(deviceID, stream string, payload []byte) {
	k := streamKey{deviceID, stream}
	if len(s.table.Load().allowed[k]) == 0 {
		return
	}
	s.remember(k, payload)
	if b := s.pub.Load(); b != nil {
		b.p.PublishReading(deviceID, stream, payload)
	}
}

// Stats are an app's delivery figures since the hub started.
type Stats struct {
	// Delivered counts readings queued for the app's connection.
	Delivered uint64 `json:"delivered"`
	// Dropped counts readings not delivered because the app's queue was
	// full (it reads too slowly); catch up with the readings API.
	Dropped uint64 `json:"dropped"`
}

type counters struct{ delivered, dropped atomic.Uint64 }

func (s *Service) counters(appID string) *counters {
	if c, ok := s.stats.Load(appID); ok {
		return c.(*counters)
	}
	c, _ := s.stats.LoadOrStore(appID, &counters{})
	return c.(*counters)
}

// Delivered counts a reading queued for an app.
func (s *Service) Delivered(appID string) { s.counters(appID).delivered.Add(1) }

// Dropped counts a reading an app's full queue could not take.
func (s *Service) Dropped(appID string) {
	s.counters(appID).dropped.Add(1)
}

// Stats returns an app's delivery figures.
func (s *Service) Stats(appID string) Stats {
	c := s.counters(appID)
	return Stats{Delivered: c.delivered.Load(), Dropped: c.dropped.Load()}
}
