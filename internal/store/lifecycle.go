package store

import (
	"context"
	"time"
)

// FirmwareReport is one firmware (and optional hardware) version a device
// reported about itself. It is not personal data: it describes the device,
// not the people around it.
type FirmwareReport struct {
	DeviceID   string
	Firmware   string
	Hardware   string // empty when the device does not say
	ReportedAt time.Time
}

// Advisory is one imported vulnerability advisory document, kept exactly as
// given so it can be matched again after a manifest or firmware change.
type Advisory struct {
	ID         string // the document's own id (OSV id or CSAF tracking id)
	Format     string // "osv" or "csaf"
	Modified   time.Time
	Document   []byte
	ImportedAt time.Time
}

// Operator names whoever runs the hub: the party people address about the
// hub, its privacy and its security. Empty fields are unknown.
type Operator struct {
	Name             string
	Contact          string
	PrivacyContact   string
	DisclosurePolicy string // URL of the vulnerability disclosure policy
	UpdatedAt        time.Time
}

// LifecycleStore keeps what the hub knows about devices over their life:
// the firmware they report, the advisories imported about them, and who
// operates the hub.
type LifecycleStore interface {
	// RecordFirmware appends r to the device's version history when it
	// differs from the latest entry (firmware or hardware), and reports
	// whether it did. A repeated report changes nothing. A missing device
	// is ErrNotFound.
	RecordFirmware(ctx context.Context, r FirmwareReport) (changed bool, err error)
	// FirmwareHistory lists one device's versions, newest first.
	FirmwareHistory(ctx context.Context, deviceID string) ([]FirmwareReport, error)
	// CurrentFirmware lists the latest report of every device that has
	// reported one.
	CurrentFirmware(ctx context.Context) ([]FirmwareReport, error)

	// PutAdvisories stores all of as in one transaction, each replacing
	// any earlier document with its id: on error none is stored.
	PutAdvisories(ctx context.Context, as []Advisory) error
	// Advisories lists every stored advisory.
	Advisories(ctx context.Context) ([]Advisory, error)

	// Operator returns the hub's operator (the zero value when never set).
	Operator(ctx context.Context) (Operator, error)
	// SetOperator replaces the hub's operator.
	SetOperator(ctx context.Context, o Operator) error

	// FeedStore keeps advisory feeds and update stages.
	FeedStore
}
