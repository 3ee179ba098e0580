package hub

import (
	"context"
	"fmt"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/sim"
)

// demoName is the display name of the demo device of a kind.
func demoName(kind string) string { return "Demo " + kind }

// startDemo makes sure the first household has one device of every
// simulated kind and starts the simulator for them over real MQTT. Each
// start rotates the demo devices' secrets: the hub keeps only hashes, so
// this is the only way the simulator can learn them.
func (h *Hub) startDemo(ctx, runCtx context.Context) error {
	hh, err := h.id.EnsureHousehold(ctx, "Home")
	if err != nil {
		return err
	}
	existing, err := h.st.Devices(ctx, hh)
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
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
				return err
			}
			id, secret = d.ID, s
		} else if secret, err = h.id.RotateDevice(ctx, id, ""); err != nil {
			return err
		}
		devices = append(devices, sim.Device{ID: id, Secret: secret, Kind: kind})
	}
	addr, tlsCfg, err := h.demoBroker()
	if err != nil {
		return err
	}
	s, err := sim.New(sim.Config{
		Broker:    addr,
		TLSConfig: tlsCfg,
		Devices:   devices,
		Speed:     float64(h.cfg.DemoSpeed),
		Logger:    h.log.With("component", "demo"),
	})
	if err != nil {
		return err
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := s.Run(runCtx); err != nil {
			h.log.Error("demo simulator stopped", "err", err)
		}
	}()
	h.log.Info("demo devices started", "household", hh, "devices", len(devices))
	return nil
}
