package hub

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/candor-iot/candor/internal/sim"
)

// BenchmarkAPIDuringAttack measures how usable the hub stays while each
// attack of `candor simulate --attack` runs against it over real MQTT: a
// person reads a device over the API every 20 ms for attackFor, and the
// p50, p99 and slowest of those requests are reported. "none" is the
// same with no attack. It is a figure for docs/benchmarks.md, never an
// assertion: run it with -benchtime 1x.
//
//	go test -run '^$' -bench APIDuringAttack -benchtime 1x ./internal/hub/
func BenchmarkAPIDuringAttack(b *testing.B) {
	h, _ := benchHub(b)
	_, out, _ := call(b, http.DefaultClient, "POST", h.URL()+"/api/v1/tokens", "",
		map[string]string{"username": "alex", "password": goodPassword, "name": "bench"})
	alex := out["token"].(string)
	add := func(name, typ string) sim.Device {
		code, out, _ := call(b, http.DefaultClient, "POST", h.URL()+"/api/v1/devices", alex, map[string]string{"name": name, "type": typ})
		if code != http.StatusCreated {
			b.Fatalf("add device: %d %v", code, out)
		}
		return sim.Device{ID: out["device"].(map[string]any)["id"].(string), Secret: out["secret"].(string), Kind: typ}
	}
	attacks := []struct {
		name, typ string
		devices   int
	}{
		{"none", "thermostat", 1},
		{"flood", "smart-meter", 1},
		{"exfiltrate", "door-sensor", 1},
		{"stuffing", "motion-camera", 1},
		{"clone", "thermostat", 1},
		{"ignore-off", "thermostat", 1},
		{"scan", "wearable", 1},
		{"wave", "motion-camera", 3},
	}
	for _, at := range attacks {
		b.Run(at.name, func(b *testing.B) {
			var all, firsts []time.Duration
			for range b.N {
				devs := make([]sim.Device, at.devices)
				for i := range devs {
					devs[i] = add(at.name, at.typ)
				}
				if at.name == "ignore-off" {
					for _, purpose := range []string{"candor:HomeAutomation", "dpv:ServiceProvision"} {
						call(b, http.DefaultClient, "PUT", h.URL()+"/api/v1/devices/"+devs[0].ID+"/consent/setpoint", alex,
							map[string]any{"purpose": purpose, "on": false})
					}
				}
				ctx, stop := context.WithTimeout(context.Background(), attackFor)
				done := make(chan struct{})
				if at.name != "none" {
					go func() {
						defer close(done)
						if _, err := sim.Attack(ctx, sim.AttackConfig{Name: at.name, Broker: h.MQTTAddr(), Devices: devs, Rate: 20}); err != nil {
							b.Error(err)
						}
					}()
				} else {
					close(done)
				}
				got := sampleAPI(ctx, h.URL()+"/api/v1/devices/"+devs[0].ID, alex)
				if len(got) > 0 {
					firsts = append(firsts, got[0])
				}
				all = append(all, got...)
				stop()
				<-done
			}
			if len(all) == 0 {
				b.Fatal("no API request finished")
			}
			slices.Sort(all)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
			b.ReportMetric(ms(all[len(all)*99/100]), "p99-ms")
			b.ReportMetric(ms(all[len(all)-1]), "max-ms")
			b.ReportMetric(float64(len(all)), "requests")
			// The first request meets the attack's start (and a device
			// the hub has just made); a short run's p99 is mostly it.
			b.ReportMetric(ms(slices.Max(firsts)), "first-ms")
			b.Logf("%s: %d requests, p50 %v, p99 %v, max %v", at.name, len(all), all[len(all)/2], all[len(all)*99/100], all[len(all)-1])
		})
	}
}

// attackFor is how long each attack runs while the API is sampled: long
// enough for a few hundred requests, so the p99 is not one slow request.
const attackFor = 8 * time.Second
