package hub

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/sim"
)

// A simulated thermostat, over real MQTT against a real hub, follows the
// machine-learning register's switches: when its owner turns learning off
// for the temperature stream the hub's retained control message carries
// "learn": false and the device stops learning from it (and so stops
// preheating); turning automated decisions off reaches it as "decide":
// false; turning learning on again resumes it. Collection goes on
// throughout.
func TestSimulatorHonoursLearningSwitch(t *testing.T) {
	th := startHub(t)
	alex := th.setup("alex")
	code, out, _ := call(t, http.DefaultClient, "POST", th.URL()+"/api/v1/devices", alex, map[string]string{"name": "Hall", "type": "thermostat"})
	if code != http.StatusCreated {
		t.Fatalf("add device: %d %v", code, out)
	}
	id := out["device"].(map[string]any)["id"].(string)
	s, err := sim.New(sim.Config{Broker: th.MQTTAddr(), Devices: []sim.Device{{ID: id, Secret: out["secret"].(string), Kind: "thermostat"}},
		Speed: 20, Seed: 7, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// waitFor polls the simulator's own view until cond holds: a wait on
	// a condition, not a sleep before an assertion.
	waitFor := func(what string, cond func(sim.DeviceStats) bool) sim.DeviceStats {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			st := s.Stats().Devices[0]
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: device stats %+v", what, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st := waitFor("publishing", func(st sim.DeviceStats) bool { return st.Streams["temperature"] > 0 })
	if len(st.NotLearning) != 0 || len(st.NotDeciding) != 0 {
		t.Fatalf("before any switch: %+v", st)
	}
	set := func(purpose string, on bool) {
		t.Helper()
		code, out, _ := call(t, http.DefaultClient, "PUT", th.URL()+"/api/v1/devices/"+id+"/learning/temperature", alex,
			map[string]any{"purpose": purpose, "on": on})
		if code != http.StatusOK {
			t.Fatalf("switch %s %v: %d %v", purpose, on, code, out)
		}
	}
	set("candor:MachineLearning", false)
	st = waitFor("learn false reaches the device", func(st sim.DeviceStats) bool { return slices.Equal(st.NotLearning, []string{"temperature"}) })
	if len(st.NotDeciding) != 0 || len(st.Paused) != 0 {
		t.Fatalf("learning off changed more than learning: %+v", st)
	}
	// Collection is untouched: temperature readings keep arriving.
	n := st.Streams["temperature"]
	waitFor("temperature still published", func(st sim.DeviceStats) bool { return st.Streams["temperature"] > n })

	set("candor:AutomatedDecisions", false)
	waitFor("decide false reaches the device", func(st sim.DeviceStats) bool { return slices.Equal(st.NotDeciding, []string{"temperature"}) })
	set("candor:MachineLearning", true)
	st = waitFor("learn true reaches the device", func(st sim.DeviceStats) bool { return len(st.NotLearning) == 0 })
	if !slices.Equal(st.NotDeciding, []string{"temperature"}) {
		t.Fatalf("turning learning on changed decisions: %+v", st)
	}
}
