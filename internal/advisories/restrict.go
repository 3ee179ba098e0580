package advisories

import (
	"context"
	"fmt"
	"net/http"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
)

// Holder puts a device on hold until a flaw is fixed and lifts the hold:
// the abuse monitor, whose quarantine lets the device only receive its
// control topic (and report its firmware and update progress). It
// records holds and lifts in the transparency log itself. Lift ends the
// "until fixed" reason only: a device an alarm also quarantined stays
// held until its owner releases it.
type Holder interface {
	Restrict(ctx context.Context, deviceID, advisoryID string, by auditlog.Actor) error
	RestrictedFor(deviceID string) (advisoryID string, ok bool)
	Lift(ctx context.Context, deviceID string, by auditlog.Actor, reason string) error
}

// restrictOffer is the offer a finding adds when no signed fix is ready.
const restrictOffer = "Until it is fixed, you can put the device on hold: it then only gets messages from the hub, and the hub keeps nothing it sends."

// Errors of a restriction.
var (
	// ErrNotAffected refuses to restrict a device an advisory does not concern.
	ErrNotAffected = &problem.Kind{Status: http.StatusConflict, Type: "not-affected",
		Text: "advisories: the advisory does not concern this device"}
	// ErrNoHolder means the hub cannot hold devices (no abuse monitor).
	ErrNoHolder = &problem.Kind{Status: http.StatusServiceUnavailable, Type: "no-holder",
		Text: "advisories: this hub cannot put devices on hold"}
)

// Restrict puts a device on hold until the flaw advisoryID is fixed, on
// its owner's word (the actor comes from ctx). The device must be among
// the advisory's open findings.
func (s *Service) Restrict(ctx context.Context, deviceID, advisoryID string) error {
	if s.opts.Holder == nil {
		return ErrNoHolder
	}
	fs, err := s.DeviceFindings(ctx, deviceID)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.Advisory.ID == advisoryID {
			return s.opts.Holder.Restrict(ctx, deviceID, advisoryID, auditlog.ActorFrom(ctx))
		}
	}
	return ErrNotAffected.Errorf("advisory %s does not concern device %s (or it is fixed)", advisoryID, deviceID)
}

// LiftIfFixed ends a device's hold until fixed once the advisory no longer
// concerns it: its reported firmware is fixed or not affected, or the
// advisory was withdrawn. The hub calls it when a device reports new
// firmware. It reports whether it lifted the hold.
func (s *Service) LiftIfFixed(ctx context.Context, deviceID string) (bool, error) {
	if s.opts.Holder == nil {
		return false, nil
	}
	adv, ok := s.opts.Holder.RestrictedFor(deviceID)
	if !ok {
		return false, nil
	}
	fs, err := s.DeviceFindings(ctx, deviceID)
	if err != nil {
		return false, err
	}
	for _, f := range fs {
		if f.Advisory.ID == adv {
			return false, nil // still affected, or its version is unknown
		}
	}
	reason := fmt.Sprintf("the firmware the device reports fixes advisory %s", adv)
	if err := s.opts.Holder.Lift(ctx, deviceID, auditlog.Actor{Kind: auditlog.ActorHub}, reason); err != nil {
		return false, fmt.Errorf("lift hold of device %s: %w", deviceID, err)
	}
	s.opts.Logger.InfoContext(ctx, "hold until fixed lifted: the flaw is fixed", "device", deviceID, "advisory", adv)
	return true, nil
}
