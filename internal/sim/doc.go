// Package sim simulates the devices of a home so that Candor has something
// alive to show and something real to carry.
//
// Each simulated device is a genuine MQTT v5 client: it logs in to the hub's
// broker with its device id and secret, publishes readings as small JSON
// objects to candor/<device-id>/<stream>, and listens on
// candor/<device-id>/control/+ for the hub's {"collect": false} and
// {"collect": true} messages, stopping and resuming a stream as it is told.
// The same messages carry "learn" and "decide" for the streams a manifest
// marks for machine learning and automated decisions: the thermostat
// learns how fast its room warms up and starts heating early enough to be
// warm at 06:30; told "learn": false it forgets the rate and keeps to its
// plain program, told "decide": false it keeps learning but no longer acts
// on it by itself. [DeviceStats] shows which switches each device follows.
// Nothing in the hub can tell a simulated thermostat from a real one, which is
// the point: the same simulator feeds the demo and the load tests.
//
// It serves clause 4 of the IoT Good Practice paper (education): a newcomer
// who starts the demo sees a living home (a thermostat whose heating clicks
// on when the room cools, a smart meter whose load peaks at dinner time,
// a door that opens and closes, a camera that notices the garden, a wearable
// that sleeps at night) and can watch, and switch off, what each device
// tells the hub about the people who live there.
//
// The kinds of device and the exact streams, fields, units and ranges each
// one sends are declared once, in [Kinds], so that other parts of Candor
// (device manifests, validation of readings) can rely on the same list.
// Readings carry only measured fields: no device-side timestamp, because the
// hub stamps the time it received a reading. Readings are realistic (daily
// cycles, correlated streams) and, for a given seed, the sequence of values a
// device model produces is deterministic. [Config.Speed] makes simulated
// time, and so every interval, run faster for demos and tests.
package sim
