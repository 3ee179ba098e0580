package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/candor-iot/candor/internal/apps"
)

// LastValues gives an app that just subscribed the last value of each
// stream a person let it keep (package apps, lastvalue.go). They are not
// in mochi's retained store: that would hand them to every subscriber the
// ACL lets see the topic, without asking whether the person allowed the
// app the last value as well.
type LastValues interface {
	LastValues(appID string, filters []string) []apps.LastValue
}

// lastValueHook sends them, as retained QoS 0 messages, right after a
// SUBSCRIBE was granted (MQTT allows them before the SUBACK).
type lastValueHook struct {
	mqtt.HookBase
	src LastValues
}

func (h *lastValueHook) ID() string { return "candor-last-values" }

func (h *lastValueHook) Provides(b byte) bool { return b == mqtt.OnSubscribed }

func (h *lastValueHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !isAppClient(cl) {
		return
	}
	var filters []string
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < 0x80 && f.RetainHandling != 2 {
			filters = append(filters, f.Filter)
		}
	}
	if len(filters) == 0 {
		return
	}
	for _, lv := range h.src.LastValues(string(cl.Properties.Username), filters) {
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName:   lv.Topic,
			Payload:     lv.Payload,
		})
	}
}
