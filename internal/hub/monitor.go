package hub

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/candor-iot/candor/internal/monitor"
	"github.com/candor-iot/candor/internal/signkey"
)

// alertKeyName is the key that signs alarm webhooks; its public half is
// alerts/<name>.pub.pem in the data directory.
const alertKeyName = "alert-signing-key"

// QuarantineStream is the control-topic level on which a held device is
// told so: candor/<id>/control/quarantine-status. The hyphen keeps it
// apart from every stream name.
const QuarantineStream = "quarantine-status"

// openMonitor builds the abuse monitor, restores the holds kept in the
// store, and starts its goroutine. It comes before ingest and the broker,
// which report to it, and stops after them.
func (h *Hub) openMonitor(ctx context.Context) error {
	policy, err := parsePolicy(h.cfg.MonitorActions)
	if err != nil {
		return err
	}
	var d monitor.Dispatch
	d.Prefs = h.st
	if h.cfg.AlertWebhook != "" {
		key, err := signkey.LoadOrCreate(filepath.Join(h.cfg.DataDir, "alerts"), alertKeyName)
		if err != nil {
			return fmt.Errorf("alert signing key: %w", err)
		}
		d.Webhook = &monitor.Webhook{URL: h.cfg.AlertWebhook, Key: key}
	}
	if h.cfg.AlertSMTPAddr != "" {
		d.Mail = &monitor.Mailer{Addr: h.cfg.AlertSMTPAddr, From: h.cfg.AlertMailFrom}
	}
	mcfg := monitor.Config{
		Window:  h.cfg.MonitorWindow,
		Policy:  policy,
		Log:     h.rec,
		Store:   h.st,
		History: h.st,
		Actions: h.st,
		Keep:    h.cfg.MonitorKeep,
		Devices: h.st,
		Revoker: h.id,
		Control: h.publishHold,
		Logger:  h.log.With("component", "monitor"),
	}
	if d.Webhook != nil || d.Mail != nil {
		mcfg.Notifier = &d
	}
	if h.cfg.Demo && h.cfg.DemoSpeed > 1 {
		// Sped-up demo devices send that many times their declared rate
		// by design; without this the demo would quarantine itself.
		mcfg.RateFactor = 2 * float64(h.cfg.DemoSpeed)
		mcfg.CriticalFactor = 10 * float64(h.cfg.DemoSpeed)
	}
	h.mon = monitor.New(mcfg)
	if err := h.mon.Load(ctx); err != nil {
		return err
	}
	h.monJob.run(h.mon.Run)
	return nil
}

// publishHold tells the device a change of its hold. Before the broker
// exists (restoring holds at start) there is nobody to tell: a device
// learns its hold when it subscribes (controls.Current). controls.held
// reads the hold at the moment it publishes, so two changes that cross
// still leave the newest.
func (h *Hub) publishHold(deviceID string) {
	if h.br == nil {
		return
	}
	h.controls.held(deviceID)
}

// parsePolicy reads --monitor-actions (validated by config).
func parsePolicy(s string) (monitor.Policy, error) {
	p := monitor.DefaultPolicy()
	for item := range strings.SplitSeq(s, ",") {
		sevS, actS, _ := strings.Cut(strings.TrimSpace(item), "=")
		sev, err := monitor.ParseSeverity(sevS)
		if err != nil {
			return nil, fmt.Errorf("--monitor-actions: %w", err)
		}
		act, err := monitor.ParseAction(actS)
		if err != nil {
			return nil, fmt.Errorf("--monitor-actions: %w", err)
		}
		p[sev] = act
	}
	return p, nil
}
