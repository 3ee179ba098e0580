package apps

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Retained "last value". A person may let an app get, the moment it
// subscribes, the last reading of a stream it is allowed, as an MQTT
// retained message would give it (Home Assistant shows a sensor's state
// at once instead of "unknown" until the next reading). It is a switch
// of its own per app, device and stream, off by default, stored as a
// grant "retain/<stream>" beside the stream's own grant.
//
// The last values are kept in memory only, never in the broker's retained
// store (which would hand them to any subscriber, outside consent) and
// never on disk: a restart forgets them. Only streams some app may both
// receive and keep are kept, and a withdrawn switch, of either kind,
// drops the value at once. A value older than its stream's retention is
// not sent, and deleting or erasing a device's readings (Forget) drops
// its values too, so the copy never outlives the stored reading.

// retainPrefix marks a retain grant; no reading stream has a '/'.
const retainPrefix = "retain/"

// LastValue is a stream's last reading, for an app that just subscribed.
type LastValue struct {
	Topic   string
	Payload []byte
}

// keepsLast reports whether some app may receive the stream and keep its
// last value.
func (t *table) keepsLast(k streamKey) bool {
	for _, id := range t.retain[k] {
		if slices.Contains(t.allowed[k], id) {
			return true
		}
	}
	return false
}

// lastValue is a kept reading and when it arrived.
type lastValue struct {
	payload []byte
	at      time.Time
}

// remember keeps a reading as its stream's last value, if someone may
// have it.
func (s *Service) remember(k streamKey, payload []byte) {
	if !s.table.Load().keepsLast(k) {
		return
	}
	v := lastValue{payload: append([]byte(nil), payload...), at: s.now()}
	s.lastMu.Lock()
	if s.last == nil {
		s.last = map[streamKey]lastValue{}
	}
	s.last[k] = v
	s.lastMu.Unlock()
}

// Forget drops the last values of devices whose readings were deleted or
// erased, and reloads what apps may receive (erasing a device removes its
// grants in the store).
func (s *Service) Forget(ctx context.Context, deviceIDs []string) {
	s.lastMu.Lock()
	for k := range s.last {
		if slices.Contains(deviceIDs, k.device) {
			delete(s.last, k)
		}
	}
	s.lastMu.Unlock()
	if err := s.Reload(ctx); err != nil {
		s.log.Warn("apps: reload after an erasure", "err", err)
	}
}

// pruneLast forgets the last values no app may have any more; called
// after every change of the table.
func (s *Service) pruneLast(t *table) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	for k := range s.last {
		if !t.keepsLast(k) {
			delete(s.last, k)
		}
	}
}

// LastValues returns, for an app that subscribed with filters, the last
// value of each stream it may receive and was allowed to keep, that one
// of the filters matches.
func (s *Service) LastValues(appID string, filters []string) []LastValue {
	t := s.table.Load()
	if ai, ok := t.apps[appID]; !ok || ai.revoked {
		return nil
	}
	type candidate struct {
		k streamKey
		v lastValue
	}
	var cs []candidate
	s.lastMu.Lock()
	for k, v := range s.last {
		if slices.Contains(t.allowed[k], appID) && slices.Contains(t.retain[k], appID) {
			cs = append(cs, candidate{k, v})
		}
	}
	s.lastMu.Unlock()
	var out []LastValue
	for _, c := range cs {
		topic := TopicRoot + "/" + c.k.device + "/" + c.k.stream
		if !slices.ContainsFunc(filters, func(f string) bool { return matchFilter(f, topic) }) || s.expired(c.k, c.v) {
			continue
		}
		out = append(out, LastValue{Topic: topic, Payload: c.v.payload})
	}
	slices.SortFunc(out, func(a, b LastValue) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// isReadingGrant reports whether a grant's stream is a stream the app
// receives, rather than a command ("command/…") or a last-value switch
// ("retain/…").
func isReadingGrant(stream string) bool { return !strings.Contains(stream, "/") }

// KeepsLast reports whether a person let the app get the stream's last
// value when it subscribes (for the pages).
func (s *Service) KeepsLast(appID, deviceID, stream string) bool {
	return slices.Contains(s.table.Load().retain[streamKey{deviceID, stream}], appID)
}

// expired reports whether a kept value is older than its stream's
// retention in the manifest in force: the stored reading is gone by then,
// so its copy must not be handed out either.
func (s *Service) expired(k streamKey, v lastValue) bool {
	e, err := s.manifests.ForDevice(context.Background(), k.device)
	if err != nil {
		return true
	}
	st := e.Manifest.Stream(k.stream)
	if st == nil {
		return true
	}
	return st.Retention.D > 0 && s.now().Sub(v.at) > st.Retention.D
}
