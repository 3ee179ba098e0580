package monitor

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// KindAdvisory is a hold an owner chose because a known flaw affects the
// device and no fix is installed yet: "restricted until fixed". It uses
// the quarantine itself (the hub keeps and passes on nothing the device
// sends; the device still receives its control topic and may report its
// firmware and update progress), so the broker needs no second check.
// Its store.Quarantine carries the advisory id in Advisory (and, as holds
// kept before that field did, in Stream: the hold concerns every stream).
//
// A hold has at most two reasons. When an alarm quarantines a device
// already held until fixed, the alarm's quarantine keeps the advisory:
// firmware that fixes the flaw lifts the advisory's reason only (Lift),
// the owner's release lifts the alarm's reason only (Release), and the
// device goes free when both are gone. The owner may release the
// remaining hold until fixed too, as any hold until fixed.
const KindAdvisory Kind = "advisory"

// advisoryOf returns the advisory a hold waits for, or "".
func advisoryOf(q store.Quarantine) string {
	if q.Advisory != "" {
		return q.Advisory
	}
	if Kind(q.Kind) == KindAdvisory {
		return q.Stream
	}
	return ""
}

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
	m.holds.Lock()
	if v, ok := m.restricted.Load(deviceID); ok {
		r := v.(*restriction)
		r.mu.Lock()
		kind := Kind(r.q.Kind)
		r.mu.Unlock()
		if kind != KindAdvisory && r.quarantined.Load() {
			m.holds.Unlock()
			return ErrAlreadyHeld
		}
	}
	q := store.Quarantine{DeviceID: deviceID, Kind: string(KindAdvisory), Stream: advisoryID, Advisory: advisoryID,
		Severity: Critical.String(), Since: m.cfg.Now().UTC()}
	if m.cfg.Store != nil {
		if err := m.cfg.Store.PutQuarantine(ctx, q); err != nil {
			m.holds.Unlock()
			return fmt.Errorf("restrict device %s: %w", deviceID, err)
		}
	}
	m.hold(q, 0)
	m.holdChange(deviceID)
	m.control(deviceID)
	m.holds.Unlock()
	m.cfg.Logger.Info("device restricted until fixed", "device", deviceID, "advisory", advisoryID)
	return m.recordFor(ctx, deviceID, auditlog.Event{Actor: by, Action: auditlog.ActionDeviceQuarantine,
		Subject: auditlog.Subject{Device: deviceID}, Purpose: RestrictReason(advisoryID),
		Detail: map[string]string{"kind": string(KindAdvisory), "advisory": advisoryID}})
}

// RestrictedFor returns the advisory a device is held for until it is
// fixed, if it is (alone, or with an alarm's quarantine).
func (m *Monitor) RestrictedFor(deviceID string) (string, bool) {
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return "", false
	}
	r := v.(*restriction)
	r.mu.Lock()
	defer r.mu.Unlock()
	adv := advisoryOf(r.q)
	return adv, adv != ""
}

// Lift ends the "until fixed" reason of a hold: the hub calls it when the
// device reports firmware that fixes the flaw. A hold with no other
// reason ends; a device an alarm also quarantined stays held until its
// owner releases it.
func (m *Monitor) Lift(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error {
	m.holds.Lock()
	ev, err := m.liftLocked(ctx, deviceID, by, reason)
	m.holds.Unlock()
	if err != nil {
		return err
	}
	return m.recordFor(ctx, deviceID, ev)
}

// liftLocked is Lift with holds held; it returns the event to record.
func (m *Monitor) liftLocked(ctx context.Context, deviceID string, by auditlog.Actor, reason string) (auditlog.Event, error) {
	v, ok := m.restricted.Load(deviceID)
	if !ok {
		return auditlog.Event{}, ErrNotHeld
	}
	r := v.(*restriction)
	r.mu.Lock()
	q := r.q
	r.mu.Unlock()
	adv := advisoryOf(q)
	switch {
	case adv == "":
		return auditlog.Event{}, ErrNotHeld
	case Kind(q.Kind) == KindAdvisory:
		return m.releaseLocked(ctx, deviceID, by, reason)
	}
	q.Advisory = ""
	if err := m.replaceHold(ctx, r, q); err != nil {
		return auditlog.Event{}, fmt.Errorf("lift hold until fixed of device %s: %w", deviceID, err)
	}
	m.cfg.Logger.Info("hold until fixed lifted; an alarm still holds the device", "device", deviceID, "advisory", adv, "kind", q.Kind)
	return auditlog.Event{Actor: by, Action: ActionRelease,
		Subject: auditlog.Subject{Device: deviceID}, Purpose: clipPurpose(reason),
		Detail: map[string]string{"kind": string(KindAdvisory), "advisory": adv, "still_held": q.Kind}}, nil
}

// releaseAlarm lifts an alarm's reason from a hold that also waits for a
// fix: the device stays held until fixed. holds must be held; it returns
// the event to record.
func (m *Monitor) releaseAlarm(ctx context.Context, r *restriction, q store.Quarantine, adv string, by auditlog.Actor, reason string) (auditlog.Event, error) {
	held := store.Quarantine{DeviceID: q.DeviceID, Kind: string(KindAdvisory), Stream: adv, Advisory: adv,
		Severity: Critical.String(), Since: q.Since}
	if err := m.replaceHold(ctx, r, held); err != nil {
		return auditlog.Event{}, fmt.Errorf("release device %s: %w", q.DeviceID, err)
	}
	m.resetAlarms(q.DeviceID)
	m.control(q.DeviceID)
	m.cfg.Logger.Info("alarm hold released; the device stays held until fixed", "device", q.DeviceID, "advisory", adv)
	return auditlog.Event{Actor: by, Action: ActionRelease,
		Subject: auditlog.Subject{Device: q.DeviceID, Stream: q.Stream}, Purpose: clipPurpose(reason),
		Detail: map[string]string{"kind": q.Kind, "refused": strconv.FormatInt(r.refused.Load(), 10), "still_held": string(KindAdvisory), "advisory": adv}}, nil
}

// replaceHold stores and installs a device's changed hold, still a
// quarantine. holds must be held.
func (m *Monitor) replaceHold(ctx context.Context, r *restriction, q store.Quarantine) error {
	if m.cfg.Store != nil {
		if err := m.cfg.Store.PutQuarantine(ctx, q); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.q = q
	r.mu.Unlock()
	m.holdChange(q.DeviceID)
	return nil
}

func clipPurpose(s string) string {
	if len(s) > auditlog.MaxPurposeLen {
		return s[:auditlog.MaxPurposeLen]
	}
	return s
}

// HoldReason says in plain words why a quarantined device's messages are
// refused and what ends the hold, by the kind of hold: the owner's
// release ends an alarm's quarantine, fixed firmware (or the owner's
// release) ends a hold until fixed, and a hold with both reasons needs
// both. It is "" for a device not quarantined.
func (m *Monitor) HoldReason(deviceID string) string {
	v, ok := m.restricted.Load(deviceID)
	if !ok || !v.(*restriction).quarantined.Load() {
		return ""
	}
	r := v.(*restriction)
	r.mu.Lock()
	q := r.q
	r.mu.Unlock()
	adv := advisoryOf(q)
	switch {
	case adv == "":
		return "the device is quarantined: its owner must release it before the hub accepts its readings"
	case Kind(q.Kind) == KindAdvisory:
		return "the device is on hold until a security flaw is fixed (advisory " + adv + "): the hub accepts its readings again once it reports firmware that fixes the flaw, or its owner ends the hold"
	}
	return "the device is quarantined for how it behaved and on hold until a security flaw is fixed (advisory " + adv +
		"): the hub accepts its readings again once its owner releases it and it reports firmware that fixes the flaw"
}
