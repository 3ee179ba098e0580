package hub

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/sim"
)

// demoName is the display name of the demo device of a kind.
func demoName(kind string) string { return "Demo " + kind }

// startDemo, with --demo, starts simulated devices of every kind over
// real MQTT; they run until the hub stops.
func (h *Hub) startDemo(ctx context.Context) error {
	if !h.cfg.Demo {
		return nil
	}
	ctx = auditlog.WithActor(ctx, auditlog.Actor{Kind: auditlog.ActorHub, ID: "demo"})
	if err := h.importDemoAdvisory(ctx); err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	stopRepo, err := h.serveDemoRepo(ctx)
	if err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	s, hh, n, err := h.demoSimulator(ctx)
	if err != nil {
		stopRepo()
		return fmt.Errorf("start demo: %w", err)
	}
	h.demoJob.run(func(ctx context.Context) {
		defer stopRepo()
		if err := s.Run(ctx); err != nil {
			h.log.Error("demo simulator stopped", "err", err)
		}
	})
	if err := h.startDemoZigbee(ctx, hh); err != nil {
		return fmt.Errorf("start demo: %w", err)
	}
	h.log.Info("demo devices started", "household", hh, "devices", n)
	return nil
}

// demoAdvisory is a made-up OSV advisory about the demo thermostat's
// firmware (the simulator's thermostat runs an affected version), so the
// demo shows an advisory on the home and device pages.
//
//go:embed demo_advisory.json
var demoAdvisory []byte

// importDemoAdvisory imports the demo advisory once: a restarted demo does
// not record the same import again.
func (h *Hub) importDemoAdvisory(ctx context.Context) error {
	if has, err := h.advisories.Has(ctx, "CANDOR-DEMO-2026-0001"); err != nil || has {
		return err
	}
	_, err := h.advisories.Import(ctx, []advisories.Document{{Source: "demo_advisory.json", Data: demoAdvisory}})
	return err
}

// demoSimulator makes sure the first household has one device of every
// simulated kind and returns a simulator for them. Each start rotates the
// demo devices' secrets: the hub keeps only hashes, so this is the only
// way the simulator can learn them.
func (h *Hub) demoSimulator(ctx context.Context) (sm *sim.Simulator, household string, n int, err error) {
	hh, err := h.id.EnsureHousehold(ctx, "Home")
	if err != nil {
		return nil, "", 0, err
	}
	existing, err := h.st.Devices(ctx, hh)
	if err != nil {
		return nil, "", 0, fmt.Errorf("list devices: %w", err)
	}
	var devices []sim.Device
	for _, kind := range sim.KindNames() {
		var id, secret string
		for _, d := range existing {
			if d.Type == kind && d.Name == demoName(kind) && !d.Revoked() {
				id = d.ID
				break
			}
		}
		if id == "" {
			d, s, err := h.id.AddDevice(ctx, identity.NewDevice{HouseholdID: hh, Name: demoName(kind), Type: kind})
			if err != nil {
				return nil, "", 0, err
			}
			id, secret = d.ID, s
		} else if secret, err = h.id.RotateDevice(ctx, id, ""); err != nil {
			return nil, "", 0, err
		}
		devices = append(devices, sim.Device{ID: id, Secret: secret, Kind: kind})
	}
	addr, tlsCfg, err := h.demoBroker()
	if err != nil {
		return nil, "", 0, err
	}
	s, err := sim.New(sim.Config{
		Broker:    addr,
		TLSConfig: tlsCfg,
		Devices:   devices,
		Speed:     float64(h.cfg.DemoSpeed),
		Logger:    h.log.With("component", "demo"),
	})
	if err != nil {
		return nil, "", 0, err
	}
	return s, hh, len(devices), nil
}
