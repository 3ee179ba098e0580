package forward

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/catalog"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// ErrBadURL marks a URL that may not receive people's data (see CheckURL).
// Errors that wrap it read as CheckURL's message.
var ErrBadURL = errors.New("forward: url not allowed")

// RegistryStore is what a Registry needs from storage (*sqlite.DB has it).
type RegistryStore interface {
	Devices(ctx context.Context, householdID string) ([]store.Device, error)
	PutRecipientEndpoint(ctx context.Context, e store.RecipientEndpoint) error
	DeleteRecipientEndpoint(ctx context.Context, householdID, recipient string) error
	RecipientEndpoints(ctx context.Context, householdID string) ([]store.RecipientEndpoint, error)
}

// Manifests gives the manifest in force for a device type
// (*catalog.Catalog is one). Current fails for a type with none in force.
type Manifests interface {
	Current(deviceType string) (*catalog.Entry, error)
}

// Deliveries is the delivery side a Registry reports on and restarts after
// a change (*Forwarder is one).
type Deliveries interface {
	Reload(ctx context.Context, householdID string) error
	Stats(householdID string) map[string]Stats
}

// Registry answers, for one household, who its devices' manifests say may
// receive data, where each receives and how delivery went, and sets or
// removes where a recipient receives. The API (package api) and the pages
// (package web) share it, so both apply the same rules: only a recipient
// a manifest of the household's devices names can be given an endpoint,
// and only at a URL CheckURL allows. Who may call Set and Remove (an
// owner) is for the caller to decide.
type Registry struct {
	st        RegistryStore
	manifests Manifests
	fw        Deliveries
	now       func() time.Time
	log       auditlog.Recorder
	changed   func(householdID string)
}

// RegistryOptions configure a Registry.
type RegistryOptions struct {
	// Log, when set, records every change of where a household's data
	// goes (the recipient and the host, never the full URL, which may
	// carry a token).
	Log auditlog.Recorder
	// OnChange, when set, is told the household after Set or Remove
	// stored a change of where its data goes. A hub node passes the change
	// on to the other nodes with it.
	OnChange func(householdID string)
}

func (g *Registry) record(ctx context.Context, householdID, name string, detail map[string]string) error {
	if g.log == nil {
		return nil
	}
	detail["recipient"] = name
	ev := auditlog.Event{Action: ActionRecipientChange, Household: householdID, Detail: detail,
		Purpose: "where the household's data may go was changed"}
	if err := g.log.Record(ctx, ev); err != nil {
		return fmt.Errorf("record the change in the transparency log: %w", err)
	}
	return nil
}

// ActionRecipientChange is the transparency-log action of Set and Remove.
const ActionRecipientChange = "recipient.change"

// NewRegistry returns a Registry over the store, the manifests in force
// and the forwarder that delivers.
func NewRegistry(st RegistryStore, manifests Manifests, fw Deliveries, opts RegistryOptions) *Registry {
	return &Registry{st: st, manifests: manifests, fw: fw, now: time.Now, log: opts.Log, changed: opts.OnChange}
}

// stored tells OnChange of a stored change, before this node's forwarder
// reloads: the other nodes must hear of it even if that fails.
func (g *Registry) stored(householdID string) {
	if g.changed != nil {
		g.changed(householdID)
	}
}

// Recipient is one recipient a manifest of the household's devices names,
// as the first stream that names it describes it, with every stream that
// may go to it.
type Recipient struct {
	Name         string
	Role         string // a DPV role term: dpv:DataController, …
	Terms        string
	Contact      string
	Identifiable string // "linked", "de-identified" or "anonymous"
	Retention    manifest.Duration
	Uses         []Use
	// URL is where it receives, "" when no owner has set one: then
	// nothing is sent to it.
	URL          string
	ConfiguredAt time.Time
	// Delivery is nil until the forwarder has started the endpoint.
	Delivery *Stats
}

// Use is one stream of one device that may go to a recipient, for a
// purpose, when the person's consent for it is on.
type Use struct {
	DeviceID    string
	DeviceName  string
	Stream      string
	StreamTitle string
	Purpose     string // a DPV or candor: purpose term
}

// declared lists the recipients the manifests of the household's devices
// name, in the order they first appear. Revoked devices and devices whose
// type has no manifest in force are left out.
func (g *Registry) declared(ctx context.Context, householdID string) ([]*Recipient, error) {
	devs, err := g.st.Devices(ctx, householdID)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Recipient{}
	var order []*Recipient
	for _, d := range devs {
		if d.Revoked() {
			continue
		}
		e, err := g.manifests.Current(d.Type)
		if err != nil || e == nil || e.Manifest == nil {
			continue
		}
		for _, st := range e.Manifest.Streams {
			for _, rc := range st.Recipients {
				r := byName[rc.Name]
				if r == nil {
					r = &Recipient{Name: rc.Name, Role: rc.Role, Terms: rc.Terms, Contact: rc.Contact,
						Identifiable: rc.Identifiable, Retention: rc.Retention, Uses: []Use{}}
					byName[rc.Name] = r
					order = append(order, r)
				}
				title := st.Title
				if title == "" {
					title = st.Name
				}
				r.Uses = append(r.Uses, Use{DeviceID: d.ID, DeviceName: d.Name, Stream: st.Name, StreamTitle: title, Purpose: rc.Purpose})
			}
		}
	}
	return order, nil
}

// List returns the household's recipients with where each receives and
// its delivery counts since the hub started.
func (g *Registry) List(ctx context.Context, householdID string) ([]Recipient, error) {
	list, err := g.declared(ctx, householdID)
	if err != nil {
		return nil, err
	}
	eps, err := g.st.RecipientEndpoints(ctx, householdID)
	if err != nil {
		return nil, err
	}
	stats := g.fw.Stats(householdID)
	out := make([]Recipient, 0, len(list))
	for _, r := range list {
		for _, e := range eps {
			if e.Recipient == r.Name {
				r.URL = e.URL
				r.ConfiguredAt = e.CreatedAt.UTC()
			}
		}
		if st, ok := stats[r.Name]; ok {
			r.Delivery = &st
		}
		out = append(out, *r)
	}
	return out, nil
}

// Lookup returns one of the household's recipients by name, or an error
// wrapping store.ErrNotFound when no manifest of its devices names it.
func (g *Registry) Lookup(ctx context.Context, householdID, name string) (Recipient, error) {
	list, err := g.List(ctx, householdID)
	if err != nil {
		return Recipient{}, err
	}
	for _, r := range list {
		if r.Name == name {
			return r, nil
		}
	}
	return Recipient{}, notDeclared(name)
}

func notDeclared(name string) error {
	return fmt.Errorf("recipient %q: no manifest of your household's devices names it: %w", name, store.ErrNotFound)
}

// check reports whether a manifest of the household's devices names the
// recipient.
func (g *Registry) check(ctx context.Context, householdID, name string) error {
	list, err := g.declared(ctx, householdID)
	if err != nil {
		return err
	}
	for _, r := range list {
		if r.Name == name {
			return nil
		}
	}
	return notDeclared(name)
}

// badURL is CheckURL's error, marked with ErrBadURL.
type badURL struct{ err error }

func (b badURL) Error() string   { return b.err.Error() }
func (b badURL) Unwrap() []error { return []error{b.err, ErrBadURL} }

// Set makes the household's readings for a recipient go to url (when the
// person's consent lets them). The recipient must be one a manifest of the
// household's devices names (else an error wrapping store.ErrNotFound),
// and url one CheckURL allows (else an error wrapping ErrBadURL, with
// CheckURL's message). The change applies to the next batch.
func (g *Registry) Set(ctx context.Context, householdID, name, url string) error {
	if err := g.check(ctx, householdID, name); err != nil {
		return err
	}
	if err := CheckURL(url); err != nil {
		return badURL{err}
	}
	if err := g.st.PutRecipientEndpoint(ctx, store.RecipientEndpoint{HouseholdID: householdID, Recipient: name,
		URL: url, CreatedAt: g.now().UTC()}); err != nil {
		return err
	}
	g.stored(householdID)
	if err := g.fw.Reload(ctx, householdID); err != nil {
		return err
	}
	host := ""
	if u, err := neturl.Parse(url); err == nil {
		host = u.Host
	}
	return g.record(ctx, householdID, name, map[string]string{"host": host})
}

// Remove stops sending to a recipient: what was queued for it is dropped.
// It answers an error wrapping store.ErrNotFound when no manifest of the
// household's devices names the recipient, or when it had no endpoint.
func (g *Registry) Remove(ctx context.Context, householdID, name string) error {
	if err := g.check(ctx, householdID, name); err != nil {
		return err
	}
	if err := g.st.DeleteRecipientEndpoint(ctx, householdID, name); err != nil {
		return err
	}
	g.stored(householdID)
	if err := g.fw.Reload(ctx, householdID); err != nil {
		return err
	}
	return g.record(ctx, householdID, name, map[string]string{"stopped": "true"})
}
