package hub

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// A device's retained control messages are set when it connects, not at
// hub start (issue #19): after a restart, a device that subscribes to its
// control topics still receives one per stream, retained.
func TestControlMessagesSetWhenDeviceConnects(t *testing.T) {
	dir := shortTempDir(t)
	th := startHubIn(t, dir)
	id, secret := th.addDevice("Hall", "thermostat")
	th.close()

	th2 := startHubIn(t, dir)
	got := make(chan *paho.Publish, 16)
	c, _, err := v5(t, th2.MQTTAddr(), id, id, secret, func(pr paho.PublishReceived) { got <- pr.Packet })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "candor/" + id + "/control/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := "candor/" + id + "/control/setpoint"
	for {
		select {
		case p := <-got:
			if p.Topic != want {
				continue
			}
			var ctl struct {
				Collect *bool `json:"collect"`
			}
			if err := json.Unmarshal(p.Payload, &ctl); err != nil || !p.Retain || ctl.Collect == nil || !*ctl.Collect {
				t.Fatalf("control message %s: retain %v, payload %s", p.Topic, p.Retain, p.Payload)
			}
			return
		case <-ctx.Done():
			t.Fatalf("no retained control message on %s after the device connected", want)
		}
	}
}
