package apps

import (
	"slices"
	"strings"
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
// drops the value at once.

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

// remember keeps a reading as its stream's last value, if someone may
// have it.
func (s *Service) remember(k streamKey, payload []byte) {
	if !s.table.Load().keepsLast(k) {
		return
	}
	p := append([]byte(nil), payload...)
	s.lastMu.Lock()
	if s.last == nil {
		s.last = map[streamKey][]byte{}
	}
	s.last[k] = p
	s.lastMu.Unlock()
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
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	var out []LastValue
	for k, p := range s.last {
		if !slices.Contains(t.allowed[k], appID) || !slices.Contains(t.retain[k], appID) {
			continue
		}
		topic := TopicRoot + "/" + k.device + "/" + k.stream
		for _, f := range filters {
			if matchFilter(f, topic) {
				out = append(out, LastValue{Topic: topic, Payload: p})
				break
			}
		}
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
