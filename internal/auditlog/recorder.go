package auditlog

import "context"

// Recorder appends events to the transparency log (*Log is one). Every
// service that changes or reads people's data takes one at construction
// and records its own actions; the transports (API, pages) never record
// on a service's behalf.
type Recorder interface {
	Record(ctx context.Context, ev Event) error
}
