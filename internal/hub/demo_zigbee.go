package hub

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/candor-iot/candor/internal/apps"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/bridge"
	"github.com/candor-iot/candor/internal/manifest/importer"
	"github.com/candor-iot/candor/internal/sim"
	"github.com/candor-iot/candor/internal/store"
)

// The demo's apps: a Zigbee2MQTT bridge with two simulated Zigbee
// devices, and a Home Assistant-style app that gets a few of their
// streams, may switch the plug, and gets the motion sensor's last value
// at once. The uses are switched on only when the app is first made, so
// what a person changes afterwards stays changed across restarts.

const (
	demoBridgeName = "Zigbee2MQTT (demo)"
	demoAppName    = "Home Assistant (demo)"
)

var demoZigbee = []sim.ZigbeeDevice{
	{FriendlyName: "hallway/motion", Model: sim.ZigbeeMotion},
	{FriendlyName: "desk plug", Model: sim.ZigbeePlug},
}

func demoZigbeeType(model string) string { return "demo-zigbee-" + model }

// demoApp is the demo Home Assistant app's credential, for the banner.
type demoApp struct{ id, secret string }

// startDemoZigbee sets up the demo bridge, its devices and the demo app,
// and runs the simulated Zigbee2MQTT until the hub stops.
func (h *Hub) startDemoZigbee(ctx context.Context, hh string) error {
	ctx = auditlog.WithActor(ctx, auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"})
	for _, d := range demoZigbee {
		if err := h.demoZigbeeType(ctx, d.Model); err != nil {
			return err
		}
	}
	list, err := h.apps.List(ctx, hh)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	bridgeID, bridgeSecret, _, err := h.demoCredential(ctx, list, hh, demoBridgeName, apps.KindZigbee2MQTT)
	if err != nil {
		return err
	}
	devs, err := h.st.Devices(ctx, hh)
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	ids := map[string]string{} // model → device id
	for _, zd := range demoZigbee {
		id := ""
		for _, d := range devs {
			if strings.HasPrefix(d.ID, bridge.DevicePrefix) && d.Name == zd.FriendlyName && !d.Revoked() {
				id = d.ID
			}
		}
		if id == "" {
			d, err := h.zb.AddDevice(ctx, hh, zd.FriendlyName, demoZigbeeType(zd.Model), "")
			if err != nil {
				return fmt.Errorf("add demo Zigbee device %s: %w", zd.FriendlyName, err)
			}
			id = d.ID
		}
		ids[zd.Model] = id
	}
	appID, appSecret, fresh, err := h.demoCredential(ctx, list, hh, demoAppName, apps.KindHomeAssistant)
	if err != nil {
		return err
	}
	if fresh {
		motion, plug := ids[sim.ZigbeeMotion], ids[sim.ZigbeePlug]
		for _, sw := range []apps.Switch{
			{DeviceID: motion, Stream: "occupancy", On: true},
			{DeviceID: motion, Stream: "occupancy", On: true, Retain: true},
			{DeviceID: motion, Stream: "illuminance_lux", On: true},
			{DeviceID: plug, Stream: "power", On: true},
			{DeviceID: plug, Stream: "state", On: true},
			{DeviceID: plug, Stream: "state", On: true, Command: true},
		} {
			sw.AppID, sw.Actor = appID, auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"}
			if err := h.apps.Set(ctx, sw); err != nil {
				return fmt.Errorf("switch on the demo app's %s: %w", sw.Stream, err)
			}
		}
	}
	h.demoApp = &demoApp{id: appID, secret: appSecret}
	addr, tlsCfg, err := h.demoBroker()
	if err != nil {
		return err
	}
	speed := float64(h.cfg.DemoSpeed)
	h.demoJob.run(func(ctx context.Context) {
		if err := sim.RunZigbee2MQTT(ctx, sim.Zigbee2MQTTConfig{Broker: addr, TLSConfig: tlsCfg, ID: bridgeID, Secret: bridgeSecret,
			Devices: demoZigbee, Speed: speed, Logger: h.log.With("component", "demo-zigbee2mqtt")}); err != nil {
			h.log.Error("demo Zigbee2MQTT stopped", "err", err)
		}
	})
	return nil
}

// demoZigbeeType puts in force the demo type of a Zigbee model: its
// manifest imported from the Zigbee2MQTT definition and confirmed, as an
// admin would, on the demo's behalf.
func (h *Hub) demoZigbeeType(ctx context.Context, model string) error {
	typ := demoZigbeeType(model)
	if _, err := h.cat.Current(typ); err == nil {
		return nil
	}
	draft, err := importer.FromZigbee2MQTT(typ, sim.ZigbeeDefinition(model))
	if err != nil {
		return fmt.Errorf("import demo Zigbee type %s: %w", typ, err)
	}
	doc, err := importer.Confirm(draft)
	if err != nil {
		return fmt.Errorf("confirm demo Zigbee type %s: %w", typ, err)
	}
	if _, err := h.cat.Put(ctx, doc); err != nil {
		return fmt.Errorf("put demo Zigbee type %s: %w", typ, err)
	}
	return nil
}

// demoCredential finds the demo's app of a name and kind, or adds it
// (fresh), and returns a secret for it: a new one each start, since the
// hub keeps only hashes.
func (h *Hub) demoCredential(ctx context.Context, list []store.App, hh, name, kind string) (id, secret string, fresh bool, err error) {
	for _, a := range list {
		if a.Name == name && a.Kind == kind && !a.Revoked() {
			secret, err = h.apps.Rotate(ctx, auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"}, a.ID)
			return a.ID, secret, false, err
		}
	}
	purpose := "candor:HomeAutomation"
	if kind == apps.KindZigbee2MQTT {
		purpose = "dpv:ServiceProvision"
	}
	a, secret, err := h.apps.Add(ctx, apps.NewApp{HouseholdID: hh, Name: name, Kind: kind, Purposes: []string{purpose},
		Actor: auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"}})
	if err != nil {
		return "", "", false, fmt.Errorf("add %s: %w", name, err)
	}
	return a.ID, secret, true, nil
}

// demoAppBanner shows how to watch what the demo app gets, as it would.
func (h *Hub) demoAppBanner(out io.Writer) {
	if h.demoApp == nil {
		return
	}
	host, port, err := net.SplitHostPort(h.MQTTAddr())
	if err != nil {
		return // no plain MQTT listener
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	fmt.Fprintf(out, "\nThe demo Home Assistant app gets what its switches allow (see the Apps page); watch it as it would:\n")
	fmt.Fprintf(out, "    mosquitto_sub -h %s -p %s -V mqttv5 -i %s -u %s -P %s -t 'candor/#' -t 'homeassistant/#' -v\n",
		host, port, h.demoApp.id, h.demoApp.id, h.demoApp.secret)
}
