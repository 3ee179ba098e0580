// Package firmware keeps what devices say about themselves: the firmware
// (and optional hardware) version they run, reported on their reserved
// state topic candor/<id>/$state, and the history of changes.
//
// The state message describes the device, not the people around it, so it
// is not personal data and the manifest's stream rules (consent,
// retention, sealing) do not apply to it. It is parsed strictly instead:
// a small JSON object with a version string made of a narrow character
// set, so nothing else can travel on this topic. docs/DEVICES.md documents
// it for device makers.
//
// Versions serve clause 2C of the IoT Good Practice paper (secure updates,
// long lifetimes) and clause 3 (matching vulnerability advisories to the
// firmware a device really runs).
package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// StateTopicSuffix is the last level of a device's state topic. The $ keeps
// it apart from stream names, which cannot start with one.
const StateTopicSuffix = "$state"

// StateTopic is where a device reports its versions.
func StateTopic(deviceID string) string { return "candor/" + deviceID + "/" + StateTopicSuffix }

// MaxStateBytes bounds a state message. The two version strings fit many
// times over; a cap keeps the topic from carrying anything else.
const MaxStateBytes = 512

// MaxVersionLen bounds one version string.
const MaxVersionLen = 64

// ActionFirmwareChange is the transparency-log action of a version change.
const ActionFirmwareChange = "device.firmware.change"

// ErrInvalid means a state message was refused.
var ErrInvalid = &problem.Kind{Status: http.StatusUnprocessableEntity, Type: "invalid-device-state", Text: "firmware: invalid state message"}

// State is what a device reports about itself.
type State struct {
	Firmware string `json:"firmware"`
	Hardware string `json:"hardware,omitempty"`
}

// ParseState reads a state message: a JSON object with "firmware" (required)
// and "hardware" (optional), each 1–64 characters of letters, digits and
// . _ + ~ -. Any other key, a duplicate key, or trailing data is refused.
// Errors name the JSON path, never the value.
func ParseState(payload []byte) (State, error) {
	if len(payload) > MaxStateBytes {
		return State{}, ErrInvalid.Errorf("$: %d bytes; a state message may be at most %d", len(payload), MaxStateBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return State{}, ErrInvalid.Errorf("$: a state message must be a JSON object")
	}
	var st State
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return State{}, ErrInvalid.Errorf("$: not valid JSON")
		}
		key, _ := tok.(string)
		if key != "firmware" && key != "hardware" {
			return State{}, ErrInvalid.Errorf("$: unknown key (only firmware and hardware are allowed)")
		}
		if seen[key] {
			return State{}, ErrInvalid.Errorf("$.%s: given twice", key)
		}
		seen[key] = true
		var v string
		if err := dec.Decode(&v); err != nil {
			return State{}, ErrInvalid.Errorf("$.%s: must be a string", key)
		}
		if err := checkVersion(v); err != nil {
			return State{}, ErrInvalid.Errorf("$.%s: %w", key, err)
		}
		if key == "firmware" {
			st.Firmware = v
		} else {
			st.Hardware = v
		}
	}
	if _, err := dec.Token(); err != nil {
		return State{}, ErrInvalid.Errorf("$: not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return State{}, ErrInvalid.Errorf("$: data after the JSON object")
	}
	if st.Firmware == "" {
		return State{}, ErrInvalid.Errorf("$.firmware: required")
	}
	return st, nil
}

var errVersion = errors.New("must be 1 to 64 characters of letters, digits and . _ + ~ -")

func checkVersion(v string) error {
	if len(v) == 0 || len(v) > MaxVersionLen {
		return errVersion
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '+' || c == '~' || c == '-'
		if !ok {
			return errVersion
		}
	}
	return nil
}

// Store is the part of store.Store the service uses.
type Store interface {
	RecordFirmware(ctx context.Context, r store.FirmwareReport) (bool, error)
	FirmwareHistory(ctx context.Context, deviceID string) ([]store.FirmwareReport, error)
}

// Recorder appends to the transparency log.
type Recorder interface {
	Record(ctx context.Context, ev auditlog.Event) error
}

// Service records the versions devices report.
type Service struct {
	st  Store
	log Recorder
	lg  *slog.Logger
	now func() time.Time
}

// New returns a Service. rec may be nil (nothing is recorded), as may
// logger; now defaults to time.Now.
func New(st Store, rec Recorder, logger *slog.Logger, now func() time.Time) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, log: rec, lg: logger, now: now}
}

// ReportState parses a device's state message and keeps its versions. A
// change of version is recorded in the transparency log (versions are
// about the device, so they may appear there); a repeat changes nothing.
func (s *Service) ReportState(ctx context.Context, deviceID string, payload []byte) error {
	st, err := ParseState(payload)
	if err != nil {
		return err
	}
	at := s.now().UTC()
	changed, err := s.st.RecordFirmware(ctx, store.FirmwareReport{DeviceID: deviceID, Firmware: st.Firmware, Hardware: st.Hardware, ReportedAt: at})
	if err != nil {
		return fmt.Errorf("record firmware of %s: %w", deviceID, err)
	}
	if !changed {
		return nil
	}
	s.lg.InfoContext(ctx, "device firmware changed", "device", deviceID, "firmware", st.Firmware)
	if s.log == nil {
		return nil
	}
	detail := map[string]string{"firmware": st.Firmware}
	if st.Hardware != "" {
		detail["hardware"] = st.Hardware
	}
	if err := s.log.Record(ctx, auditlog.Event{Time: at, Action: ActionFirmwareChange, Actor: auditlog.Actor{Kind: auditlog.ActorDevice, ID: deviceID},
		Subject: auditlog.Subject{Device: deviceID}, Detail: detail}); err != nil {
		return fmt.Errorf("record firmware change of %s: %w", deviceID, err)
	}
	return nil
}

// History lists a device's versions, newest first.
func (s *Service) History(ctx context.Context, deviceID string) ([]store.FirmwareReport, error) {
	return s.st.FirmwareHistory(ctx, deviceID)
}

// InstalledVersion is the firmware version the device last reported, or
// "" when it never did (so nothing can be offered or matched to it).
func (s *Service) InstalledVersion(ctx context.Context, deviceID string) (string, error) {
	h, err := s.st.FirmwareHistory(ctx, deviceID)
	if err != nil || len(h) == 0 {
		return "", err
	}
	return h[0].Firmware, nil
}
