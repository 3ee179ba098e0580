package hub

import (
	"hash/maphash"
	"sync"

	"github.com/candor-iot/candor/internal/broker"
)

// controls tells devices on their control topics (candor/<id>/control/
// <stream>: {"collect":…}, and control/quarantine-status) what
// the hub's state says: consent decisions and holds.
//
// The messages are not kept in the broker's retained store (issue #19):
// they are computed from that state when a device subscribes (Current,
// through broker.Controls), and a change is published, not retained, to
// the devices subscribed at the time, after the state changed. So a hub
// starts with nothing to publish, and an idle device costs no retained
// message, nor a copy of it in mochi's once-a-second expiry sweep.
//
// A subscribe's "read state + send" and a change's publish hold the same
// per-device lock. A change's state is updated before its publish takes
// the lock, so either the subscribe reads the new state, or the change's
// publish comes after the subscribe's older value: the device never ends
// with the older value last.
type controls struct {
	h     *Hub
	seed  maphash.Seed
	locks [64]sync.Mutex
}

func newControls(h *Hub) *controls { return &controls{h: h, seed: maphash.MakeSeed()} }

func (c *controls) lock(deviceID string) *sync.Mutex {
	return &c.locks[maphash.String(c.seed, deviceID)%uint64(len(c.locks))]
}

// Current sends deviceID's current control messages on the topics match
// accepts (broker.Controls). A device whose type lost its manifest has no
// stream to be told about. The quarantine topic always says where the
// device stands, {"quarantined":false} included: a device released while
// it was offline learns it when it subscribes again.
func (c *controls) Current(deviceID string, match func(topic string) bool, send func(topic string, payload []byte)) {
	// Load the device's decisions first, outside the lock: loading takes
	// consent's own lock, which a change holds while its listener waits
	// for this one (consent.Service.Controls).
	c.h.consent.Allowed(deviceID, "")
	mu := c.lock(deviceID)
	mu.Lock()
	defer mu.Unlock()
	for _, sc := range c.h.consent.Controls(deviceID) {
		if t := broker.ControlTopic(deviceID, sc.Stream); match(t) {
			send(t, sc.Payload)
		}
	}
	if c.h.mon == nil {
		return
	}
	if t := broker.ControlTopic(deviceID, QuarantineStream); match(t) {
		send(t, c.h.mon.HoldMessage(deviceID))
	}
}

// changed publishes one stream's new decision (consent.Listener: called
// after the decision changed in memory).
func (c *controls) changed(deviceID, stream string, collect bool) {
	mu := c.lock(deviceID)
	mu.Lock()
	defer mu.Unlock()
	c.h.publishControl(deviceID, stream, collect)
}

// held publishes a change of the device's hold (monitor.Config.Control:
// called after the hold changed in memory).
func (c *controls) held(deviceID string, payload []byte) {
	mu := c.lock(deviceID)
	mu.Lock()
	defer mu.Unlock()
	if err := c.h.br.Publish(broker.ControlTopic(deviceID, QuarantineStream), payload, false); err != nil {
		c.h.log.Error("publish quarantine message", "device", deviceID, "err", err)
	}
}
