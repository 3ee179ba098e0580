// Package catalog keeps the hub's data manifests: every version of every
// device type's manifest, which version is in force, and the compiled
// checker the ingest path enforces. It seeds the shipped templates on a
// fresh hub and refuses any manifest that does not validate.
//
// It serves clause 2A of the IoT Good Practice paper: the manifest a
// person was shown is the one enforced, and every stored reading records
// which manifest version was in force when it arrived.
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/candor-iot/candor/internal/auditlog"
	"github.com/candor-iot/candor/internal/idmap"
	"github.com/candor-iot/candor/internal/manifest"
	"github.com/candor-iot/candor/internal/store"
)

// ErrNoManifest means a device type has no manifest in force, so its
// devices may not send anything.
var ErrNoManifest = errors.New("no manifest in force for this device type")

// Store is the storage the catalog needs.
type Store interface {
	PutManifest(ctx context.Context, rec store.ManifestRecord) (store.ManifestRecord, error)
	ManifestVersions(ctx context.Context, deviceType string) ([]store.ManifestRecord, error)
	Manifests(ctx context.Context) ([]store.ManifestRecord, error)
	Device(ctx context.Context, id string) (store.Device, error)
}

// Entry is one manifest version.
type Entry struct {
	Version   int
	Draft     bool
	CreatedAt time.Time
	Manifest  *manifest.Manifest
	Checker   *manifest.Checker // nil for drafts: drafts are never enforced
}

// Options configure a Catalog.
type Options struct {
	// Log, when set, records every manifest version put (not the
	// templates seeded on a fresh hub).
	Log auditlog.Recorder
}

// Catalog is safe for concurrent use.
type Catalog struct {
	st    Store
	audit auditlog.Recorder

	mu      sync.RWMutex
	current map[string]*Entry // device type → version in force
	types   idmap.Map[string] // device id → device type (a device never changes type)

	changedMu sync.Mutex
	changed   []func(deviceType string)
}

// OnChange registers f, called with the device type after Put (or
// Confirm) stored a version that is in force from the next reading on
// (not for drafts, which nothing enforces). A hub node passes the change
// on to the other nodes with it. Reload does not call it.
func (c *Catalog) OnChange(f func(deviceType string)) {
	c.changedMu.Lock()
	c.changed = append(c.changed, f)
	c.changedMu.Unlock()
}

// Open loads every stored manifest and seeds the shipped templates for
// types that have none yet.
func Open(ctx context.Context, st Store, opts Options) (*Catalog, error) {
	c := &Catalog{st: st, current: map[string]*Entry{}, audit: opts.Log}
	recs, err := st.Manifests(ctx)
	if err != nil {
		return nil, fmt.Errorf("load manifests: %w", err)
	}
	have := map[string]bool{}
	for _, r := range recs {
		have[r.DeviceType] = true
		if r.Draft {
			continue
		}
		e, err := entry(r)
		if err != nil {
			// A stored manifest that no longer validates (the rules grew
			// stricter) stays unenforceable rather than half-loaded.
			return nil, fmt.Errorf("stored manifest %s version %d: %w", r.DeviceType, r.Version, err)
		}
		c.current[r.DeviceType] = e // records come oldest first: last wins
	}
	tmpl, err := manifest.Templates()
	if err != nil {
		return nil, err
	}
	for _, typ := range sortedKeys(tmpl) {
		if have[typ] {
			continue
		}
		if _, err := c.put(ctx, tmpl[typ].Raw); err != nil {
			return nil, fmt.Errorf("seed template %s: %w", typ, err)
		}
	}
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func entry(r store.ManifestRecord) (*Entry, error) {
	m, err := manifest.Parse(fmt.Sprintf("%s v%d", r.DeviceType, r.Version), r.Doc)
	if err != nil {
		return nil, err
	}
	e := &Entry{Version: r.Version, Draft: r.Draft, CreatedAt: r.CreatedAt, Manifest: m}
	if !r.Draft {
		e.Checker = manifest.Compile(m)
	}
	return e, nil
}

// Put validates a manifest document and stores it as the next version of
// its device type. A non-draft version is in force from the next reading
// on. Invalid documents return a *manifest.ValidationError and change
// nothing.
func (c *Catalog) Put(ctx context.Context, doc []byte) (*Entry, error) {
	e, err := c.put(ctx, doc)
	if err != nil {
		return e, err
	}
	if !e.Draft {
		// Stored and in force here: tell the listeners even if the record
		// below fails.
		c.changedMu.Lock()
		fs := slices.Clone(c.changed)
		c.changedMu.Unlock()
		for _, f := range fs {
			f(e.Manifest.DeviceType)
		}
	}
	if c.audit == nil {
		return e, nil
	}
	sum := sha256.Sum256(doc)
	if err := c.audit.Record(ctx, auditlog.Event{Action: auditlog.ActionManifestChange,
		Detail: map[string]string{"device_type": e.Manifest.DeviceType, "version": strconv.Itoa(e.Version),
			"draft": strconv.FormatBool(e.Draft), "sha256": hex.EncodeToString(sum[:])}}); err != nil {
		return nil, fmt.Errorf("record manifest change: %w", err)
	}
	return e, nil
}

func (c *Catalog) put(ctx context.Context, doc []byte) (*Entry, error) {
	m, err := manifest.Parse("manifest", doc)
	if err != nil {
		return nil, err
	}
	rec, err := c.st.PutManifest(ctx, store.ManifestRecord{DeviceType: m.DeviceType, Doc: doc, Draft: m.Draft, CreatedAt: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	e := &Entry{Version: rec.Version, Draft: rec.Draft, CreatedAt: rec.CreatedAt, Manifest: m}
	if !m.Draft {
		e.Checker = manifest.Compile(m)
		c.mu.Lock()
		c.current[m.DeviceType] = e
		c.mu.Unlock()
	}
	return e, nil
}

// Confirm makes a draft version the one in force, as a new version whose
// document is the draft with candor:draft set to false.
func (c *Catalog) Confirm(ctx context.Context, deviceType string, version int) (*Entry, error) {
	e, err := c.Version(ctx, deviceType, version)
	if err != nil {
		return nil, err
	}
	if !e.Draft {
		return nil, fmt.Errorf("%s version %d is not a draft", deviceType, version)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(e.Manifest.Raw, &doc); err != nil {
		return nil, fmt.Errorf("confirm %s version %d: %w", deviceType, version, err)
	}
	doc["candor:draft"] = json.RawMessage("false")
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return c.Put(ctx, b)
}

// Current returns the version in force for a device type.
func (c *Catalog) Current(deviceType string) (*Entry, error) {
	c.mu.RLock()
	e := c.current[deviceType]
	c.mu.RUnlock()
	if e == nil {
		return nil, fmt.Errorf("device type %q: %w", deviceType, ErrNoManifest)
	}
	return e, nil
}

// Types lists the device types with a manifest in force.
func (c *Catalog) Types() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.current)
}

// Versions lists every stored version of a type, drafts included.
func (c *Catalog) Versions(ctx context.Context, deviceType string) ([]*Entry, error) {
	recs, err := c.st.ManifestVersions(ctx, deviceType)
	if err != nil {
		return nil, err
	}
	out := make([]*Entry, 0, len(recs))
	for _, r := range recs {
		e, err := entry(r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Version returns one stored version.
func (c *Catalog) Version(ctx context.Context, deviceType string, version int) (*Entry, error) {
	vs, err := c.Versions(ctx, deviceType)
	if err != nil {
		return nil, err
	}
	for _, e := range vs {
		if e.Version == version {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%s version %d: %w", deviceType, version, store.ErrNotFound)
}

// ForDevice returns the manifest in force for a device's type. The device
// → type mapping is cached: types never change.
func (c *Catalog) ForDevice(ctx context.Context, deviceID string) (*Entry, error) {
	typ, ok := c.types.Load(deviceID)
	if !ok {
		d, err := c.st.Device(ctx, deviceID)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", deviceID, err)
		}
		typ = d.Type
		c.types.Store(deviceID, d.Type)
	}
	return c.Current(typ)
}
