package hub

import "context"

// stateReports takes each device's $state message: the firmware service
// keeps the version, then a device on hold until a flaw is fixed is let
// go if the version it now reports fixes it, and the update checks look
// at the device again.
type stateReports struct{ h *Hub }

func (s stateReports) ReportState(ctx context.Context, deviceID string, payload []byte) error {
	if err := s.h.firmware.ReportState(ctx, deviceID, payload); err != nil {
		return err
	}
	if _, err := s.h.advisories.LiftIfFixed(ctx, deviceID); err != nil {
		s.h.log.Error("lift hold after a firmware report", "device", deviceID, "err", err)
	}
	s.h.kickUpdates(deviceID)
	return nil
}
