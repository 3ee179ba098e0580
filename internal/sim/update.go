package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// The update protocol as a device sees it (docs/DEVICES.md): the hub
// offers an image on candor/<id>/control/$update (sent marked retained
// when the device subscribes while the offer stands), the device
// downloads it with its own credential, checks its length and SHA-256,
// and reports each stage on candor/<id>/$update/progress. A simulated
// device implements it like a real one would, so the demo shows a signed
// fix installing end to end.
const (
	updateStream   = "$update"
	progressSuffix = "/$update/progress"
	// maxImage bounds what a simulated device downloads.
	maxImage = 64 << 20
	// installDelay and installStep are the simulated time before a
	// device starts on an offer and between its stages.
	installDelay = time.Minute
	installStep  = 5 * time.Second
)

// scaled is a simulated duration in real time.
func (s *Simulator) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

// offer is the part of the hub's offer a device needs. A device that can
// check TUF itself also reads "targets"; the simulator trusts the hub.
type offer struct {
	Version string `json:"version"`
	URL     string `json:"url"`
	Length  int64  `json:"length"`
	SHA256  string `json:"sha256"`
}

// firmware is the version the device runs now: its kind's, until an
// update installs another.
func (d *device) firmware() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fw == "" {
		return d.kind.Firmware
	}
	return d.fw
}

// onUpdate takes an offer. An empty payload is the hub clearing it; an
// offer of the version already running is one the device has done. The
// work runs on its own goroutine: paho's callback must not block.
func (d *device) onUpdate(payload []byte) {
	if len(payload) == 0 {
		return
	}
	var o offer
	if err := json.Unmarshal(payload, &o); err != nil || o.Version == "" || o.URL == "" || o.Length <= 0 || o.Length > maxImage || len(o.SHA256) != 64 {
		d.sim.log.Warn("malformed update offer ignored", "device", d.id, "bytes", len(payload))
		return
	}
	if o.Version == d.firmware() {
		return
	}
	d.mu.Lock()
	cm, ctx := d.cm, d.ctx
	busy := d.updating
	d.updating = true
	d.mu.Unlock()
	if busy || cm == nil || ctx == nil {
		d.mu.Lock()
		d.updating = busy
		d.mu.Unlock()
		return
	}
	d.prep.Add(1)
	go func() {
		defer d.prep.Done()
		defer func() {
			d.mu.Lock()
			d.updating = false
			d.mu.Unlock()
		}()
		d.install(ctx, cm, o)
	}()
}

// install downloads, checks and "installs" the image, reporting each stage.
func (d *device) install(ctx context.Context, cm *autopaho.ConnectionManager, o offer) {
	// A real device waits for a quiet moment before it installs; the
	// wait also leaves the offer on the pages long enough to be seen.
	if !sleep(ctx, d.sim.scaled(installDelay)) {
		return
	}
	step := max(d.sim.scaled(installStep), 50*time.Millisecond)
	d.progress(ctx, cm, o.Version, "downloading", "")
	data, err := d.download(ctx, o)
	if err != nil {
		d.fail(fmt.Errorf("download update %s: %w", o.Version, err))
		d.progress(ctx, cm, o.Version, "failed", "download-failed")
		return
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != o.Length || hex.EncodeToString(sum[:]) != o.SHA256 {
		d.progress(ctx, cm, o.Version, "failed", "hash-mismatch")
		return
	}
	d.progress(ctx, cm, o.Version, "verified", "")
	if !sleep(ctx, step) {
		return
	}
	d.progress(ctx, cm, o.Version, "installing", "")
	if !sleep(ctx, step) {
		return
	}
	d.mu.Lock()
	d.fw = o.Version
	d.mu.Unlock()
	d.sim.log.Info("update installed", "device", d.id, "version", o.Version)
	d.progress(ctx, cm, o.Version, "installed", "")
	d.reportState(ctx, cm)
}

// download fetches the image with the device's own credential.
func (d *device) download(ctx context.Context, o offer) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(d.id, d.secret)
	resp, err := d.sim.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", o.URL, resp.Status)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(resp.Body, o.Length+1)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (d *device) progress(ctx context.Context, cm *autopaho.ConnectionManager, version, stage, reason string) {
	body, _ := json.Marshal(struct {
		Version string `json:"version"`
		Stage   string `json:"stage"`
		Reason  string `json:"reason,omitempty"`
	}{version, stage, reason})
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: TopicRoot + "/" + d.id + progressSuffix, QoS: 1, Payload: body}); err != nil && ctx.Err() == nil {
		d.fail(fmt.Errorf("publish update progress: %w", err))
	}
}
