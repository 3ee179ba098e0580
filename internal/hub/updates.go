package hub

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/updates"
)

// updateCheckInterval is how often the hub refreshes makers' update
// repositories and decides what each device is offered. TUF timestamps
// typically live a day, so a few checks a day notice a frozen repository.
const updateCheckInterval = 6 * time.Hour

// openUpdates builds the updates service, after the broker (offers are
// published through it, by controls) and before the HTTP server and MQTT serve (the
// file endpoint and progress reports need the service).
func (h *Hub) openUpdates(context.Context) (err error) {
	h.updKick = make(chan string, 64)
	h.upd, err = updates.New(updates.Config{
		Dir:      filepath.Join(h.cfg.DataDir, "updates"),
		BaseURL:  h.URL,
		Versions: h.firmware, // what each device last reported on its $state topic
		Recorder: h.rec,
		Announce: h.controls, // offers are sent as control messages, not retained by the broker
		Stages:   h.st,       // a restart keeps each device's update stage
		Logger:   h.log,
	})
	return err
}

// startUpdateChecks runs the schedule once the HTTP server has its
// address (the file URLs offered to devices start with it) and devices
// can connect.
func (h *Hub) startUpdateChecks(context.Context) error {
	h.updJob.run(h.onLeader(func(ctx context.Context) {
		t := time.NewTicker(updateCheckInterval)
		defer t.Stop()
		h.checkUpdates(ctx, "")
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.checkUpdates(ctx, "")
			case id := <-h.updKick:
				h.checkUpdates(ctx, id)
			}
		}
	}))
	return nil
}

// kickUpdates asks the schedule to check one device now: it reported new
// firmware, so what it should be offered may have changed. A full queue
// drops the ask; the schedule checks every device anyway.
func (h *Hub) kickUpdates(deviceID string) {
	if h.updKick == nil {
		return
	}
	select {
	case h.updKick <- deviceID:
	default:
	}
}

// checkUpdates names each manifest's repository to the service (manifests
// change while the hub runs) and checks every device that has one, or
// only the device named. Refusals are logged and recorded by the service
// itself.
func (h *Hub) checkUpdates(ctx context.Context, only string) {
	has := map[string]bool{}
	for _, typ := range h.cat.Types() {
		e, err := h.cat.Current(typ)
		if err != nil || e.Manifest.Updates == nil {
			continue
		}
		u := e.Manifest.Updates
		if err := h.upd.SetSource(typ, updates.Source{MetadataURL: u.MetadataURL, TargetPrefix: u.TargetPrefix,
			TrustedRoot: u.TrustedRoot, RootSHA256: u.TrustedRootSHA256}); err != nil {
			h.log.Warn("update repository", "type", typ, "err", err)
			continue
		}
		has[typ] = true
	}
	if src := h.demoUpdates.Load(); src != nil && !has["thermostat"] {
		if err := h.upd.SetSource("thermostat", *src); err != nil {
			h.log.Warn("demo update repository", "err", err)
		} else {
			has["thermostat"] = true
		}
	}
	if len(has) == 0 {
		return
	}
	devices, err := h.st.AllDevices(ctx)
	if err != nil {
		h.log.Error("update check: list devices", "err", err)
		return
	}
	for _, d := range devices {
		if !has[d.Type] || !d.RevokedAt.IsZero() || ctx.Err() != nil || only != "" && d.ID != only {
			continue
		}
		_, _ = h.upd.Check(ctx, updates.DeviceOf(d))
	}
}

// updateProgress takes a device's report on its update topic.
func (h *Hub) updateProgress(ctx context.Context, deviceID string, payload []byte) error {
	d, err := h.st.Device(ctx, deviceID)
	if err != nil {
		return err
	}
	return h.upd.HandleProgress(ctx, updates.DeviceOf(d), payload)
}

// deviceAuth lets a device fetch its update file with its own credential.
func (h *Hub) deviceAuth() updates.Authenticator {
	return updates.AuthFunc(func(ctx context.Context, addr, id, secret string) error {
		_, err := h.id.AuthenticateDevice(ctx, identity.Origin{Addr: addr}, id, secret)
		if errors.Is(err, identity.ErrTooManyAttempts) {
			return fmt.Errorf("%w: %w", updates.ErrThrottled, err)
		}
		return err
	})
}
