package monitor

import (
	"context"
	"fmt"
	"net/http"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// KindAdvisory is a hold an owner chose because a known flaw affects the
// device and no fix is installed yet: "restricted until fixed". It uses
// the quarantine itself (the hub keeps and passes on nothing the device
// sends; the device still receives its control topic and may report its
// firmware and update progress), so the broker needs no second check.
// Its store.Quarantine carries the advisory id in Stream: the hold
// concerns every stream, so the field is free.
const KindAdvisory Kind = "advisory"

// ErrAlreadyHeld refuses a restriction of a device the monitor already
// holds for something it saw: that hold is stronger evidence and keeps its
// own release.
var ErrAlreadyHeld = &problem.Kind{Status: http.StatusConflict, Type: "already-held",
	Text: "device is already held", Detail: "This device is already on hold for something the hub saw. Release that hold first."}

// RestrictReason is the reason the log and the device page give.
func RestrictReason(advisoryID string) string {
	return "restricted until fixed (advisory " + advisoryID + ")"
}

// Restrict holds a device back until the flaw advisoryID is fixed, on its
// owner's word, and records it.
func (m *Monitor) Restrict(ctx context.Context, deviceID, advisoryID string, by auditlog.Actor) error {
	if v, ok := m.restricted.Load(deviceID); ok {
		r := v.(*restriction)
		r.mu.Lock()
		kind := Kind(r.q.Kind)
		r.mu.Unlock()
		if kind != KindAdvisory && r.quarantined.Load() {
			return ErrAlreadyHeld
		}
	}
	q := store.Quarantine{DeviceID: deviceID, Kind: string(KindAdvisory), Stream: advisoryID, Severity: Critical.String(), Since: m.cfg.Now().UTC()}
	if m.cfg.Store != nil {
		if err := m.cfg.Store.PutQuarantine(ctx, q); err != nil {
			return fmt.Errorf("restrict device %s: %w", deviceID, err)
		}
	}
	m.hold(q, 0)
	m.control(deviceID, true, KindAdvisory)
	m.cfg.Logger.Info("device restricted until fixed", "device", deviceID, "advisory", advisoryID)
	return m.record(ctx, auditlog.Event{Actor: by, Action: auditlog.ActionDeviceQuarantine, Household: m.household(ctx, deviceID),
		Subject: auditlog.Subject{Device: deviceID}, Purpose: RestrictReason(advisoryID),
		Detail: map[string]string{"kind": string(KindAdvisory), "advisory": advisoryID}})
}

// RestrictedFor returns the advisory a device is restricted for, if it is.
func (m *Monitor) RestrictedFor(deviceID string) (string, bool) {
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return "", false
	}
	r := v.(*restriction)
	r.mu.Lock()
	defer r.mu.Unlock()
	if Kind(r.q.Kind) != KindAdvisory {
		return "", false
	}
	return r.q.Stream, true
}

// Lift ends a restriction until fixed (and only that kind of hold): the
// hub calls it when the device reports firmware that fixes the flaw.
func (m *Monitor) Lift(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error {
	if _, ok := m.RestrictedFor(deviceID); !ok {
		return ErrNotHeld
	}
	return m.Release(ctx, deviceID, by, reason)
}
