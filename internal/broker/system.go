package broker

import (
	"context"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/store"
)

// SystemHandler takes a message a device published on one of its reserved
// system topics, candor/<device-id>/$<name>…: not a reading, so it is not
// subject to the manifest's stream rules and never reaches ingest. An
// error means the message was malformed; it is refused (MQTT 5) or
// acknowledged and dropped (3.1.1), like a refused reading.
type SystemHandler func(ctx context.Context, deviceID string, payload []byte) error

// systemHandler returns the handler for a device's system topic, if topic
// is one.
func (h *hook) systemHandler(deviceID, topic string) (SystemHandler, bool) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/"+deviceID+"/")
	if !ok || !strings.HasPrefix(rest, "$") {
		return nil, false
	}
	f, ok := h.system[rest]
	return f, ok
}

// onSystem hands a system message to its handler. It is never retained
// nor passed to subscribers: only the hub reads a device's system topics.
func (h *hook) onSystem(cl *mqtt.Client, pk packets.Packet, id string, handle SystemHandler) (packets.Packet, error) {
	if err := handle(context.Background(), id, pk.Payload); err != nil {
		h.in.Count(id, store.DeviceCounters{Refused: 1})
		h.log.Info("system message refused", "device", id, "topic", pk.TopicName, "err", err)
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
			return h.ackInOrder(cl, pk, packets.ErrPayloadFormatInvalid)
		}
	}
	return h.ackInOrder(cl, pk, packets.CodeSuccess)
}
