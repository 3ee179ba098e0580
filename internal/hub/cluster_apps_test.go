package hub

import (
	"testing"
	"time"
)

// TestAppSessionTakenOverAcrossNodes: an app's client id connecting to
// node B ends its session on node A, as for devices.
func TestAppSessionTakenOverAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.addDevice("Hall", "thermostat") // the household an app belongs to
	app, secret := a.addApp("Dashboard", "candor:HomeAutomation")

	onA := connectWatched(t, a.MQTTAddr(), app, app, secret)
	start := time.Now()
	onB := connectWatched(t, b.MQTTAddr(), app, app, secret)
	onA.waitEnded(t, "takeover of the app's client id by node B", start)
	deadline := time.Now().Add(5 * time.Second)
	for !b.Broker().Connected(app) {
		if time.Now().After(deadline) {
			t.Fatal("the app's connection to B was ended too")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-onB.ended:
		t.Fatal("the app's connection to B was ended")
	default:
	}

}
