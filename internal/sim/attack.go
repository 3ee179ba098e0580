package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Attacks lists the misbehaviours Attack can drive, for the abuse
// monitor's tests and demos.
var Attacks = []string{"flood", "exfiltrate", "stuffing", "clone", "ignore-off", "scan", "wave"}

// AttackConfig configures Attack.
type AttackConfig struct {
	Name string // one of Attacks
	// Broker is the hub's plain MQTT address, host:port.
	Broker string
	// Devices are the devices used, with their real credentials (for
	// stuffing, only the ids matter). wave uses all of them, the other
	// attacks the first.
	Devices []Device
	// Rate is messages (or attempts) a second per device (default 50).
	Rate float64
	// CloneFrom is the local address the clone's second connection comes
	// from (default 127.0.0.2, which Linux routes on loopback).
	CloneFrom netip.Addr
	Logger    *slog.Logger
}

// AttackStats counts what an attack did.
type AttackStats struct {
	Sent, Refused, Failed uint64
}

// Attack drives real MQTT traffic that misbehaves in the named way until
// ctx ends, then returns what it did. It stops early only on an error
// that makes the attack impossible (an unknown name, no devices).
func Attack(ctx context.Context, cfg AttackConfig) (AttackStats, error) {
	if !slices.Contains(Attacks, cfg.Name) {
		return AttackStats{}, fmt.Errorf("unknown attack %q (want one of %s)", cfg.Name, strings.Join(Attacks, ", "))
	}
	if len(cfg.Devices) == 0 {
		return AttackStats{}, errors.New("attack: no devices")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	if !cfg.CloneFrom.IsValid() {
		cfg.CloneFrom = netip.MustParseAddr("127.0.0.2")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &attacker{cfg: cfg}
	d := cfg.Devices[0]
	switch cfg.Name {
	case "flood":
		a.flood(ctx, d, false, false)
	case "exfiltrate":
		a.flood(ctx, d, true, false)
	case "ignore-off":
		a.flood(ctx, d, false, true)
	case "stuffing":
		a.stuffing(ctx, d)
	case "clone":
		a.clone(ctx, d)
	case "scan":
		a.scan(ctx, d)
	case "wave":
		var wg sync.WaitGroup
		for _, d := range cfg.Devices {
			wg.Go(func() { a.flood(ctx, d, false, false) })
		}
		wg.Wait()
	}
	return AttackStats{Sent: a.sent.Load(), Refused: a.refused.Load(), Failed: a.failed.Load()}, nil
}

type attacker struct {
	cfg                   AttackConfig
	sent, refused, failed atomic.Uint64
}

// connect opens an MQTT 5 session; from, if valid, is the local address.
func (a *attacker) connect(ctx context.Context, from netip.Addr, clientID, user, pass string) (*paho.Client, error) {
	var nd net.Dialer
	nd.Timeout = dialTimeout
	if from.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	conn, err := nd.DialContext(ctx, "tcp", a.cfg.Broker)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: user, UsernameFlag: true,
		Password: []byte(pass), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("connect refused: reason 0x%02x", ca.ReasonCode)
	}
	return c, nil
}

// tick calls f rate times a second until ctx ends.
func (a *attacker) tick(ctx context.Context, f func()) {
	t := time.NewTicker(time.Duration(float64(time.Second) / a.cfg.Rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (a *attacker) publish(ctx context.Context, c *paho.Client, topic string, payload []byte) {
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	switch {
	case pr != nil && pr.ReasonCode >= 0x80: // paho also returns an error then
		a.refused.Add(1)
	case err != nil && ctx.Err() != nil:
	case err != nil:
		a.failed.Add(1)
	default:
		a.sent.Add(1)
	}
}

// flood sends a device's first stream far above its declared rate. With
// exfil it sends large readings with an extra field and readings on
// undeclared streams instead; with ignoreOff it sends every stream at
// the kind's normal pace, whatever the control topic says.
func (a *attacker) flood(ctx context.Context, d Device, exfil, ignoreOff bool) {
	k, ok := Kinds[d.Kind]
	if !ok {
		a.failed.Add(1)
		return
	}
	c, err := a.connect(ctx, netip.Addr{}, d.ID, d.ID, d.Secret)
	if err != nil {
		a.cfg.Logger.Info("attack: connect failed", "device", d.ID, "err", err)
		a.failed.Add(1)
		return
	}
	defer c.Disconnect(&paho.Disconnect{})
	model := k.newModel(rand.New(rand.NewPCG(1, 1)), time.Now())
	var mu sync.Mutex // a model serves one goroutine at a time
	reading := func(stream string) []byte {
		mu.Lock()
		defer mu.Unlock()
		model.advance(time.Now())
		fields := model.reading(stream)
		if fields == nil {
			fields = map[string]any{}
		}
		if exfil {
			fields["blob"] = strings.Repeat("x", 4096)
		}
		b, _ := json.Marshal(fields)
		return b
	}
	if ignoreOff {
		// Hear the hub's "stop" and ignore it.
		_, _ = c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ControlFilter(d.ID), QoS: 1}}})
		var wg sync.WaitGroup
		for _, st := range k.StreamSpecs {
			wg.Go(func() {
				t := time.NewTicker(min(st.Interval, time.Second))
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						a.publish(ctx, c, Topic(d.ID, st.Name), reading(st.Name))
					}
				}
			})
		}
		wg.Wait()
		return
	}
	stream := k.StreamSpecs[0].Name
	n := 0
	a.tick(ctx, func() {
		n++
		if exfil && n%2 == 0 {
			a.publish(ctx, c, Topic(d.ID, fmt.Sprintf("upload_%d", n%50)), reading(stream))
			return
		}
		a.publish(ctx, c, Topic(d.ID, stream), reading(stream))
	})
}

// stuffing tries wrong secrets against the device's id, several at once
// as a botnet would (each check is deliberately slow on the hub).
func (a *attacker) stuffing(ctx context.Context, d Device) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 8)
	n := 0
	a.tick(ctx, func() {
		n++
		select {
		case sem <- struct{}{}:
		default:
			return // all guesses in flight: skip this tick
		}
		guess := fmt.Sprintf("guess-%d-password", n)
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := a.connect(ctx, netip.Addr{}, d.ID, d.ID, guess)
			if err != nil {
				a.refused.Add(1)
				return
			}
			a.sent.Add(1) // a guess that worked
			_ = c.Disconnect(&paho.Disconnect{})
		})
	})
}

// clone holds the device's credential open from two source addresses at
// once, as a copied device would.
func (a *attacker) clone(ctx context.Context, d Device) {
	first, err := a.connect(ctx, netip.Addr{}, d.ID, d.ID, d.Secret)
	if err != nil {
		a.failed.Add(1)
		return
	}
	defer first.Disconnect(&paho.Disconnect{})
	second, err := a.connect(ctx, a.cfg.CloneFrom, d.ID+"-clone", d.ID, d.Secret)
	if err != nil {
		a.cfg.Logger.Info("attack: clone connect failed", "device", d.ID, "err", err)
		a.failed.Add(1)
		return
	}
	defer second.Disconnect(&paho.Disconnect{})
	a.sent.Add(2)
	<-ctx.Done()
}

// scan publishes to and subscribes on other devices' topics.
func (a *attacker) scan(ctx context.Context, d Device) {
	c, err := a.connect(ctx, netip.Addr{}, d.ID, d.ID, d.Secret)
	if err != nil {
		a.failed.Add(1)
		return
	}
	defer c.Disconnect(&paho.Disconnect{})
	n := 0
	a.tick(ctx, func() {
		n++
		other := fmt.Sprintf("device_%d", n%100)
		if n%2 == 0 {
			a.publish(ctx, c, Topic(other, "temperature"), []byte(`{}`))
			return
		}
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: TopicRoot + "/" + other + "/#", QoS: 0}}})
		switch {
		case sa != nil && len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80: // paho also returns an error then
			a.refused.Add(1)
		case err != nil && ctx.Err() != nil:
		case err != nil:
			a.failed.Add(1)
		default:
			a.sent.Add(1)
		}
	})
}
