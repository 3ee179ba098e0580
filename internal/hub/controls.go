package hub

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// controls sets devices' retained control messages (candor/<id>/control/
// <stream>: {"collect":…}) in the broker, which keeps retained messages in
// memory only.
//
// They are set lazily, when a device's session is established and before
// it can subscribe, not for every device at start: a hub with 10,000
// devices spent 4.9 s publishing them before it was ready (issue #19),
// while only the devices that connect ever read them. A consent change
// publishes the changed stream's message at once, whether the device is
// connected or not.
//
// A device's lazy publish (read the consent state, publish every stream)
// and a change's publish hold the same lock, so a change that lands while
// the state is being read is published after the older value, never
// before it.
type controls struct {
	h     *Hub
	seed  maphash.Seed
	locks [64]sync.Mutex
	done  sync.Map // device id → struct{}: this run has set its messages
}

func newControls(h *Hub) *controls { return &controls{h: h, seed: maphash.MakeSeed()} }

func (c *controls) lock(deviceID string) *sync.Mutex {
	return &c.locks[maphash.String(c.seed, deviceID)%uint64(len(c.locks))]
}

// controlTimeout bounds reading a device's consent state during its
// connection.
const controlTimeout = 5 * time.Second

// session sets deviceID's retained control messages the first time the
// device connects in this run.
func (c *controls) session(deviceID string) {
	if _, ok := c.done.Load(deviceID); ok {
		return
	}
	mu := c.lock(deviceID)
	mu.Lock()
	defer mu.Unlock()
	if _, ok := c.done.Load(deviceID); ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	st, err := c.h.consent.State(ctx, deviceID)
	if err != nil {
		// A device whose type lost its manifest: nothing to say. Not
		// marked done, so a later connection tries again.
		return
	}
	for _, s := range st.Streams {
		c.h.publishControl(deviceID, s.Stream, s.Decision.Collect)
	}
	c.done.Store(deviceID, struct{}{})
}

// changed publishes one stream's new decision.
func (c *controls) changed(deviceID, stream string, collect bool) {
	mu := c.lock(deviceID)
	mu.Lock()
	defer mu.Unlock()
	c.h.publishControl(deviceID, stream, collect)
}
