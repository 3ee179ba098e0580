package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/monitor"
)

// Monitor is the abuse monitor as the pipeline uses it: it is told each
// reading's metadata, and asked whether a device is held back.
type Monitor interface {
	Admit(deviceID string) monitor.Verdict
	// HoldReason says why a quarantined device is held and what ends
	// the hold, in plain words.
	HoldReason(deviceID string) string
	Reading(r monitor.Reading)
}

// admit refuses a reading from a device the monitor holds back, before
// any other work: a quarantined device's readings are neither stored nor
// forwarded.
func (p *Pipeline) admit(deviceID, stream string) error {
	if p.opts.Monitor == nil {
		return nil
	}
	switch p.opts.Monitor.Admit(deviceID) {
	case monitor.Quarantined:
		detail := p.opts.Monitor.HoldReason(deviceID)
		if detail == "" { // released in between
			detail = "the device is quarantined"
		}
		return &RefusedError{DeviceID: deviceID, Stream: stream, Reason: ReasonQuarantined, Detail: detail}
	case monitor.Limited:
		return &RefusedError{DeviceID: deviceID, Stream: stream, Reason: ReasonRateLimited,
			Detail: "the device sends too fast and is rate-limited"}
	}
	return nil
}

// watch tells the monitor about a reading that passed the manifest: its
// size and the stream's declared profile (s, nil when the manifest does
// not declare it), never its values.
func (p *Pipeline) watch(e *catalog.Entry, s *manifest.Stream, deviceID, stream string, size int, off bool, at time.Time) {
	if p.opts.Monitor == nil {
		return
	}
	r := monitor.Reading{Device: deviceID, Type: e.Manifest.DeviceType, Stream: stream, Size: size, Off: off, At: at}
	if s != nil {
		r.PerMinute, r.MaxBytes = s.MaxPerMinute, s.MaxPayloadBytes
	}
	p.opts.Monitor.Reading(r)
}

// watchRefused tells the monitor about a refused reading: undeclared
// streams and fields count as such, anything else by its size against
// the stream's declared profile.
func (p *Pipeline) watchRefused(ctx context.Context, deviceID, stream string, size int, err error) {
	var re *RefusedError
	if p.opts.Monitor == nil || deviceID == "" || !errors.As(err, &re) {
		return
	}
	r := monitor.Reading{Device: deviceID, Stream: stream, Size: size}
	switch re.Reason {
	case ReasonBadStream, manifest.ViolUndeclaredStream, manifest.ViolUndeclaredField:
		// The device picks these names: they are counted, never kept.
		r.Undeclared, r.Stream = true, ""
	case ReasonNoManifest:
		return
	}
	if p.opts.Manifests != nil && !r.Undeclared {
		if e, err := p.opts.Manifests.ForDevice(ctx, deviceID); err == nil {
			r.Type = e.Manifest.DeviceType
			if s := e.Manifest.Stream(stream); s != nil {
				r.PerMinute, r.MaxBytes = s.MaxPerMinute, s.MaxPayloadBytes
			} else {
				r.Undeclared, r.Stream = true, ""
			}
		}
	}
	p.opts.Monitor.Reading(r)
}
