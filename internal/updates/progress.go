package updates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// Topics. A device that is offline when the hub decides gets the offer
// when it subscribes again: the hub sends it, marked retained, from the
// service's state (Service.Offer), not from the broker's retained store.
// That copy goes at QoS 0, as every control message sent on SUBSCRIBE
// (internal/broker/controls.go): a persistent session that subscribed
// once and lost the connection just after does not get it resent from
// the session, only at its next SUBSCRIBE or the offer's next change.
// The offer ends (an empty message) once the device reports installed or
// failed, or the owner postpones. Progress is not retained: the hub keeps
// the latest stage.
const (
	OfferStream    = "$update"          // the offer: candor/<id>/control/$update
	ProgressSuffix = "$update/progress" // device → hub: candor/<id>/$update/progress
)

// OfferTopic is where the hub offers a device its update.
func OfferTopic(deviceID string) string { return "candor/" + deviceID + "/control/" + OfferStream }

// ProgressTopic is where a device reports its progress.
func ProgressTopic(deviceID string) string { return "candor/" + deviceID + "/" + ProgressSuffix }

// Stage is where a device is with an update, as it reports it.
type Stage string

// The stages a device reports.
const (
	StageDownloading Stage = "downloading"
	StageVerified    Stage = "verified"
	StageInstalling  Stage = "installing"
	StageInstalled   Stage = "installed"
	StageFailed      Stage = "failed"
)

// Progress is one progress report from a device.
type Progress struct {
	Version string `json:"version"` // the version the report is about
	Stage   Stage  `json:"stage"`
	// Reason says why an update failed, as a short code such as
	// "hash-mismatch" or "no-space": a code, not free text, so the log
	// never carries what a device chose to write.
	Reason string `json:"reason,omitempty"`
}

// MaxProgressSize bounds a progress message.
const MaxProgressSize = 512

// ErrBadProgress is wrapped by every progress parsing error.
var ErrBadProgress = errors.New("bad update progress message")

var reasonRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// ParseProgress reads a device's progress message strictly: one JSON
// object with exactly the known members, a known stage, a valid version,
// and a reason code if and only if the stage is failed.
func ParseProgress(data []byte) (Progress, error) {
	bad := func(format string, args ...any) (Progress, error) {
		return Progress{}, fmt.Errorf("%w: %s", ErrBadProgress, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxProgressSize {
		return bad("%d bytes, at most %d", len(data), MaxProgressSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Progress
	if err := dec.Decode(&p); err != nil {
		return bad("not a progress object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("data after the JSON object")
	}
	if !validVersion(p.Version) {
		return bad("version %q is not a version such as 1.2.0", p.Version)
	}
	switch p.Stage {
	case StageDownloading, StageVerified, StageInstalling, StageInstalled:
		if p.Reason != "" {
			return bad("reason is only for stage %q", StageFailed)
		}
	case StageFailed:
		if !reasonRE.MatchString(p.Reason) {
			return bad("stage failed needs a reason code of a-z, 0-9 and - (at most 64), such as hash-mismatch")
		}
	default:
		return bad("stage %q is not downloading, verified, installing, installed or failed", p.Stage)
	}
	return p, nil
}
