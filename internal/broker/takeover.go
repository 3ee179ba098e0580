package broker

import "github.com/mochi-mqtt/server/v2/packets"

// EndSession ends the live connection under clientID, because the same
// client id connected to another hub node of the deployment: MQTT allows
// one session per client id (MQTT 3.1.1 and 5, section 3.1.4), and
// across nodes no single broker sees both. It reports whether there was
// a connection to end.
func (b *Broker) EndSession(clientID string) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Net.Inline || cl.Closed() {
		return false
	}
	_ = b.srv.DisconnectClient(cl, packets.ErrSessionTakenOver)
	return true
}
