package hub

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/config"
	"github.com/candor-iot/candor/internal/sim"
)

// TestMonitorHoldsReachEveryNode has the abuse monitor of node A hold
// devices that misbehave towards A, by itself, and checks that node B
// holds them back too without any other change reaching it: a rate limit
// (a device sending undeclared readings) and a quarantine (a flood). Each
// device then moves to B, which limits or refuses it at once. A release
// through one node's API is in force on the other when it is answered.
func TestMonitorHoldsReachEveryNode(t *testing.T) {
	nodes := startNodes(t, 2, func(c *config.Config) { c.MonitorWindow = time.Second })
	a, b := nodes[0], nodes[1]
	t.Cleanup(func() {
		if t.Failed() {
			for i, th := range nodes {
				t.Logf("node %d log:\n%s", i, th.logs.String())
			}
		}
	})
	alex := a.setup("alex")

	// attack runs a simulated attack by one device on node A until the
	// monitor of node B (which A's alarm never reaches otherwise) holds
	// it as want says.
	attack := func(name, typ string, want func(rateLimited, quarantined bool) bool) (string, string) {
		t.Helper()
		id, secret := a.personDevice(alex, name, typ)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := sim.Attack(ctx, sim.AttackConfig{Name: name, Broker: a.MQTTAddr(), Rate: 20,
				Devices: []sim.Device{{ID: id, Secret: secret, Kind: typ}}})
			done <- err
		}()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		waitFor(t, name+" held by node A", 30*time.Second, func() bool {
			st, held := a.mon.Status(id)
			return held && want(st.RateLimited, st.Quarantined)
		})
		waitFor(t, name+": node A's hold in force on node B", 10*time.Second, func() bool {
			st, held := b.mon.Status(id)
			return held && want(st.RateLimited, st.Quarantined)
		})
		return id, secret
	}

	// A rate limit (undeclared readings: a warning), alone: nothing else
	// makes B reload its holds meanwhile.
	door, doorSecret := attack("exfiltrate", "door-sensor", func(rl, q bool) bool { return rl && !q })
	moved := connectWatched(t, b.MQTTAddr(), door, door, doorSecret)
	refused := 0
	for range 30 {
		switch code := moved.publishCode(t, "candor/"+door+"/battery", `{"percent": 80}`); code {
		case 0:
		case 0x97: // quota exceeded: over the rate limit
			refused++
		default:
			t.Fatalf("battery reading of the rate-limited device on B: PUBACK %#x", code)
		}
	}
	if refused == 0 {
		t.Fatal("node B accepted 30 readings in a burst from a device node A's monitor rate-limited")
	}
	t.Logf("node B refused %d of 30 readings in a burst from the device rate-limited by node A", refused)

	// Released through B: no longer limited on A when B answers.
	code, out, _ := call(t, http.DefaultClient, "POST", b.URL()+"/api/v1/devices/"+door+"/release", alex, map[string]string{"reason": "it was a test"})
	if code != http.StatusOK {
		t.Fatalf("release through B: %d %v", code, out)
	}
	if _, held := a.mon.Status(door); held {
		t.Fatal("node B answered the release while node A still held the device")
	}

	// A quarantine (a flood: critical).
	meter, meterSecret := attack("flood", "smart-meter", func(_, q bool) bool { return q })
	moved = connectWatched(t, b.MQTTAddr(), meter, meter, meterSecret)
	if code := moved.publishCode(t, "candor/"+meter+"/power", `{"watts": 300}`); code != 0x87 {
		t.Fatalf("a reading of the device quarantined by node A, sent to B: PUBACK %#x, want 0x87 (not authorized)", code)
	}
	code, out, _ = call(t, http.DefaultClient, "POST", a.URL()+"/api/v1/devices/"+meter+"/release", alex, map[string]string{"reason": "checked the meter"})
	if code != http.StatusOK {
		t.Fatalf("release through A: %d %v", code, out)
	}
	if code := moved.publishCode(t, "candor/"+meter+"/power", `{"watts": 300}`); code != 0 {
		t.Fatalf("the device's next reading on B after its release through A: PUBACK %#x", code)
	}
}
