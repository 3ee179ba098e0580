// Package bench is Candor's side-by-side benchmark (`candor bench`): it
// drives the same MQTT load against a Candor hub, run as a
// subprocess with its full policy path and durable storage, and against a
// reference broker (Mosquitto, started on a free loopback port), and
// reports both figures and their ratio.
//
// The load generator is a lean MQTT 3.1.1 client written here (about what
// a constrained device does: CONNECT, PUBLISH at QoS 0 or 1 with a bounded
// window of unacknowledged messages, SUBSCRIBE for the reference broker's
// sink, DISCONNECT), so the figures measure the brokers rather than a heavy
// client library. Every run is bounded in time and in connections, and
// talks only to loopback addresses.
//
// Candor's figures are checked, not trusted: after the run the hub is
// stopped and its SQLite store opened, and the number of readings stored
// for each device must equal the number of QoS 1 messages the hub
// acknowledged. A mismatch fails the run.
package bench
