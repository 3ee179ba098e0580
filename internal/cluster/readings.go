package cluster

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// Readings for apps connected to another node. A node hands an accepted
// reading that at least one app may receive to its own broker and, through
// candor.<deployment>.readings, to the other nodes' brokers, which give
// it to the apps connected there that may see it (each broker asks its
// apps service, as for local readings). These messages carry reading
// values, so the NATS connection must be private (TLS, authentication):
// see docs/deployment.md. Nothing logs them.

type reading struct {
	Node    string `json:"node"`
	Device  string `json:"device"`
	Stream  string `json:"stream"`
	Payload []byte `json:"payload"`
}

// Reading passes an accepted reading apps may receive to the other
// nodes. It does not wait.
func (n *Node) Reading(deviceID, stream string, payload []byte) {
	b, err := json.Marshal(reading{Node: n.opts.Name, Device: deviceID, Stream: stream, Payload: payload})
	if err == nil {
		err = n.nc.Publish(n.subjReadings(), b)
	}
	if err != nil {
		n.log.Warn("cluster: pass a reading on to apps on other nodes", "device", deviceID, "stream", stream, "err", err)
	}
}

// OnReading subscribes deliver to the readings other nodes pass on.
func (n *Node) OnReading(deliver func(deviceID, stream string, payload []byte)) error {
	return n.subscribe(n.subjReadings(), func(m *nats.Msg) {
		var r reading
		if json.Unmarshal(m.Data, &r) != nil || r.Node == n.opts.Name || r.Device == "" {
			return
		}
		deliver(r.Device, r.Stream, r.Payload)
	})
}

func (n *Node) subjReadings() string { return n.subject("readings") }
