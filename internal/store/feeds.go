package store

import (
	"context"
	"time"
)

// AdvisoryFeed is an HTTPS source of advisories the hub refreshes: a
// maker's CSAF provider-metadata.json or an OSV feed, named by the
// operator or by a manifest.
type AdvisoryFeed struct {
	URL    string // the key: the feed's https URL
	Kind   string // "csaf" or "osv"
	Origin string // "operator", or "manifest:<device type>" for a feed a manifest names
	// AddedAt is when the hub first knew the feed; a feed that never
	// refreshed is stale counted from here.
	AddedAt     time.Time
	LastAttempt time.Time // zero before the first refresh
	LastSuccess time.Time // zero until a refresh read the feed's index
	LastError   string    // why the last refresh failed, or which documents it refused
	Documents   int       // documents the last successful refresh read
	// Fingerprint is the OpenPGP key fingerprint the operator pinned for
	// a CSAF feed ("" when none): only that key may sign its documents.
	Fingerprint string
	// UnsignedAllowed lets a CSAF feed's documents in without an OpenPGP
	// signature; the operator's explicit choice, off by default.
	UnsignedAllowed bool
	// Signatures says how the last refresh checked OpenPGP signatures, in
	// plain words ("" before the first refresh and for OSV feeds).
	Signatures string
}

// UpdateStage is how far one device got with its latest update, kept so a
// restart of the hub does not forget an offer or an install in progress.
type UpdateStage struct {
	DeviceID  string
	Version   string // the offered version ("" when none waits)
	SHA256    string // the image's hash, to recognise it after a restart
	Stage     string
	Reason    string // the hub's refusal reason code
	Plain     string // refusal or failure in plain words
	FailCode  string // the device's own failure code
	UpdatedAt time.Time
}

// FeedStore keeps the advisory feeds and each device's update stage.
type FeedStore interface {
	// PutAdvisoryFeed adds a feed or replaces the one with its URL.
	PutAdvisoryFeed(ctx context.Context, f AdvisoryFeed) error
	// AdvisoryFeeds lists every feed by URL.
	AdvisoryFeeds(ctx context.Context) ([]AdvisoryFeed, error)
	// DeleteAdvisoryFeed removes a feed (the advisories it brought stay);
	// an unknown URL is ErrNotFound.
	DeleteAdvisoryFeed(ctx context.Context, url string) error

	// PutUpdateStage replaces a device's update stage.
	PutUpdateStage(ctx context.Context, s UpdateStage) error
	// UpdateStages lists the stage of every device that has one.
	UpdateStages(ctx context.Context) ([]UpdateStage, error)
}
