package hub

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/candor-iot/candor/internal/broker"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/updates"
)

// controls tells devices on their control topics (candor/<id>/control/
// <stream>: {"collect":…}, control/quarantine-status and control/$update)
// what the hub's state says: consent decisions, holds and update offers.
//
// The messages are not kept in the broker's retained store (issue #19):
// they are computed from that state when a device subscribes (Current,
// through broker.Controls), and a change is published, not retained, to
// the devices subscribed at the time, after the state changed. So a hub
// starts with nothing to publish, and an idle device costs no retained
// message, nor a copy of it in mochi's once-a-second expiry sweep.
//
// A device must never be left with an older value last. No lock is held
// while sending: a subscribe's sends are blocking writes to the device's
// own connection, which a device that stops reading could hold up for as
// long as it likes, and a lock held meanwhile would stall every consent
// change and hold behind it. Instead every change bumps its device's
// generation after the state changed and before it publishes, and every
// sender (a subscribe's Current, a change's publish) reads the state and
// sends, then sends again if the generation moved meanwhile (settle). A
// send that read the state before a change can only be followed by that
// change's own publish or by the resend, both of which read the state
// after it.
type controls struct {
	h    *Hub
	seed maphash.Seed
	gens [1024]atomic.Uint64 // by a hash of the device id
}

func newControls(h *Hub) *controls { return &controls{h: h, seed: maphash.MakeSeed()} }

func (c *controls) gen(deviceID string) *atomic.Uint64 {
	return &c.gens[maphash.String(c.seed, deviceID)%uint64(len(c.gens))]
}

// settleTries bounds the resends of one sender while changes keep coming;
// each of those changes publishes the state after it itself.
const settleTries = 16

// settle runs send, which reads deviceID's state and sends it, again while
// a change of a device sharing its generation came in between.
func (c *controls) settle(deviceID string, send func()) {
	g := c.gen(deviceID)
	for i := 0; ; i++ {
		v := g.Load()
		send()
		if g.Load() == v || i == settleTries {
			return
		}
	}
}

// Current sends deviceID's current control messages on the topics match
// accepts (broker.Controls). A device whose type lost its manifest has no
// stream to be told about. The quarantine topic always says where the
// device stands, {"quarantined":false} included: a device released while
// it was offline learns it when it subscribes again.
func (c *controls) Current(deviceID string, match func(topic string) bool, send func(topic string, payload []byte)) {
	// Load the device's decisions first (Controls reads memory only).
	c.h.consent.Allowed(deviceID, "")
	c.settle(deviceID, func() {
		for _, sc := range c.h.consent.Controls(deviceID) {
			if t := broker.ControlTopic(deviceID, sc.Stream); match(t) {
				send(t, sc.Payload)
			}
		}
		if c.h.upd != nil {
			// Only while an offer stands, as a retained offer was.
			if t := updates.OfferTopic(deviceID); match(t) {
				if offer := c.h.upd.Offer(deviceID); offer != nil {
					send(t, offer)
				}
			}
		}
		if c.h.mon == nil {
			return
		}
		if t := broker.ControlTopic(deviceID, QuarantineStream); match(t) {
			send(t, c.h.mon.HoldMessage(deviceID))
		}
	})
}

// changed publishes one stream's new decision (consent.Listener: called
// after the decision changed in memory).
func (c *controls) changed(deviceID, stream string, collect bool) {
	c.gen(deviceID).Add(1)
	c.settle(deviceID, func() { c.publishControl(deviceID, stream, collect) })
}

// publishControl publishes a stream's decision as the consent service
// holds it in memory now, to the device if subscribed. Not retained: a
// device that subscribes later gets it from the hub's state (Current).
//
// It reads the decision without loading anything (consent.Controls): a
// listener that loaded a device no longer in memory (one just erased)
// would wait for the consent service's lock, which a change in progress
// holds while it waits for its listeners. Such a device gets the decision
// the change reported.
func (c *controls) publishControl(deviceID, stream string, collect bool) {
	// The learning switches (consent.Decision.Learn, Decide) ride on the
	// same message, so a device that learns is told at once.
	var payload []byte
	for _, sc := range c.h.consent.Controls(deviceID) {
		if sc.Stream == stream {
			payload = sc.Payload
			break
		}
	}
	if payload == nil {
		payload = consent.Decision{Collect: collect}.Control()
	}
	if err := c.h.br.Publish(broker.ControlTopic(deviceID, stream), payload, false); err != nil {
		c.h.log.Error("publish control message", "device", deviceID, "stream", stream, "err", err)
	}
}

// held publishes a change of the device's hold (monitor.Config.Control:
// called after the hold changed in memory). What it publishes is read from
// the monitor each time it sends, so two changes that cross still leave
// the device with the newest.
func (c *controls) held(deviceID string) {
	c.gen(deviceID).Add(1)
	c.settle(deviceID, func() {
		if err := c.h.br.Publish(broker.ControlTopic(deviceID, QuarantineStream), c.h.mon.HoldMessage(deviceID), false); err != nil {
			c.h.log.Error("publish quarantine message", "device", deviceID, "err", err)
		}
	})
}

// OfferChanged publishes a change of the device's update offer
// (updates.Announcer: called after the offer changed in the service). What
// it publishes is read from the service each time it sends: the offer, or
// an empty message once none stands, which tells a device that holds one
// that it ended.
func (c *controls) OfferChanged(deviceID string) {
	c.gen(deviceID).Add(1)
	c.settle(deviceID, func() {
		if err := c.h.br.Publish(updates.OfferTopic(deviceID), c.h.upd.Offer(deviceID), false); err != nil {
			c.h.log.Error("publish update offer", "device", deviceID, "err", err)
		}
	})
}
