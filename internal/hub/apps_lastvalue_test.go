package hub

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestAppLastValue: an app gets a stream's last value when it subscribes
// only while a person lets it keep it (off by default), and withdrawing
// that switch, or the stream itself, forgets the value at once. Each
// "nothing retained came" is proved by a live reading posted after the
// SUBACK that must be the first message (last values are written before
// the SUBACK).
func TestAppLastValue(t *testing.T) {
	t.Parallel()
	th := startHub(t)
	dev, secret := th.addDevice("Hall", "thermostat")
	app, appSecret := th.addApp("Home Assistant", "candor:HomeAutomation")
	th.allowApp(app, dev, "temperature", true)
	retain := func(on bool) {
		t.Helper()
		code, out, _ := call(t, th.local, "PUT", "http://candor/api/v1/apps/"+app+"/retain/"+dev+"/temperature", "", map[string]bool{"on": on})
		if code != http.StatusOK {
			t.Fatalf("switch last value: %d %v", code, out)
		}
	}
	n := 0
	// first subscribes anew and returns the first message it gets, after
	// posting live (a reading the app may receive).
	first := func(live string) string {
		t.Helper()
		n++
		got := make(chan string, 8)
		c, _, err := v5(t, th.MQTTAddr(), fmt.Sprintf("%s-%d", app, n), app, appSecret, func(pr paho.PublishReceived) {
			got <- fmt.Sprintf("retained=%v %s", pr.Packet.Retain, pr.Packet.Payload)
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/+/temperature", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		th.post(dev, secret, "temperature", live)
		select {
		case s := <-got:
			_ = c.Disconnect(&paho.Disconnect{})
			return s
		case <-ctx.Done():
			t.Fatal("the app received nothing")
			return ""
		}
	}

	th.post(dev, secret, "temperature", `{"celsius":20}`)
	if s := first(`{"celsius":21}`); s != `retained=false {"celsius":21}` {
		t.Errorf("off by default: the first message was %s, want the live reading", s)
	}
	retain(true)
	th.post(dev, secret, "temperature", `{"celsius":22}`)
	if s := first(`{"celsius":23}`); s != `retained=true {"celsius":22}` {
		t.Errorf("allowed: the first message was %s, want the last value, retained", s)
	}
	retain(false)
	if s := first(`{"celsius":24}`); s != `retained=false {"celsius":24}` {
		t.Errorf("withdrawn: the first message was %s, want the live reading", s)
	}
	retain(true)
	th.post(dev, secret, "temperature", `{"celsius":25}`)
	th.allowApp(app, dev, "temperature", false) // the stream itself withdrawn: forgotten too
	th.allowApp(app, dev, "temperature", true)
	if s := first(`{"celsius":26}`); s != `retained=false {"celsius":26}` {
		t.Errorf("stream withdrawn and allowed again: the first message was %s, want the live reading", s)
	}
	// Deleting the device's readings deletes the copy too.
	retain(true)
	th.post(dev, secret, "temperature", `{"celsius":27}`)
	if code, out, _ := call(t, th.local, "DELETE", "http://candor/api/v1/devices/"+dev+"/readings", "", nil); code != http.StatusOK {
		t.Fatalf("delete readings: %d %v", code, out)
	}
	if s := first(`{"celsius":28}`); s != `retained=false {"celsius":28}` {
		t.Errorf("after the readings were deleted: the first message was %s, want the live reading", s)
	}
}
