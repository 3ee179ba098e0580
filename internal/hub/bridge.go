package hub

import (
	"context"
	"fmt"

	"github.com/candor-iot/candor/internal/bridge"
)

// openBridge lets Zigbee2MQTT use the hub as its broker (package bridge);
// its states go through ingest like any reading.
func (h *Hub) openBridge(context.Context) (err error) {
	if h.zb, err = bridge.New(bridge.Options{Apps: h.apps, Store: h.st, Devices: h.id, Manifests: h.cat,
		Ingest: h.in, Logger: h.log.With("component", "zigbee2mqtt")}); err != nil {
		return fmt.Errorf("zigbee2mqtt bridge: %w", err)
	}
	return nil
}
