package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// stormWorkers is how many devices connect at once in the reconnect storm:
// a fleet whose devices all retry after an outage, each with its own
// back-off, arrives a few hundred at a time rather than all in one
// instant.
const stormWorkers = 200

// StormResult is the reconnect storm: devices created, the hub restarted
// on the same data, and every device connecting again.
type StormResult struct {
	Devices int `json:"devices"`
	// DevicesAddedPerSec is their creation through the API, createWorkers
	// at a time.
	DevicesAddedPerSec float64 `json:"devices_added_per_sec"`
	// RestartSeconds is from asking the hub to stop to the new process
	// being ready (its banner printed, every listener up).
	RestartSeconds float64 `json:"restart_seconds"`
	// ConnectSeconds is from the new hub being ready to the last device's
	// CONNACK; every device's credential is checked in full (the hub's
	// cache of verified secrets does not survive a restart).
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectsPerSec float64 `json:"connects_per_sec"`
	Connected      int     `json:"connected"`
	FirstError     string  `json:"first_error,omitempty"`
}

// runStorm creates o.Storm devices on h, restarts the hub on the same data
// directory and connects them all again, stormWorkers at a time, each
// staying connected until all are in. It returns the restarted hub, which
// the caller stops, or nil if the restart failed (the old one is then
// stopped or killed).
func runStorm(ctx context.Context, o Options, h *hubProc, extra []string) (*StormResult, *hubProc, error) {
	r := &StormResult{Devices: o.Storm}
	o.progress("Candor: reconnect storm, creating %d devices", o.Storm)
	t0 := time.Now()
	devs, err := h.addDevicesNamed(ctx, o.Storm, "bench-storm", createWorkers)
	if err != nil {
		return r, h, err
	}
	r.DevicesAddedPerSec = float64(len(devs)) / time.Since(t0).Seconds()

	o.progress("Candor: reconnect storm, restarting the hub")
	t1 := time.Now()
	if err := h.stop(60 * time.Second); err != nil {
		return r, nil, fmt.Errorf("stop the hub before the storm: %w", err)
	}
	h2, err := startHub(ctx, o.HubArgv, o.HubEnv, h.dir, extra)
	if err != nil {
		return r, nil, fmt.Errorf("restart the hub for the storm: %w", err)
	}
	ready := time.Now()
	r.RestartSeconds = ready.Sub(t1).Seconds()

	o.progress("Candor: reconnect storm, %d devices connecting, %d at a time", len(devs), stormWorkers)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conns := make([]*Conn, len(devs))
	var (
		mu    sync.Mutex
		first error
		last  time.Time
	)
	_ = parallel(cctx, len(devs), stormWorkers, func(i int) error {
		d := devs[i]
		c, err := Dial(cctx, h2.mqttAddr, ConnectOptions{ClientID: d.ID, Username: d.ID, Password: d.Secret,
			KeepAlive: keepAlive, Timeout: time.Minute, LocalIP: idleSource(h2.mqttAddr, i), Small: true})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if first == nil {
				first = err
			}
			return nil
		}
		conns[i] = c
		last = time.Now()
		return nil
	})
	for _, c := range conns {
		if c != nil {
			r.Connected++
		}
	}
	if r.Connected > 0 {
		r.ConnectSeconds = last.Sub(ready).Seconds()
		r.ConnectsPerSec = float64(r.Connected) / r.ConnectSeconds
	}
	if first != nil {
		r.FirstError = oneLine(first)
	} else if r.Connected < len(devs) {
		r.FirstError = fmt.Sprintf("%d devices not connected within 2m", len(devs)-r.Connected)
	}
	_ = parallel(context.Background(), len(conns), 64, func(i int) error {
		if conns[i] != nil {
			_ = conns[i].Disconnect()
		}
		return nil
	})
	return r, h2, nil
}
