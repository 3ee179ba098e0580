package advisories

import (
	"context"
	"fmt"

	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// DeviceStore is the part of store.Store an inventory reads.
type DeviceStore interface {
	AllDevices(ctx context.Context) ([]store.Device, error)
	CurrentFirmware(ctx context.Context) ([]store.FirmwareReport, error)
}

// StoreInventory lists the hub's devices with the identifiers of their
// type's manifest in force and their latest reported firmware.
type StoreInventory struct {
	Store DeviceStore
	// Manifest returns the manifest in force for a device type, or nil.
	Manifest func(deviceType string) *manifest.Manifest
}

// Devices implements Inventory. Revoked devices are left out: they can no
// longer connect, so an advisory about them calls for no action.
func (inv StoreInventory) Devices(ctx context.Context) ([]Device, error) {
	devs, err := inv.Store.AllDevices(ctx)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	fw, err := inv.Store.CurrentFirmware(ctx)
	if err != nil {
		return nil, fmt.Errorf("list firmware: %w", err)
	}
	current := make(map[string]string, len(fw))
	for _, r := range fw {
		current[r.DeviceID] = r.Firmware
	}
	products := map[string]Product{}
	out := make([]Device, 0, len(devs))
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		p, ok := products[d.Type]
		if !ok {
			if m := inv.Manifest(d.Type); m != nil {
				p = ProductOf(m)
			}
			products[d.Type] = p
		}
		out = append(out, Device{ID: d.ID, HouseholdID: d.HouseholdID, Name: d.Name, Type: d.Type, Product: p, Firmware: current[d.ID]})
	}
	return out, nil
}

// ProductOf is how advisories can name a manifest's device type: its maker,
// and the model, PURL and CPE of candor:identifiers. A type without
// identifiers matches no advisory: guessing from its title could alarm
// people about someone else's product.
func ProductOf(m *manifest.Manifest) Product {
	p := Product{Maker: m.Maker.Name, Model: m.Identifiers.Model, PURL: normPURL(m.Identifiers.PURL)}
	if vp, _ := cpeParts(m.Identifiers.CPE); vp != "" {
		p.CPE = vp
	}
	return p
}
