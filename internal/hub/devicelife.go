package hub

import (
	"context"

	"github.com/candor-iot/candor/internal/advisories"
	"github.com/candor-iot/candor/internal/consent"
	"github.com/candor-iot/candor/internal/firmware"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/operator"
)

// openOperator loads who runs the hub, before consent names them in
// records.
func (h *Hub) openOperator(context.Context) error {
	h.operator = operator.New(h.st, h.rec, nil)
	return nil
}

// consentOperator names the operator in consent records as the settings
// say now; a store error leaves consent's own fallback name.
func (h *Hub) consentOperator() consent.Party {
	o, err := h.operator.Get(context.Background())
	if err != nil {
		return consent.Party{}
	}
	return consent.Party{Name: o.Name, Contact: o.Contact}
}

// openDeviceLife builds the firmware service (the broker hands it each
// device's state message) and the advisories service (matching against
// the manifests in force and the reported versions).
func (h *Hub) openDeviceLife(context.Context) error {
	h.firmware = firmware.New(h.st, h.rec, h.log.With("component", "firmware"), nil)
	var holder advisories.Holder
	if h.mon != nil {
		holder = h.mon // a nil *Monitor must not become a non-nil Holder
	}
	h.advisories = advisories.New(advisories.Options{
		Holder:    holder,
		Store:     h.st,
		Inventory: advisories.StoreInventory{Store: h.st, Manifest: h.manifestInForce},
		Log:       h.rec,
		Logger:    h.log.With("component", "advisories"),
		Fixes:     updateFixes{h},
		Feeds:     h.st,
	})
	return nil
}

func (h *Hub) manifestInForce(deviceType string) *manifest.Manifest {
	e, err := h.cat.Current(deviceType)
	if err != nil || e == nil {
		return nil
	}
	return e.Manifest
}

// updateFixes tells the advisories service whether a signed update that
// fixes an advisory is ready. The updates service starts after the broker,
// which starts after this part, so it is looked up when asked.
type updateFixes struct{ h *Hub }

func (f updateFixes) FixReady(ctx context.Context, deviceID, advisoryID string) (string, bool) {
	if f.h.upd == nil {
		return "", false
	}
	return f.h.upd.FixReady(ctx, deviceID, advisoryID)
}

func (f updateFixes) FixInstalling(ctx context.Context, deviceID, advisoryID string) bool {
	return f.h.upd != nil && f.h.upd.FixInstalling(ctx, deviceID, advisoryID)
}
