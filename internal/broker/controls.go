package broker

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Controls is the hub's current state of each device's control topics
// (candor/<id>/control/<stream>). Those messages are not kept in mochi's
// retained store (issue #19): it held a copy per device per stream in
// memory, and mochi copies every retained message once a second to expire
// them, garbage in proportion to the devices the hub knows. Instead the
// hub computes them from its own state when a device subscribes, and a
// change is published, not retained, to the devices subscribed then.
type Controls interface {
	// Current calls send with the current message of each of deviceID's
	// control topics that match reports true for. send writes to the
	// device's connection and may block while the device does not read,
	// so no lock another device or a change needs may be held around it;
	// a change that lands between reading the state and sending must
	// still never leave the device with the older value last (hub.controls
	// sends again when a change came in between).
	Current(deviceID string, match func(topic string) bool, send func(topic string, payload []byte))
}

// controlHook sends a device that subscribed its control topics' current
// messages, marked retained as they were when mochi kept them, right
// after the SUBSCRIBE was granted (MQTT allows them before the SUBACK).
//
// They go at QoS 0, whatever the subscription's QoS. QoS 1 needs the
// client's send quota (MQTT 5 Receive Maximum), which mochi keeps
// unexported: a QoS 1 publish beyond it is a protocol error the device
// may disconnect for. QoS 0 loses nothing a device relies on: the
// current message is sent again at every SUBSCRIBE, and every change is
// published at QoS 1 as it happens (queued for an offline persistent
// session as before).
type controlHook struct {
	mqtt.HookBase
	src Controls
}

func (h *controlHook) ID() string { return "candor-controls" }

func (h *controlHook) Provides(b byte) bool { return b == mqtt.OnSubscribe || b == mqtt.OnSubscribed }

// OnSubscribe notes, for a filter with Retain Handling 1 ("only if the
// subscription is new"), whether the session already has it: by
// OnSubscribed mochi has added it. A connection's packets are handled one
// at a time, so the note is read back by the OnSubscribed of the same
// packet.
func (h *controlHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	dc := deviceConnOf(cl)
	if dc == nil {
		return pk
	}
	dc.subExisted = 0
	for i, f := range pk.Filters {
		if f.RetainHandling != 1 || i >= 64 {
			continue
		}
		if _, ok := cl.State.Subscriptions.Get(f.Filter); ok {
			dc.subExisted |= 1 << i
		}
	}
	return pk
}

func (h *controlHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	dc := deviceConnOf(cl)
	if dc == nil {
		return
	}
	existed := dc.subExisted
	dc.subExisted = 0
	var filters []packets.Subscription
	for i, f := range pk.Filters {
		switch {
		case i >= len(codes) || codes[i] >= 0x80: // refused
		case f.RetainHandling == 2:
		case f.RetainHandling == 1 && i < 64 && existed&(1<<i) != 0:
		case !strings.Contains(f.Filter, "/control/") && !strings.HasSuffix(f.Filter, "#") && !strings.Contains(f.Filter, "+"):
			// Names a topic outside the control topics: nothing to send.
		default:
			filters = append(filters, f)
		}
	}
	if len(filters) == 0 {
		return
	}
	v5 := cl.Properties.ProtocolVersion == 5
	h.src.Current(dc.id, func(topic string) bool {
		for _, f := range filters {
			if matchTopic(f.Filter, topic) {
				return true
			}
		}
		return false
	}, func(topic string, payload []byte) {
		out := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName:   topic,
			Payload:     payload,
		}
		if v5 {
			// As mochi does for any publish: the identifiers of every
			// matching subscription that has one [MQTT-3.3.4-3].
			for _, f := range filters {
				if f.Identifier > 0 && matchTopic(f.Filter, topic) {
					out.Properties.SubscriptionIdentifier = append(out.Properties.SubscriptionIdentifier, f.Identifier)
				}
			}
		}
		// A write to a connection that has just closed fails; the device
		// gets the message at its next SUBSCRIBE.
		_ = cl.WritePacket(out)
	})
}

// deviceConnOf returns a logged-in device's connection, nil for the hub's
// inline client, an app or a connection without the guard.
func deviceConnOf(cl *mqtt.Client) *deviceConn {
	if cl.Net.Inline || isAppClient(cl) {
		return nil
	}
	if gc := guardOf(cl); gc != nil {
		return gc.dev
	}
	return nil
}

// matchTopic reports whether an MQTT topic filter matches a topic name
// (MQTT 3.1.1 section 4.7). Control topics never start with '$', so the
// rule that a leading wildcard does not match such topics is not needed.
func matchTopic(filter, topic string) bool {
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return !fmore
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" too: the parent level [MQTT-4.7.1-2].
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
