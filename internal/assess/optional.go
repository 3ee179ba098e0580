package assess

import (
	"context"
	"time"

	"github.com/candor-iot/candor/internal/store"
)

// The interfaces below are the parts of a hub the audit reads when the hub
// has them. Each is optional: nil means the part is not on this hub, and
// its check reports "not available", never a pass.

// SupportStatus tells whether a device's maker still supports it.
type SupportStatus interface {
	// SupportEnded reports the end of the device's security support and
	// whether that date has passed (ok is false when nothing is known).
	SupportEnded(ctx context.Context, d store.Device) (until time.Time, ended, ok bool, err error)
}

// OpenAdvisories lists the advisories that affect a device and are not
// yet fixed on it.
type OpenAdvisories interface {
	OpenAdvisories(ctx context.Context, d store.Device) ([]string, error)
}

// Present, when an optional part implements it, says whether the part has
// anything to check now: a hub that can refresh advisory feeds but has no
// feed, or can check update repositories but no manifest names one, says
// "not available" for that check rather than a pass.
type Present interface {
	Present() bool
}

// present tells whether an optional part is on this hub and has something
// to check.
func present(part any) bool {
	if part == nil {
		return false
	}
	if p, ok := part.(Present); ok {
		return p.Present()
	}
	return true
}

// AdvisoryFeeds lists advisory feeds not refreshed in time.
type AdvisoryFeeds interface {
	StaleFeeds(ctx context.Context) ([]StaleFeed, error)
}

// StaleFeed is an advisory feed that was not refreshed in time.
type StaleFeed struct {
	Name          string
	LastRefreshed time.Time // zero: never
}

// UpdateMetadata lists signed update metadata past its expiry.
type UpdateMetadata interface {
	ExpiredMetadata(ctx context.Context) ([]ExpiredMetadata, error)
}

// ExpiredMetadata is one expired role of one update repository.
type ExpiredMetadata struct {
	Repository string
	Role       string
	Expired    time.Time
}

// Quarantined lists devices the abuse monitoring holds in quarantine.
type Quarantined interface {
	Quarantined(ctx context.Context) ([]Quarantine, error)
}

// Quarantine is one device held in quarantine.
type Quarantine struct {
	DeviceID string
	Reason   string // a detector name, never message contents
	Stream   string // the stream concerned, if any
	// Severity is the monitor's severity of the alarm that put the hold
	// on: "critical", "warning" or "info".
	Severity string
	// Observed and Limit are the detector's numbers (Limit 0: none).
	Observed, Limit float64
	// RateLimited marks the lighter hold: only publishes above a rate
	// are refused.
	RateLimited bool
	Since       time.Time
	// Advisory is the advisory a hold until fixed waits for: the owner's
	// protective choice while a known flaw has no fix installed. Reason
	// is "advisory" when that is the hold's only reason.
	Advisory string
}

// SecondFactors tells whether an account has a second login factor.
type SecondFactors interface {
	HasSecondFactor(ctx context.Context, accountID string) (bool, error)
}
