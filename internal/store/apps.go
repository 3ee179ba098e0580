package store

import (
	"context"
	"time"
)

// App is a local program of a household (Home Assistant, Node-RED, a
// script) that receives readings over MQTT as a recipient of its own,
// under its own credential.
type App struct {
	ID          string // also its MQTT username
	HouseholdID string
	Name        string
	// Description says in the owner's words what the app is for.
	Description string
	// Purposes are the DPV purposes the app uses readings for.
	Purposes []string
	// Kind is "home-assistant" for an app the hub announces its streams
	// to with Home Assistant's MQTT discovery, else empty.
	Kind            string
	SecretHash      string // PHC-formatted argon2id hash of the app secret
	CredentialSetAt time.Time
	RevokedAt       time.Time // non-zero once revoked
	CreatedAt       time.Time
}

// Revoked reports whether the app's credential was revoked.
func (a App) Revoked() bool { return !a.RevokedAt.IsZero() }

// AppGrant says that an app may receive one stream of one device. A
// missing grant means it may not: apps get nothing by default.
type AppGrant struct {
	AppID     string
	DeviceID  string
	Stream    string
	DecidedBy string // the account that decided, or "operator"
	DecidedAt time.Time
}

// AppStore keeps apps and their grants. It is separate from Store so an
// engine can add it without every engine changing at once.
type AppStore interface {
	CreateApp(ctx context.Context, a App) error
	App(ctx context.Context, id string) (App, error)
	Apps(ctx context.Context, householdID string) ([]App, error)
	SetAppSecret(ctx context.Context, id, hash string, at time.Time) error
	RevokeApp(ctx context.Context, id string, at time.Time) error
	PutAppGrant(ctx context.Context, g AppGrant) error
	DeleteAppGrant(ctx context.Context, appID, deviceID, stream string) error
	// AppGrants lists the grants of one app, or of every app when appID
	// is empty.
	AppGrants(ctx context.Context, appID string) ([]AppGrant, error)
}
