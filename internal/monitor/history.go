package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// History keeps the monitor's counts per device and window, so the owner
// can see recent behaviour after the window (and a restart) has passed.
// Only counts and sizes are kept, never reading values.
type History interface {
	AddMonitorWindows(ctx context.Context, ws []store.MonitorWindow) error
	MonitorWindows(ctx context.Context, deviceID string, since time.Time) ([]store.MonitorWindow, error)
	PurgeMonitorWindows(ctx context.Context, before time.Time) (int64, error)
}

// Now is the monitor's clock, which the stored windows' times follow.
func (m *Monitor) Now() time.Time { return m.cfg.Now() }

// Keep is how long the monitor's window counts are kept.
func (m *Monitor) Keep() time.Duration { return m.cfg.Keep }

// ErrNoHistory is returned by Recent when the monitor keeps no history.
var ErrNoHistory = errors.New("the monitor keeps no history")

// Recent returns the device's stored windows that started at or after
// since, oldest first. The window still open is not among them.
func (m *Monitor) Recent(ctx context.Context, deviceID string, since time.Time) ([]store.MonitorWindow, error) {
	if m.cfg.History == nil {
		return nil, ErrNoHistory
	}
	ws, err := m.cfg.History.MonitorWindows(ctx, deviceID, since)
	if err != nil {
		return nil, fmt.Errorf("recent windows of device %s: %w", deviceID, err)
	}
	return ws, nil
}

// maxPending bounds the windows waiting to be written: a store that stops
// answering must not grow the monitor without limit.
const maxPending = 200_000

// purgeEvery is how often the windows older than Config.Keep are deleted.
const purgeEvery = time.Hour

// pending collects closed windows until Run writes them.
type pending struct {
	mu      sync.Mutex
	ws      []store.MonitorWindow
	dropped int64
	purged  time.Time // the last purge
}

// keepWindow keeps d's counts of the window idx, which is closing, if
// anything happened in it. The caller holds d's shard lock.
func (m *Monitor) keepWindow(d *deviceState, idx int64) {
	if m.cfg.History == nil {
		return
	}
	w := store.MonitorWindow{
		Refused:      int64(d.undeclared),
		WrongSecrets: int64(d.ev[evWrongSecrets].n),
		Probes:       int64(d.ev[evProbe].n),
		Connects:     int64(d.ev[evReconnects].n),
	}
	for i := range d.nStreams() {
		s := d.streamAt(i)
		w.Readings += int64(s.count)
		w.Bytes += int64(s.bytes)
		w.MaxBytes = max(w.MaxBytes, int64(s.maxSize))
	}
	// Publishes held back by a quarantine or rate limit are counted by
	// the hold itself (Admit touches no device state); the window gets
	// the difference since the last one.
	if v, ok := m.restricted.Load(d.id); ok {
		n := v.(*restriction).refused.Load()
		if n >= d.heldSeen {
			w.Refused += n - d.heldSeen
		}
		d.heldSeen = n
	} else {
		d.heldSeen = 0
	}
	if w == (store.MonitorWindow{}) {
		return
	}
	w.DeviceID, w.Start, w.Length = d.id, time.Unix(0, idx*m.win).UTC(), m.cfg.Window
	m.pending.mu.Lock()
	if len(m.pending.ws) < maxPending {
		m.pending.ws = append(m.pending.ws, w)
	} else {
		m.pending.dropped++
	}
	m.pending.mu.Unlock()
}

// Flush stores the windows closed so far and, once an hour, deletes
// those older than Config.Keep. Run calls it after each Tick; tests that
// tick by hand call it themselves.
func (m *Monitor) Flush(ctx context.Context) {
	if m.cfg.History == nil {
		return
	}
	m.pending.mu.Lock()
	ws := m.pending.ws
	m.pending.ws = nil
	dropped := m.pending.dropped
	m.pending.dropped = 0
	m.pending.mu.Unlock()
	if dropped > 0 {
		m.cfg.Logger.Warn("monitor windows dropped: the store did not keep up", "windows", dropped)
	}
	if err := m.cfg.History.AddMonitorWindows(ctx, ws); err != nil {
		m.cfg.Logger.Error("store monitor windows", "windows", len(ws), "err", err)
	}
	now := m.cfg.Now()
	if now.Sub(m.pending.purged) < purgeEvery {
		return
	}
	m.pending.purged = now
	n, err := m.cfg.History.PurgeMonitorWindows(ctx, now.Add(-m.cfg.Keep))
	if err != nil {
		m.cfg.Logger.Error("purge monitor windows", "err", err)
		return
	}
	if n > 0 {
		m.cfg.Logger.Info("monitor windows purged", "windows", n, "older_than", m.cfg.Keep.String())
	}
}
