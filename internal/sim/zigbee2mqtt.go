package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// A simulated Zigbee2MQTT: one MQTT client that speaks for several Zigbee
// devices as Zigbee2MQTT does, so the demo (and tests) show the hub's
// Zigbee2MQTT bridge with no radio. It publishes each device's state as
// one JSON object on zigbee2mqtt/<friendly_name>, says it is online on
// zigbee2mqtt/bridge/state (its will says offline), lists its devices on
// zigbee2mqtt/bridge/devices, and obeys zigbee2mqtt/<friendly_name>/set.

// Zigbee models the simulator knows, with their Zigbee2MQTT definitions.
const (
	ZigbeeMotion = "motion" // a battery motion sensor with a light sensor
	ZigbeePlug   = "plug"   // a smart plug that measures power
)

// zigbeeDefinitions are the bridge/devices "definition" objects, as
// Zigbee2MQTT publishes them for these models.
var zigbeeDefinitions = map[string]string{
	ZigbeeMotion: `{"model":"9290012607","vendor":"Philips","description":"Hue motion sensor","supports_ota":true,"exposes":[
		{"type":"binary","name":"occupancy","property":"occupancy","access":1,"value_on":true,"value_off":false,"description":"Indicates whether the device detected occupancy"},
		{"type":"numeric","name":"battery","property":"battery","access":1,"unit":"%","value_min":0,"value_max":100,"description":"Remaining battery in %","category":"diagnostic"},
		{"type":"numeric","name":"illuminance_lux","property":"illuminance_lux","access":1,"unit":"lx","description":"Measured illuminance in lux"},
		{"type":"numeric","name":"linkquality","property":"linkquality","access":1,"unit":"lqi","value_min":0,"value_max":255,"description":"Link quality (signal strength)","category":"diagnostic"}]}`,
	ZigbeePlug: `{"model":"ZNCZ02LM","vendor":"Xiaomi","description":"Mi power plug ZigBee","supports_ota":false,"exposes":[
		{"type":"switch","features":[{"type":"binary","name":"state","property":"state","access":7,"value_on":"ON","value_off":"OFF","value_toggle":"TOGGLE","description":"On/off state of the switch"}]},
		{"type":"numeric","name":"power","property":"power","access":5,"unit":"W","description":"Instantaneous measured power"},
		{"type":"numeric","name":"energy","property":"energy","access":5,"unit":"kWh","description":"Sum of consumed energy"},
		{"type":"numeric","name":"linkquality","property":"linkquality","access":1,"unit":"lqi","value_min":0,"value_max":255,"description":"Link quality (signal strength)","category":"diagnostic"}]}`,
}

// ZigbeeDefinition returns the Zigbee2MQTT definition of a model, for
// importing its manifest (importer.FromZigbee2MQTT), or nil.
func ZigbeeDefinition(model string) []byte {
	if d, ok := zigbeeDefinitions[model]; ok {
		return []byte(d)
	}
	return nil
}

// ZigbeeDevice is one device behind the simulated Zigbee2MQTT.
type ZigbeeDevice struct {
	FriendlyName string
	Model        string // ZigbeeMotion or ZigbeePlug
}

// Zigbee2MQTTConfig configures RunZigbee2MQTT.
type Zigbee2MQTTConfig struct {
	Broker    string // as Config.Broker
	TLSConfig *tls.Config
	// ID and Secret are the hub's bridge credential (username and client
	// id, and password). The secret is never logged.
	ID, Secret string
	Devices    []ZigbeeDevice
	// Interval between two state messages of a device (default 20 s),
	// divided by Speed (default 1).
	Interval time.Duration
	Speed    float64
	Logger   *slog.Logger
}

type zigbeeState struct {
	mu      sync.Mutex
	plugOn  map[string]bool
	energy  map[string]float64
	battery map[string]float64
}

// RunZigbee2MQTT runs a simulated Zigbee2MQTT until ctx ends,
// reconnecting as needed.
func RunZigbee2MQTT(ctx context.Context, cfg Zigbee2MQTTConfig) error {
	addr, useTLS, err := parseBroker(cfg.Broker)
	if err != nil {
		return err
	}
	if cfg.ID == "" || len(cfg.Devices) == 0 {
		return errors.New("sim: a Zigbee2MQTT needs its credential and at least one device")
	}
	for _, d := range cfg.Devices {
		if zigbeeDefinitions[d.Model] == "" || d.FriendlyName == "" {
			return fmt.Errorf("sim: Zigbee device %q of unknown model %q", d.FriendlyName, d.Model)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := cfg.Interval
	if interval <= 0 {
		interval = 20 * time.Second
	}
	if cfg.Speed > 0 {
		interval = time.Duration(float64(interval) / cfg.Speed)
	}
	tlsCfg := cfg.TLSConfig
	if tlsCfg == nil && useTLS {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	scheme := "mqtt"
	if tlsCfg != nil {
		scheme = "tls"
	}
	st := &zigbeeState{plugOn: map[string]bool{}, energy: map[string]float64{}, battery: map[string]float64{}}
	var cmMu sync.Mutex
	var cm *autopaho.ConnectionManager
	publishState := func(d ZigbeeDevice) {
		cmMu.Lock()
		c := cm
		cmMu.Unlock()
		if c == nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if _, err := c.Publish(pctx, &paho.Publish{Topic: "zigbee2mqtt/" + d.FriendlyName, QoS: 1, Payload: st.message(d)}); err != nil && ctx.Err() == nil {
			log.Info("zigbee2mqtt state not sent", "device", d.FriendlyName, "err", err)
		}
	}
	onSet := func(pr paho.PublishReceived) (bool, error) {
		name, ok := strings.CutSuffix(strings.TrimPrefix(pr.Packet.Topic, "zigbee2mqtt/"), "/set")
		if !ok {
			return true, nil
		}
		for _, d := range cfg.Devices {
			if d.FriendlyName == name && d.Model == ZigbeePlug {
				var set struct {
					State string `json:"state"`
				}
				if json.Unmarshal(pr.Packet.Payload, &set) == nil && (set.State == "ON" || set.State == "OFF") {
					st.mu.Lock()
					st.plugOn[name] = set.State == "ON"
					st.mu.Unlock()
					log.Info("zigbee2mqtt plug switched by the hub", "device", name)
					go publishState(d) // Zigbee2MQTT reports the new state at once
				}
			}
		}
		return true, nil
	}
	c, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{{Scheme: scheme, Host: addr}},
		TlsCfg:                        tlsCfg,
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                dialTimeout,
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			if tlsCfg != nil {
				td := tls.Dialer{Config: tlsCfg}
				c, err := td.DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				return packets.NewThreadSafeConn(c), nil // paho writes from several goroutines
			}
			var nd net.Dialer
			return nd.DialContext(ctx, "tcp", addr)
		},
		ConnectUsername: cfg.ID,
		ConnectPassword: []byte(cfg.Secret),
		WillMessage:     &paho.WillMessage{Topic: "zigbee2mqtt/bridge/state", Payload: []byte(`{"state":"offline"}`), Retain: true, QoS: 1},
		OnConnectionUp: func(c *autopaho.ConnectionManager, _ *paho.Connack) {
			log.Info("zigbee2mqtt connected", "bridge", cfg.ID)
			go announce(ctx, c, cfg.Devices, log)
		},
		OnConnectError: func(err error) { log.Info("zigbee2mqtt connect failed", "err", connectError(err)) },
		ClientConfig: paho.ClientConfig{
			ClientID:          cfg.ID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){onSet},
		},
	})
	if err != nil {
		return err
	}
	cmMu.Lock()
	cm = c
	cmMu.Unlock()
	if err := c.AwaitConnection(ctx); err != nil {
		return nil // ctx ended
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, d := range cfg.Devices {
			publishState(d)
		}
		select {
		case <-ctx.Done():
			<-c.Done()
			return nil
		case <-t.C:
		}
	}
}

// announce does what Zigbee2MQTT does on connecting: subscribe to its
// base topic, say it is online and list its devices.
func announce(ctx context.Context, c *autopaho.ConnectionManager, devices []ZigbeeDevice, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "zigbee2mqtt/#", QoS: 1}}}); err != nil {
		log.Info("zigbee2mqtt subscribe failed", "err", err)
	}
	list := make([]map[string]any, 0, len(devices))
	for i, d := range devices {
		list = append(list, map[string]any{"ieee_address": fmt.Sprintf("0x00158d00%08x", i+1), "friendly_name": d.FriendlyName,
			"type": "EndDevice", "supported": true, "definition": json.RawMessage(zigbeeDefinitions[d.Model])})
	}
	devs, _ := json.Marshal(list)
	for _, m := range []struct{ topic, payload string }{
		{"zigbee2mqtt/bridge/state", `{"state":"online"}`},
		{"zigbee2mqtt/bridge/devices", string(devs)},
	} {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: m.topic, QoS: 1, Retain: true, Payload: []byte(m.payload)}); err != nil {
			log.Info("zigbee2mqtt announcement not sent", "topic", m.topic, "err", err)
		}
	}
}

// message is a device's state as Zigbee2MQTT publishes it: every property
// in one object.
func (st *zigbeeState) message(d ZigbeeDevice) []byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	var m map[string]any
	switch d.Model {
	case ZigbeeMotion:
		b, ok := st.battery[d.FriendlyName]
		if !ok {
			b = 100
		}
		b = max(b-0.01, 5)
		st.battery[d.FriendlyName] = b
		m = map[string]any{"occupancy": rand.N(3) == 0, "battery": int(b), "illuminance_lux": rand.N(400), "linkquality": 80 + rand.N(100)}
	case ZigbeePlug:
		on := st.plugOn[d.FriendlyName]
		state, power := "OFF", 0.0
		if on {
			state, power = "ON", 40+rand.Float64()*20
		}
		st.energy[d.FriendlyName] += power / 1000 / 180
		m = map[string]any{"state": state, "power": math.Round(power*10) / 10, "energy": math.Round(st.energy[d.FriendlyName]*100) / 100, "linkquality": 80 + rand.N(100)}
	}
	out, _ := json.Marshal(m)
	return out
}
